package block

import (
	"slices"
	"testing"
)

// TestEventMatcher runs the semantics table (what the SQL and Match
// select) through the single-event matcher of the live tail.
func TestEventMatcher(t *testing.T) {
	events := MatchEvents()
	for _, c := range MatchCases() {
		t.Run(c.Name, func(t *testing.T) {
			m := NewEventMatcher(c.Filter)
			var got []int
			for i := range events {
				if m.Match(&events[i]) {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, c.Want) {
				t.Errorf("EventMatcher selects %v, want %v", got, c.Want)
			}
		})
	}
}
