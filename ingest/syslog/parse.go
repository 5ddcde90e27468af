package syslog

import (
	"strconv"
	"strings"
	"time"

	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// Message is one syslog message, RFC 5424 or RFC 3164.
type Message struct {
	Facility, Severity int
	Time               time.Time // zero when the message has none
	Hostname, AppName  string
	ProcID, MsgID      string
	// StructuredData maps "SD-ID.param" to the value (RFC 5424).
	StructuredData [][2]string
	Text           string
}

var facilities = [...]string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
	"authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
	"local4", "local5", "local6", "local7"}

// Level maps a syslog severity: emerg, alert and crit are FATAL, err
// ERROR, warning WARN, notice and info INFO, debug DEBUG.
func Level(severity int) logs.Level {
	switch {
	case severity <= 2:
		return logs.LevelFatal
	case severity == 3:
		return logs.LevelError
	case severity == 4:
		return logs.LevelWarn
	case severity == 7:
		return logs.LevelDebug
	}
	return logs.LevelInfo
}

// Parse reads one message. A message without a valid PRI is taken whole
// as the text of a user.notice message, as RFC 3164 tells relays to do;
// now dates RFC 3164 timestamps, which have no year.
func Parse(b []byte, now time.Time) Message {
	s := strings.TrimRight(string(b), "\r\n\x00")
	m := Message{Facility: 1, Severity: 5}
	pri, rest, ok := parsePRI(s)
	if !ok {
		m.Text = s
		return m
	}
	m.Facility, m.Severity = pri/8, pri%8
	if strings.HasPrefix(rest, "1 ") {
		if parse5424(&m, rest[2:]) {
			return m
		}
		m = Message{Facility: pri / 8, Severity: pri % 8}
	}
	parse3164(&m, rest, now)
	return m
}

func parsePRI(s string) (int, string, bool) {
	if len(s) < 3 || s[0] != '<' {
		return 0, s, false
	}
	end := strings.IndexByte(s[:min(len(s), 5)], '>')
	if end < 2 {
		return 0, s, false
	}
	pri, err := strconv.Atoi(s[1:end])
	if err != nil || pri < 0 || pri > 191 {
		return 0, s, false
	}
	return pri, s[end+1:], true
}

// parse5424 reads "TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]".
func parse5424(m *Message, s string) bool {
	var fields [5]string
	for i := range fields {
		f, rest, ok := strings.Cut(s, " ")
		if !ok && i < 4 {
			return false
		}
		fields[i], s = f, rest
		if !ok {
			s = ""
		}
	}
	if fields[0] != "-" {
		t, err := time.Parse(time.RFC3339Nano, fields[0])
		if err != nil {
			return false
		}
		m.Time = t
	}
	nilable := func(v string) string {
		if v == "-" {
			return ""
		}
		return v
	}
	m.Hostname, m.AppName, m.ProcID, m.MsgID = nilable(fields[1]), nilable(fields[2]), nilable(fields[3]), nilable(fields[4])
	switch {
	case strings.HasPrefix(s, "-"):
		s = s[1:]
	case strings.HasPrefix(s, "["):
		var ok bool
		if s, ok = parseSD(m, s); !ok {
			return false
		}
	case s == "":
	default:
		return false
	}
	s = strings.TrimPrefix(s, " ")
	m.Text = strings.TrimPrefix(s, "\uFEFF") // the BOM of a UTF-8 MSG
	return true
}

// parseSD reads SD-ELEMENTs: [id name="value" …][…].
func parseSD(m *Message, s string) (string, bool) {
	for strings.HasPrefix(s, "[") {
		s = s[1:]
		end := strings.IndexAny(s, " ]")
		if end <= 0 {
			return s, false
		}
		id := s[:end]
		s = s[end:]
		for strings.HasPrefix(s, " ") {
			s = s[1:]
			eq := strings.IndexByte(s, '=')
			if eq <= 0 || len(s) < eq+2 || s[eq+1] != '"' {
				return s, false
			}
			name := s[:eq]
			s = s[eq+2:]
			var v strings.Builder
			i := 0
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\]`, s[i+1]) >= 0 {
					i++
				}
				v.WriteByte(s[i])
			}
			if i >= len(s) {
				return s, false
			}
			m.StructuredData = append(m.StructuredData, [2]string{id + "." + name, v.String()})
			s = s[i+1:]
		}
		if !strings.HasPrefix(s, "]") {
			return s, false
		}
		s = s[1:]
	}
	return s, true
}

// parse3164 reads "Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG", taking what
// is there: a message without a timestamp is all text.
func parse3164(m *Message, s string, now time.Time) {
	if len(s) >= 16 && s[15] == ' ' {
		if t, err := time.ParseInLocation(time.Stamp, s[:15], now.Location()); err == nil {
			t = t.AddDate(now.Year(), 0, 0)
			if t.After(now.Add(24 * time.Hour)) { // December's message read in January
				t = t.AddDate(-1, 0, 0)
			}
			m.Time = t
			s = s[16:]
			if host, rest, ok := strings.Cut(s, " "); ok && host != "" && !strings.ContainsAny(host, ":[") {
				m.Hostname, s = host, rest
			}
		}
	}
	// TAG: up to 32 alphanumerics, then [pid] and/or a colon.
	tagEnd := strings.IndexAny(s, "[: ")
	if tagEnd > 0 && tagEnd <= 48 {
		tag, rest := s[:tagEnd], s[tagEnd:]
		if strings.HasPrefix(rest, "[") {
			if end := strings.IndexByte(rest, ']'); end > 0 {
				m.ProcID = rest[1:end]
				rest = rest[end+1:]
			}
		}
		if strings.HasPrefix(rest, ":") {
			m.AppName = tag
			s = strings.TrimPrefix(rest[1:], " ")
		}
	}
	m.Text = s
}

// Draft maps the message to a draft event: the app-name (or TAG) is the
// source, else the hostname, else "syslog"; the severity the level; the
// hostname, facility, procid, msgid and every structured data parameter
// ("SD-ID.name") are metadata; a parameter named trace_id, traceId or
// traceid is the traceId.
func (m Message) Draft() event.Draft {
	d := event.Draft{Timestamp: m.Time, Level: Level(m.Severity).String(), Message: m.Text}
	d.Source = m.AppName
	if strings.TrimSpace(d.Source) == "" {
		d.Source = m.Hostname
	}
	if strings.TrimSpace(d.Source) == "" {
		d.Source = "syslog"
	}
	if m.Hostname != "" {
		d.Metadata.SetString("hostname", m.Hostname)
	}
	if m.Facility < len(facilities) {
		d.Metadata.SetString("facility", facilities[m.Facility])
	}
	d.Metadata.SetInt("severity", int64(m.Severity))
	if m.ProcID != "" {
		d.Metadata.SetString("procid", m.ProcID)
	}
	if m.MsgID != "" {
		d.Metadata.SetString("msgid", m.MsgID)
	}
	for _, p := range m.StructuredData {
		d.Metadata.SetString(p[0], p[1])
		if _, name, _ := strings.Cut(p[0], "."); name == "trace_id" || name == "traceId" || name == "traceid" {
			d.TraceID = p[1]
		}
	}
	return d
}
