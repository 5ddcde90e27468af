package logs

import (
	"time"

	"github.com/google/uuid"
)

// Cursor is a keyset position: the (timestamp, id) of the last row seen.
type Cursor struct {
	TS time.Time
	ID uuid.UUID
}

// Search selects logs. Start and End are inclusive; empty slices and
// strings mean no filter on that field.
type Search struct {
	// Tenants are the tenants whose logs are read; none means the
	// default tenant alone, never all of them.
	Tenants    []string
	Start, End time.Time
	Levels     []Level
	Sources    []string
	// Keyword is a case-insensitive substring of the message, matched
	// literally (no wildcards).
	Keyword string
	TraceID string
	// Meta keeps logs whose metadata has each key with its value.
	Meta []MetaMatch
	// Offset paging; ignored when After is set.
	Page, Size int
	After      *Cursor
	Asc        bool
	// CountLimit bounds the count behind Page.Total: past it the total is
	// a lower bound and Page.TotalIsEstimate is set.
	CountLimit int
}

// Page is one page of a search.
type Page struct {
	Events          []Event
	Total           int64
	TotalIsEstimate bool
	// Next is the cursor after the last event, nil on the last page.
	Next *Cursor
}

// Stats asks for counts over a window.
type Stats struct {
	// Tenants are the tenants whose logs are read; none means the
	// default tenant alone, never all of them.
	Tenants    []string
	Start, End time.Time
	Levels     []Level
	Sources    []string
	Top        int
}

// SourceCount is one entry of a top-sources list.
type SourceCount struct {
	Source string
	Count  int64
}

// StatsResult holds exact counts over the window.
type StatsResult struct {
	ByLevel    map[Level]int64
	TopSources []SourceCount // highest count first
	Total      int64
}

// MetaMatch is a metadata filter: the key's value equals Value (compared as
// a string, and also as a JSON number or boolean when Value reads as one).
type MetaMatch struct {
	Key, Value string
}

// Histogram asks for counts per time bucket and level.
type Histogram struct {
	// Tenants are the tenants whose logs are read; none means the
	// default tenant alone, never all of them.
	Tenants    []string
	Start, End time.Time
	Levels     []Level
	Sources    []string
	// Interval is the bucket width; buckets are aligned to the Unix epoch.
	Interval time.Duration
}

// Bucket is one interval of a histogram.
type Bucket struct {
	Time   time.Time
	Counts map[Level]int64
	Total  int64
}

// HistogramResult lists every bucket overlapping the window, in time
// order, empty ones included.
type HistogramResult struct {
	Buckets []Bucket
}
