package query

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/query/filter"
)

// Limits bound what one query may ask for.
type Limits struct {
	DefaultPageSize int
	MaxPageSize     int
	CountLimit      int
	DefaultTop      int
	MaxTop          int
	// MaxListItems bounds comma lists of levels and sources.
	MaxListItems int
	MaxKeyword   int
	// MaxOffset bounds page × size: deep offsets make PostgreSQL read and
	// discard every skipped row, while a cursor stays fast at any depth.
	MaxOffset int
}

// DefaultLimits are the documented defaults.
func DefaultLimits() Limits {
	return Limits{DefaultPageSize: 20, MaxPageSize: 1000, CountLimit: 10000, DefaultTop: 10, MaxTop: 1000, MaxListItems: 100, MaxKeyword: 1024, MaxOffset: 100000}
}

// ParamError is a bad query parameter; it becomes a 400 naming it, or a
// 422 when the query is valid but refused as too expensive.
type ParamError struct {
	Param, Problem string
	TooExpensive   bool
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %s: %s", e.Param, e.Problem) }

func paramErr(param, format string, args ...any) error {
	return &ParamError{Param: param, Problem: fmt.Sprintf(format, args...)}
}

// rawSearch is a search as the client sent it, before parsing.
type rawSearch struct {
	StartTime, EndTime string
	LogLevel, Source   string
	Keyword, TraceID   string
	Page, Size         string
	Cursor, Sort       string
}

// now is rounded up to the next whole second, so that a default window,
// and so its cache key, stays the same for a second of polling.
func roundedNow(now time.Time) time.Time {
	return now.UTC().Truncate(time.Second).Add(time.Second)
}

func parseTime(param, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, paramErr(param, "must be an RFC 3339 time such as 2024-01-15T10:30:00Z, not %q", s)
	}
	return t.UTC(), nil
}

// window parses startTime and endTime; a missing end is now, a missing
// start is end minus def.
func window(startS, endS string, now time.Time, def time.Duration) (time.Time, time.Time, error) {
	end := roundedNow(now)
	if endS != "" {
		t, err := parseTime("endTime", endS)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		end = t
	}
	start := end.Add(-def)
	if startS != "" {
		t, err := parseTime("startTime", startS)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		start = t
	}
	if start.After(end) {
		return time.Time{}, time.Time{}, paramErr("startTime", "must not be after endTime (%s > %s)",
			start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	}
	return start, end, nil
}

func parseLevels(s string, lim Limits) ([]event.Level, error) {
	items := splitList(s)
	if len(items) > lim.MaxListItems {
		return nil, paramErr("logLevel", "lists more than %d levels", lim.MaxListItems)
	}
	var out []event.Level
	for _, it := range items {
		l, ok := event.ParseLevel(it)
		if !ok {
			return nil, paramErr("logLevel", "unknown level %q; use TRACE, DEBUG, INFO, WARN, ERROR or FATAL", it)
		}
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out, nil
}

func parseSources(s string, lim Limits) ([]string, error) {
	items := splitList(s)
	if len(items) > lim.MaxListItems {
		return nil, paramErr("source", "lists more than %d sources", lim.MaxListItems)
	}
	slices.Sort(items)
	return slices.Compact(items), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseInt(param, s string, def int) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, paramErr(param, "must be a whole number, not %q", s)
	}
	return n, nil
}

// parseSearch turns a raw search into a filter, applying defaults and
// clamping page and size as the tutorial did.
func parseSearch(r rawSearch, now time.Time, lim Limits) (filter.Search, error) {
	var q filter.Search
	var err error
	if q.Start, q.End, err = window(r.StartTime, r.EndTime, now, time.Hour); err != nil {
		return q, err
	}
	if q.Levels, err = parseLevels(r.LogLevel, lim); err != nil {
		return q, err
	}
	if q.Sources, err = parseSources(r.Source, lim); err != nil {
		return q, err
	}
	q.Keyword = r.Keyword
	if len(q.Keyword) > lim.MaxKeyword {
		return q, paramErr("keyword", "is longer than %d bytes", lim.MaxKeyword)
	}
	if strings.IndexByte(q.Keyword, 0) >= 0 {
		return q, paramErr("keyword", "must not contain a NUL character")
	}
	q.TraceID = strings.TrimSpace(r.TraceID)
	if q.Page, err = parseInt("page", r.Page, 0); err != nil {
		return q, err
	}
	q.Page = max(q.Page, 0)
	if q.Size, err = parseInt("size", r.Size, lim.DefaultPageSize); err != nil {
		return q, err
	}
	q.Size = min(max(q.Size, 1), lim.MaxPageSize)
	if q.Page > lim.MaxOffset/q.Size {
		return q, &ParamError{Param: "page", TooExpensive: true, Problem: fmt.Sprintf(
			"page %d of size %d skips more than %d rows; follow nextCursor (the cursor parameter) to page deeper",
			q.Page, q.Size, lim.MaxOffset)}
	}
	switch strings.ToLower(strings.TrimSpace(r.Sort)) {
	case "", "desc":
	case "asc":
		q.Asc = true
	default:
		return q, paramErr("sort", "must be asc or desc, not %q", r.Sort)
	}
	if r.Cursor != "" {
		cur, err := decodeCursor(r.Cursor)
		if err != nil {
			return q, err
		}
		q.After = &cur
		q.Page = 0
	}
	q.CountLimit = lim.CountLimit
	return q, nil
}

// A cursor is opaque to clients: base64url of "<unix micros>.<uuid>".
func encodeCursor(c filter.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.TS.UnixMicro(), 10) + "." + c.ID.String()))
}

func decodeCursor(s string) (filter.Cursor, error) {
	bad := paramErr("cursor", "is not a cursor this server issued (use nextCursor as given)")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return filter.Cursor{}, bad
	}
	tsPart, idPart, ok := strings.Cut(string(raw), ".")
	if !ok {
		return filter.Cursor{}, bad
	}
	micros, err1 := strconv.ParseInt(tsPart, 10, 64)
	id, err2 := uuid.Parse(idPart)
	if err := errors.Join(err1, err2); err != nil {
		return filter.Cursor{}, bad
	}
	return filter.Cursor{TS: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// parseStats turns stats parameters into a filter; the default window is
// the last 24 hours.
func parseStats(startS, endS, levels, sources, top string, now time.Time, lim Limits) (filter.Stats, error) {
	var q filter.Stats
	var err error
	if q.Start, q.End, err = window(startS, endS, now, 24*time.Hour); err != nil {
		return q, err
	}
	if q.Levels, err = parseLevels(levels, lim); err != nil {
		return q, err
	}
	if q.Sources, err = parseSources(sources, lim); err != nil {
		return q, err
	}
	if q.Top, err = parseInt("top", top, lim.DefaultTop); err != nil {
		return q, err
	}
	if q.Top < 1 || q.Top > lim.MaxTop {
		return q, paramErr("top", "must be between 1 and %d", lim.MaxTop)
	}
	return q, nil
}
