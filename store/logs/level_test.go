package logs_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/logengine/logengine/store/logs"
)

func TestLevelCodesRoundTrip(t *testing.T) {
	want := []logs.Level{logs.LevelTrace, logs.LevelDebug, logs.LevelInfo, logs.LevelWarn, logs.LevelError, logs.LevelFatal}
	if !reflect.DeepEqual(logs.AllLevels(), want) {
		t.Fatalf("AllLevels() = %v, want severity order %v", logs.AllLevels(), want)
	}
	for i, l := range want {
		t.Run(l.String(), func(t *testing.T) {
			if got := l.Code(); got != int16(i) {
				t.Errorf("%s.Code() = %d, want %d", l, got, i)
			}
			back, err := logs.LevelFromCode(l.Code())
			if err != nil || back != l {
				t.Errorf("LevelFromCode(%d) = %v, %v; want %v", l.Code(), back, err, l)
			}
			name := l.String()
			for _, s := range []string{name, strings.ToLower(name), " " + name + "\t"} {
				if got, ok := logs.ParseLevel(s); !ok || got != l {
					t.Errorf("ParseLevel(%q) = %v, %v; want %v", s, got, ok, l)
				}
			}
		})
	}
}

func TestParseLevelRejectsUnknown(t *testing.T) {
	for _, s := range []string{"", " ", "LOUD", "WARNINGS", "INF", "0", "critical"} {
		if got, ok := logs.ParseLevel(s); ok {
			t.Errorf("ParseLevel(%q) = %v, %v; want rejected", s, got, ok)
		}
	}
	if got, ok := logs.ParseLevel("Warning"); !ok || got != logs.LevelWarn {
		t.Errorf("ParseLevel(Warning) = %v, %v; want WARN", got, ok)
	}
}

func TestLevelFromCodeRejectsOutOfRange(t *testing.T) {
	for _, c := range []int16{-1, 6, 7, 100, -32768, 32767} {
		if got, err := logs.LevelFromCode(c); err == nil {
			t.Errorf("LevelFromCode(%d) = %v, want an error", c, got)
		}
	}
	if logs.Level(6).Valid() || !logs.LevelFatal.Valid() {
		t.Error("Valid() disagrees with the six levels")
	}
}

// The JSON form is the name, as values and as map keys: API answers and
// Kafka records depend on it.
func TestLevelJSON(t *testing.T) {
	b, err := json.Marshal(map[logs.Level]int{logs.LevelError: 2})
	if err != nil || string(b) != `{"ERROR":2}` {
		t.Fatalf("map key = %s, %v", b, err)
	}
	b, err = json.Marshal(struct{ L logs.Level }{logs.LevelWarn})
	if err != nil || string(b) != `{"L":"WARN"}` {
		t.Fatalf("value = %s, %v", b, err)
	}
	if _, err := json.Marshal(logs.Level(9)); err == nil {
		t.Error("an unknown level encoded")
	}
	var l logs.Level
	if err := json.Unmarshal([]byte(`"info"`), &l); err == nil {
		t.Error(`UnmarshalText accepted "info": the wire form is exact`)
	}
	if err := json.Unmarshal([]byte(`"FATAL"`), &l); err != nil || l != logs.LevelFatal {
		t.Errorf("FATAL decoded as %v, %v", l, err)
	}
}
