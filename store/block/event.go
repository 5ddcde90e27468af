package block

import (
	"encoding/json"
	"slices"

	"github.com/logengine/logengine/store/logs"
)

// EventMatcher applies a Filter to single events with exactly the meaning
// Match gives it over stored rows, so that a live tail shows what a search
// would find. It keeps scratch buffers: one goroutine at a time.
type EventMatcher struct {
	f       Filter
	keyword *keywordMatcher
	meta    []metaQuery
	members []member
}

// NewEventMatcher prepares f for matching events.
func NewEventMatcher(f Filter) *EventMatcher {
	m := &EventMatcher{f: f}
	m.f.Sources = slices.Sorted(slices.Values(f.Sources))
	if f.Keyword != "" {
		m.keyword = newKeywordMatcher(f.Keyword)
	}
	for _, mm := range f.Meta {
		m.meta = append(m.meta, newMetaQuery(mm))
	}
	return m
}

// Match reports whether e passes every condition of the filter.
func (m *EventMatcher) Match(e *logs.Event) bool {
	f := &m.f
	if !f.Start.IsZero() || !f.End.IsZero() {
		start, end, empty := f.window()
		ts := e.Timestamp.UnixMicro()
		if empty || ts < start || ts > end {
			return false
		}
	}
	if len(f.Levels) > 0 && !slices.Contains(f.Levels, e.Level) {
		return false
	}
	if len(f.Sources) > 0 && !sortedContains(f.Sources, e.Source) {
		return false
	}
	if f.TraceID != "" && e.TraceID != f.TraceID {
		return false
	}
	if len(m.meta) > 0 {
		if len(e.Metadata) == 0 || !json.Valid(e.Metadata) {
			return false
		}
		var ok bool
		m.members, _, ok = scanObject(m.members[:0], e.Metadata)
		if !ok {
			return false
		}
		for i := range m.meta {
			if !m.meta[i].matchMembers(m.members) {
				return false
			}
		}
	}
	if m.keyword != nil && !m.keyword.match([]byte(e.Message)) {
		return false
	}
	return true
}
