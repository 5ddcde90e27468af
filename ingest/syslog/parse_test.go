package syslog_test

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/ingest/syslog"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want syslog.Message
	}{
		{ // RFC 5424's own example, with structured data and a BOM
			`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][meta x="a \"q\" \] b"] ` + "\uFEFF" + `An application event log entry...`,
			syslog.Message{Facility: 20, Severity: 5, Time: time.Date(2003, 10, 11, 22, 14, 15, 3e6, time.UTC),
				Hostname: "mymachine.example.com", AppName: "evntslog", MsgID: "ID47",
				StructuredData: [][2]string{{"exampleSDID@32473.iut", "3"}, {"exampleSDID@32473.eventSource", "Application"},
					{"exampleSDID@32473.eventID", "1011"}, {"meta.x", `a "q" ] b`}},
				Text: "An application event log entry..."},
		},
		{`<34>1 - - - - - -`, syslog.Message{Facility: 4, Severity: 2}},
		{`<13>1 2026-01-02T09:00:00+01:00 host app 123 - - hello world` + "\n",
			syslog.Message{Facility: 1, Severity: 5, Time: time.Date(2026, 1, 2, 8, 0, 0, 0, time.UTC), Hostname: "host", AppName: "app", ProcID: "123", Text: "hello world"}},
		{ // RFC 3164
			`<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8`,
			syslog.Message{Facility: 4, Severity: 2, Time: time.Date(2025, 10, 11, 22, 14, 15, 0, time.UTC), Hostname: "mymachine",
				AppName: "su", ProcID: "230", Text: "'su root' failed for lonvick on /dev/pts/8"},
		},
		{`<13>Jan  2 09:59:00 web cron: job done`, syslog.Message{Facility: 1, Severity: 5,
			Time: time.Date(2026, 1, 2, 9, 59, 0, 0, time.UTC), Hostname: "web", AppName: "cron", Text: "job done"}},
		{`<13>just text`, syslog.Message{Facility: 1, Severity: 5, Text: "just text"}},
		{`no pri at all`, syslog.Message{Facility: 1, Severity: 5, Text: "no pri at all"}},
		{`<999>x`, syslog.Message{Facility: 1, Severity: 5, Text: "<999>x"}},
	} {
		got := syslog.Parse([]byte(c.in), now)
		if !got.Time.Equal(c.want.Time) {
			t.Errorf("%q: time %v, want %v", c.in, got.Time, c.want.Time)
		}
		got.Time, c.want.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
}

func TestDraftMapsTheMessage(t *testing.T) {
	m := syslog.Parse([]byte(`<11>1 2026-01-02T09:00:00Z host api 7 REQ [trace trace_id="abc"] boom`), time.Now())
	d := m.Draft()
	if d.Source != "api" || d.Level != "ERROR" || d.Message != "boom" || d.TraceID != "abc" {
		t.Errorf("draft %+v", d)
	}
	if got := string(d.Metadata.AppendJSON(nil)); got != `{"hostname":"host","facility":"user","severity":3,"procid":"7","msgid":"REQ","trace.trace_id":"abc"}` {
		t.Errorf("metadata %s", got)
	}
	if d := syslog.Parse([]byte(`<15>text`), time.Now()).Draft(); d.Source != "syslog" || d.Level != "DEBUG" {
		t.Errorf("no app-name, no hostname: %+v", d)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`<165>1 2003-10-11T22:14:15.003Z h a - ID47 [x@1 a="b"] m`))
	f.Add([]byte(`<34>Oct 11 22:14:15 mymachine su: x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := syslog.Parse(b, time.Now())
		_ = m.Draft()
	})
}

func FuzzFrames(f *testing.F) {
	f.Add("12 <13>1 - - -\n<13>x\n5 hello")
	f.Fuzz(func(t *testing.T, s string) {
		r := bufio.NewReader(strings.NewReader(s))
		for range 100 {
			if _, err := syslog.ReadFrame(r, 64); err != nil {
				return
			}
		}
	})
}
