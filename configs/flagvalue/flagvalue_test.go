package flagvalue_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/spf13/pflag"
)

func TestDays(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		show string
	}{
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"36h", 36 * time.Hour, "36h0m0s"},
		{"48h", 48 * time.Hour, "2d"},
		{"0", 0, "0s"},
		{" 2d ", 48 * time.Hour, "2d"},
	} {
		var d time.Duration
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		flagvalue.DaysVar(fs, &d, "retention", "")
		if err := fs.Set("retention", tc.in); err != nil {
			t.Errorf("Set(%q): %v", tc.in, err)
			continue
		}
		if d != tc.want || fs.Lookup("retention").Value.String() != tc.show {
			t.Errorf("Set(%q) = %v shown %q, want %v shown %q", tc.in, d, fs.Lookup("retention").Value, tc.want, tc.show)
		}
	}
	for _, bad := range []string{"d", "1.5d", "7 d", "x", "-d", "1w"} {
		var d time.Duration
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		flagvalue.DaysVar(fs, &d, "retention", "")
		if err := fs.Set("retention", bad); err == nil {
			t.Errorf("Set(%q) accepted: %v", bad, d)
		}
	}
}

func TestList(t *testing.T) {
	var l []string
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	flagvalue.ListVar(fs, &l, "brokers", []string{"a:1"}, "")
	if fs.Lookup("brokers").DefValue != "a:1" {
		t.Errorf("default shown as %q", fs.Lookup("brokers").DefValue)
	}
	if err := fs.Set("brokers", " b:1 , ,c:2,"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l, []string{"b:1", "c:2"}) {
		t.Errorf("list = %q", l)
	}
}

func TestProblemsNameTheFlag(t *testing.T) {
	var p flagvalue.Problems
	if p.Err() != nil {
		t.Fatal("no problems is not an error")
	}
	p.AtLeast1(map[string]int64{"b-size": 0, "a-size": 1})
	p.Positive(map[string]time.Duration{"ttl": 0})
	p.NotNegative(map[string]time.Duration{"skew": -1})
	got := p.Err().Error()
	for _, want := range []string{"--b-size: must be at least 1", "--ttl: must be positive", "--skew: must not be negative"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "a-size") {
		t.Errorf("%q names a valid setting", got)
	}
}

func TestSecret(t *testing.T) {
	if got, err := flagvalue.Secret("inline", "", "x-file"); err != nil || got != "inline" {
		t.Errorf("without a file: %q, %v", got, err)
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := flagvalue.Secret("inline", file, "x-file"); err != nil || got != "s3cret" {
		t.Errorf("with a file: %q, %v; want the file's line without its end", got, err)
	}
	if _, err := flagvalue.Secret("", file+".missing", "x-file"); err == nil || !strings.Contains(err.Error(), "--x-file") {
		t.Errorf("missing file: %v, want an error naming --x-file", err)
	}
}
