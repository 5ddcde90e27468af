package store

import (
	"slices"
	"strings"
	"testing"

	"github.com/logengine/logengine/store/logs"
)

func TestMergedSizes(t *testing.T) {
	events := func(n, msgBytes int) []logs.Event {
		out := make([]logs.Event, n)
		for i := range out {
			out[i].Message = strings.Repeat("x", msgBytes)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		events []logs.Event
		want   []int
	}{
		{"rows: whole blocks", events(10000, 100), []int{5000, 5000}},
		{"rows: a short remainder joins the last block", events(12000, 100), []int{5000, 7000}},
		{"rows: a long remainder is a block", events(13000, 100), []int{5000, 5000, 3000}},
		{"one row", events(1, 100), []int{1}},
		// 60 kB logs: 16 MiB holds 279 of them (60,032 bytes each); a
		// remainder fits the last block up to one and a half times that.
		{"bytes: large logs", events(600, 60000), []int{279, 321}},
		{"bytes: a long remainder is a block", events(900, 60000), []int{279, 279, 342}},
		{"bytes: a log above the bound is a block alone", events(2, 20<<20), []int{1, 1}},
	} {
		if got := mergedSizes(tc.events, 5000); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
