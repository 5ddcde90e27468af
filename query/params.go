package query

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/store/logs"
	"github.com/spf13/pflag"
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
	// MaxKeywordWindow bounds the window of a keyword search that has no
	// source, traceId or metadata filter to narrow it (0 = no bound).
	MaxKeywordWindow time.Duration
	MaxMetaFilters   int
	MaxBuckets       int
}

// RegisterFlags binds the limits to flags whose defaults are l's values.
func (l *Limits) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&l.MaxPageSize, "max-page-size", l.MaxPageSize, "largest page a search returns (size is clamped to it)")
	fs.IntVar(&l.MaxOffset, "max-offset", l.MaxOffset, "largest page × size of offset paging (422 beyond; use the cursor)")
	fs.IntVar(&l.CountLimit, "count-limit", l.CountLimit, "rows counted at most for totalElements; past it the total is a lower bound")
	flagvalue.DaysVar(fs, &l.MaxKeywordWindow, "max-keyword-window", "longest window of a keyword search without a source, traceId or meta filter (422 beyond; 0 = no limit)")
	fs.IntVar(&l.MaxBuckets, "max-buckets", l.MaxBuckets, "most buckets of one histogram")
	fs.IntVar(&l.MaxMetaFilters, "max-meta-filters", l.MaxMetaFilters, "most meta.<key> filters of one search")
}

// Validate reports every limit that cannot work, naming its flag.
func (l *Limits) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{
		"max-page-size": int64(l.MaxPageSize), "max-offset": int64(l.MaxOffset), "count-limit": int64(l.CountLimit),
		"max-buckets": int64(l.MaxBuckets), "max-meta-filters": int64(l.MaxMetaFilters),
	})
	p.NotNegative(map[string]time.Duration{"max-keyword-window": l.MaxKeywordWindow})
	if l.MaxBuckets < minMaxBuckets {
		p.Add("max-buckets", "must be at least %d, so that an automatic interval can cover any window; not %d", minMaxBuckets, l.MaxBuckets)
	}
	return p.Err()
}

// DefaultLimits are the documented defaults.
func DefaultLimits() Limits {
	return Limits{DefaultPageSize: 20, MaxPageSize: 1000, CountLimit: 10000, DefaultTop: 10, MaxTop: 1000, MaxListItems: 100, MaxKeyword: 1024, MaxOffset: 100000,
		MaxKeywordWindow: 24 * time.Hour, MaxMetaFilters: 10, MaxBuckets: 1000}
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
	Meta               map[string]string // meta.<key>=<value>
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

func parseLevels(s string, lim Limits) ([]logs.Level, error) {
	items := splitList(s)
	if len(items) > lim.MaxListItems {
		return nil, paramErr("logLevel", "lists more than %d levels", lim.MaxListItems)
	}
	var out []logs.Level
	for _, it := range items {
		l, ok := logs.ParseLevel(it)
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

// checkText refuses what PostgreSQL cannot compare as text (NUL, bytes
// that are not UTF-8), naming the parameter, before it reaches a query.
func checkText(param, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return paramErr(param, "must not contain a NUL character")
	}
	if !utf8.ValidString(s) {
		return paramErr(param, "must be valid UTF-8")
	}
	return nil
}

func parseSources(s string, lim Limits) ([]string, error) {
	if err := checkText("source", s); err != nil {
		return nil, err
	}
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
func parseSearch(r rawSearch, now time.Time, lim Limits) (logs.Search, error) {
	var q logs.Search
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
	if err := checkText("keyword", q.Keyword); err != nil {
		return q, err
	}
	if err := checkText("traceId", r.TraceID); err != nil {
		return q, err
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
	if len(r.Meta) > lim.MaxMetaFilters {
		return q, paramErr("meta", "has %d filters, more than %d", len(r.Meta), lim.MaxMetaFilters)
	}
	for k, v := range r.Meta {
		if k == "" {
			return q, paramErr("meta.", "needs a key, as in meta.userId=42")
		}
		if err := checkText("meta", k); err != nil {
			return q, err
		}
		if err := checkText("meta."+k, v); err != nil {
			return q, err
		}
		q.Meta = append(q.Meta, logs.MetaMatch{Key: k, Value: v})
	}
	slices.SortFunc(q.Meta, func(a, b logs.MetaMatch) int { return strings.Compare(a.Key, b.Key) })
	q.CountLimit = lim.CountLimit
	// A keyword alone scans every log of the window; refuse a window too
	// long to answer in time, and say how to narrow it.
	narrowed := len(q.Sources) > 0 || q.TraceID != "" || len(q.Meta) > 0
	if q.Keyword != "" && !narrowed && lim.MaxKeywordWindow > 0 && q.End.Sub(q.Start) > lim.MaxKeywordWindow {
		return q, &ParamError{Param: "keyword", TooExpensive: true, Problem: fmt.Sprintf(
			"a keyword search over %s without a source, traceId or meta.<key> filter exceeds the limit of %s; "+
				"narrow startTime/endTime or add one of those filters", q.End.Sub(q.Start), lim.MaxKeywordWindow)}
	}
	return q, nil
}

// MetaParams collects the meta.<key>=<value> query parameters.
func MetaParams(values map[string][]string) map[string]string {
	out := map[string]string{}
	for k, v := range values {
		if key, ok := strings.CutPrefix(k, "meta."); ok && len(v) > 0 {
			out[key] = v[len(v)-1]
		}
	}
	return out
}

// niceIntervals are the bucket widths chosen automatically.
func niceIntervals() []time.Duration {
	return []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
		time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
}

// minMaxBuckets is the least --max-buckets: enough for automatic
// intervals over the longest window a time can express.
const minMaxBuckets = 50

// autoBuckets is how many buckets an automatic interval aims at, at most.
const autoBuckets = 120

// ParseInterval reads a bucket width: a Go duration (30s, 5m, 1h) or days (1d, 7d).
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > int(math.MaxInt64/int64(24*time.Hour)) {
			return 0, fmt.Errorf("bad day count %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return d, nil
}

// formatInterval writes an interval as the API shows it (1m, 1h, 1d).
func formatInterval(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d%time.Second == 0:
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return d.String()
}

// parseHistogram reads a histogram request: the stats parameters plus an
// interval, chosen when missing so the window has at most autoBuckets
// (and never more than lim.MaxBuckets, however long the window).
func parseHistogram(startS, endS, levels, sources, interval string, now time.Time, lim Limits) (logs.Histogram, error) {
	var q logs.Histogram
	var err error
	if q.Start, q.End, q.Levels, q.Sources, err = parseScope(startS, endS, levels, sources, now, lim); err != nil {
		return q, err
	}
	if interval == "" {
		q.Interval = autoInterval(q.Start, q.End, min(autoBuckets, lim.MaxBuckets))
		return q, nil
	}
	if q.Interval, err = ParseInterval(interval); err != nil || q.Interval < time.Second || q.Interval%time.Second != 0 {
		return q, paramErr("interval", "must be a whole number of seconds at least 1s, such as 30s, 1m, 1h or 1d; not %q", interval)
	}
	if n := bucketCount(q.Start, q.End, q.Interval); n > int64(lim.MaxBuckets) {
		return q, paramErr("interval", "%s over %s makes %d buckets, more than %d; choose a longer interval",
			formatInterval(q.Interval), q.End.Sub(q.Start), n, lim.MaxBuckets)
	}
	return q, nil
}

// bucketCount is how many buckets of width iv, aligned to the Unix epoch,
// overlap [start, end]. It works in whole seconds, because time.Time.Sub
// saturates at about 292 years and a window may span millennia.
func bucketCount(start, end time.Time, iv time.Duration) int64 {
	w := int64(iv / time.Second)
	return floorDiv(end.Unix(), w) - floorDiv(start.Unix(), w) + 1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// autoInterval is the shortest nice interval that cuts [start, end] into
// at most most buckets; past the ladder's longest, a whole number of days.
func autoInterval(start, end time.Time, most int) time.Duration {
	for _, iv := range niceIntervals() {
		if bucketCount(start, end, iv) <= int64(most) {
			return iv
		}
	}
	const day = 24 * 60 * 60
	// Any window RFC 3339 can express (years 0000 to 9999) fits in
	// minMaxBuckets buckets of at most maxDays, so this ends below it.
	const maxDays = int64(math.MaxInt64 / int64(24*time.Hour))
	spanDays := (end.Unix()-start.Unix())/day + 1
	// most-1 buckets of days cover the span with room for the partial
	// buckets at both ends.
	days := min(spanDays/int64(max(most-1, 1))+1, maxDays)
	for days < maxDays && bucketCount(start, end, time.Duration(days)*24*time.Hour) > int64(most) {
		days++
	}
	return time.Duration(days) * 24 * time.Hour
}

// A cursor is opaque to clients: base64url of "<unix micros>.<uuid>".
func encodeCursor(c logs.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.TS.UnixMicro(), 10) + "." + c.ID.String()))
}

func decodeCursor(s string) (logs.Cursor, error) {
	bad := paramErr("cursor", "is not a cursor this server issued (use nextCursor as given)")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return logs.Cursor{}, bad
	}
	tsPart, idPart, ok := strings.Cut(string(raw), ".")
	if !ok {
		return logs.Cursor{}, bad
	}
	micros, err1 := strconv.ParseInt(tsPart, 10, 64)
	id, err2 := uuid.Parse(idPart)
	if err := errors.Join(err1, err2); err != nil {
		return logs.Cursor{}, bad
	}
	return logs.Cursor{TS: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// parseStats turns stats parameters into a filter; the default window is
// the last 24 hours.
func parseStats(startS, endS, levels, sources, top string, now time.Time, lim Limits) (logs.Stats, error) {
	var q logs.Stats
	var err error
	if q.Start, q.End, q.Levels, q.Sources, err = parseScope(startS, endS, levels, sources, now, lim); err != nil {
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

// parseScope reads what stats and histograms share: the window (the last
// 24 hours by default) and the level and source filters.
func parseScope(startS, endS, levels, sources string, now time.Time, lim Limits) (start, end time.Time, lv []logs.Level, src []string, err error) {
	if start, end, err = window(startS, endS, now, 24*time.Hour); err != nil {
		return
	}
	if lv, err = parseLevels(levels, lim); err != nil {
		return
	}
	src, err = parseSources(sources, lim)
	return
}

// DecodeCursor reads a nextCursor this server issued.
func DecodeCursor(s string) (logs.Cursor, error) { return decodeCursor(s) }
