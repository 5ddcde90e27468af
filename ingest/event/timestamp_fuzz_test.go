package event_test

import (
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/ingest/event"
)

// FuzzParseTimestamp: any text is either refused with a reason or read as
// a UTC time to the microsecond within years 1 to 9999; and a time Go's
// RFC 3339 parser reads (seconds below 60, offsets below 24 h) is read the
// same.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2024-01-15T10:30:00Z", "1969-12-31T23:59:59.999999999-23:59", "2016-12-31T23:59:60Z", "2016-12-31T10:00:60Z",
		"2024-01-15T10:30:00+24:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00", "2024-01-15T10:30:00z", "",
		"2024-01-15T23:59:60.123+00:00",
	} {
		f.Add(s)
	}
	// "Now" at the end of year 9999: no time in range is in the future.
	end := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	lim := event.Limits{MaxFutureSkew: 48 * time.Hour}
	f.Fuzz(func(t *testing.T, s string) {
		got, problem := event.ParseTimestamp(s, end, lim)
		if problem != "" {
			if !got.IsZero() {
				t.Fatalf("ParseTimestamp(%q) refused (%s) but gave %v", s, problem, got)
			}
		} else if got.Location() != time.UTC || got.Nanosecond()%1000 != 0 || got.Year() < 1 || got.Year() > 9999 {
			t.Fatalf("ParseTimestamp(%q) = %v", s, got)
		}
		goTime, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || strings.Contains(s, ":60") || !strings.HasSuffix(s, "Z") && !strings.HasSuffix(s, "z") && offsetBeyondRFC(s) {
			return
		}
		if goTime.UTC().Year() < 1 || goTime.UTC().Year() > 9999 || goTime.Equal(time.Time{}) {
			return
		}
		if want := goTime.UTC().Truncate(time.Microsecond); problem != "" || !got.Equal(want) {
			t.Fatalf("ParseTimestamp(%q) = %v %q, Go's parser %v", s, got, problem, want)
		}
	})
}

// offsetBeyondRFC: an offset of 24 hours or more, or of 60 minutes or more.
func offsetBeyondRFC(s string) bool {
	off := s[len(s)-5:]
	return off[:2] >= "24" || off[3:] >= "60"
}
