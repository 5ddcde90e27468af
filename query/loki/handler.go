package loki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/store/logs"
)

// Handler serves Loki's query API under /loki/api/v1.
type Handler struct {
	en   *Engine
	tail *query.Tail
	now  func() time.Time
}

// NewHandler serves en's queries and t's live tail.
func NewHandler(en *Engine, t *query.Tail) *Handler {
	return &Handler{en: en, tail: t, now: time.Now}
}

// Register mounts the routes; each takes GET and, as Loki does, a POSTed form.
func (h *Handler) Register(e *echo.Echo) {
	routes := map[string]echo.HandlerFunc{
		"/loki/api/v1/query_range":        h.queryRange,
		"/loki/api/v1/query":              h.instant,
		"/loki/api/v1/labels":             h.labels,
		"/loki/api/v1/label":              h.labels,
		"/loki/api/v1/label/:name/values": h.labelValues,
		"/loki/api/v1/series":             h.series,
		"/loki/api/v1/index/stats":        h.indexStats,
		"/loki/api/v1/index/volume":       h.volume,
		"/loki/api/v1/index/volume_range": h.volumeRange,
		"/loki/api/v1/detected_fields":    h.detectedFields,
		"/loki/api/v1/detected_labels":    h.detectedLabels,
		"/loki/api/v1/patterns":           h.patterns,
		"/loki/api/v1/status/buildinfo":   h.buildInfo,
		"/loki/api/v1/format_query":       h.formatQuery,
		"/loki/api/v1/index/shards":       h.notSupported,
	}
	for path, fn := range routes {
		e.GET(path, fn)
		e.POST(path, fn)
	}
	e.GET("/loki/api/v1/tail", h.tailWS)
}

// params are the request's query and form parameters.
func params(c echo.Context) url.Values {
	v := c.QueryParams()
	if c.Request().Method == http.MethodPost {
		if f, err := c.FormParams(); err == nil {
			for k, vs := range f {
				v[k] = append(v[k], vs...)
			}
		}
	}
	return v
}

// parseTime reads a Loki time: Unix nanoseconds, Unix seconds (up to ten
// digits, or with a fraction), or RFC 3339.
func parseTime(name, s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if strings.Contains(s, ".") {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if len(strings.TrimPrefix(s, "-")) <= 10 {
			return time.Unix(n, 0).UTC(), nil
		}
		return time.Unix(0, n).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("parameter %s: cannot read %q as Unix nanoseconds, Unix seconds or an RFC 3339 time", name, s)
	}
	return t.UTC(), nil
}

// parseStep reads a step: a duration (15s, 1500ms) or seconds (15, 1.5).
func parseStep(s string) (time.Duration, error) {
	if d, err := parseDuration(s); err == nil {
		return d, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && f < 1e9 {
		return time.Duration(f * float64(time.Second)), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	return 0, badRequest("parameter step: cannot read %q as a duration (15s) or seconds (15)", s)
}

func badRequest(format string, args ...any) error {
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// window reads start and end: by default the hour before now.
func (h *Handler) window(p url.Values) (time.Time, time.Time, error) {
	end, err := parseTime("end", p.Get("end"), h.now().UTC())
	if err != nil {
		return end, end, err
	}
	start, err := parseTime("start", p.Get("start"), end.Add(-time.Hour))
	if err != nil {
		return start, end, err
	}
	if since := p.Get("since"); since != "" && p.Get("start") == "" {
		d, err := parseDuration(since)
		if err != nil {
			return start, end, badRequest("parameter since: %v", err)
		}
		start = end.Add(-d)
	}
	if end.Before(start) {
		return start, end, badRequest("the end time must not be before the start time")
	}
	return start, end, nil
}

// fail turns an evaluation error into the gateway's error answers.
func fail(c echo.Context, err error) error {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he
	}
	unsup, tooExpensive := errorKind(err)
	switch {
	case unsup:
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	case tooExpensive:
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, query.ErrBusy):
		c.Response().Header().Set("Retry-After", "1")
		return echo.NewHTTPError(http.StatusTooManyRequests, "too many queries are running; retry in a second")
	case errors.Is(err, query.ErrRefused):
		return echo.NewHTTPError(http.StatusUnprocessableEntity, "the query is too expensive or was refused ("+err.Error()+"); narrow the time range")
	case errors.Is(err, query.ErrUnavailable):
		c.Response().Header().Set("Retry-After", "5")
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the log store is unavailable; retry later")
	case errors.Is(err, context.Canceled):
		return echo.NewHTTPError(499, "the client went away")
	}
	return err
}

// writeJSON answers v without HTML escaping.
func writeJSON(c echo.Context, v any) error {
	b, err := query.Marshal(v)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, b)
}

func (h *Handler) limit(p url.Values) (int, error) {
	s := p.Get("limit")
	if s == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, badRequest("parameter limit: must be a whole number at least 1, not %q", s)
	}
	if n > h.en.cfg.MaxLimit {
		return 0, badRequest("parameter limit: %d is more than the maximum of %d lines (--loki-max-limit)", n, h.en.cfg.MaxLimit)
	}
	return n, nil
}

func forward(p url.Values) (bool, error) {
	switch strings.ToLower(p.Get("direction")) {
	case "", "backward":
		return false, nil
	case "forward":
		return true, nil
	}
	return false, badRequest("parameter direction: must be forward or backward, not %q", p.Get("direction"))
}

func (h *Handler) queryRange(c echo.Context) error {
	began := h.now()
	p := params(c)
	expr, err := Parse(p.Get("query"))
	if err != nil {
		return fail(c, err)
	}
	start, end, err := h.window(p)
	if err != nil {
		return err
	}
	var st scanStats
	if l, ok := expr.(*LogExpr); ok {
		limit, err := h.limit(p)
		if err != nil {
			return err
		}
		fwd, err := forward(p)
		if err != nil {
			return err
		}
		streams, err := h.en.Logs(c.Request().Context(), l, start, end, limit, fwd, &st)
		if err != nil {
			return fail(c, err)
		}
		countLines(c.Request().Context(), streams)
		return writeJSON(c, success("streams", encodeStreams(streams), statsJSON(st, h.now().Sub(began))))
	}
	step := defaultStep(start, end)
	if s := p.Get("step"); s != "" {
		if step, err = parseStep(s); err != nil {
			return err
		}
	}
	steps, err := h.en.NewSteps(start, end, step)
	if err != nil {
		return fail(c, err)
	}
	v, err := h.en.Metric(c.Request().Context(), expr, steps, &st)
	if err != nil {
		return fail(c, err)
	}
	if v.IsScalar {
		v = Value{Series: []Series{{Labels: Labels{}, Values: v.Scalar}}}
	}
	return writeJSON(c, success("matrix", encodeMatrix(v.Series, steps), statsJSON(st, h.now().Sub(began))))
}

// defaultStep is Loki's: the range over 250 points, at least a second.
func defaultStep(start, end time.Time) time.Duration {
	return max(time.Duration(math.Floor(end.Sub(start).Seconds()/250))*time.Second, time.Second)
}

func (h *Handler) instant(c echo.Context) error {
	began := h.now()
	p := params(c)
	expr, err := Parse(p.Get("query"))
	if err != nil {
		return fail(c, err)
	}
	if _, ok := expr.(*LogExpr); ok {
		return badRequest("log queries are not supported as an instant query; use query_range")
	}
	t, err := parseTime("time", p.Get("time"), h.now().UTC())
	if err != nil {
		return err
	}
	steps := Steps{Start: t, Step: time.Second, N: 1}
	var st scanStats
	v, err := h.en.Metric(c.Request().Context(), expr, steps, &st)
	if err != nil {
		return fail(c, err)
	}
	ts := json.RawMessage(promTime(t))
	if v.IsScalar {
		return writeJSON(c, success("scalar", []any{ts, formatValue(v.Scalar[0])}, statsJSON(st, h.now().Sub(began))))
	}
	result := []any{}
	sortSeries(v.Series)
	for _, s := range v.Series {
		if math.IsNaN(s.Values[0]) {
			continue
		}
		result = append(result, map[string]any{"metric": s.Labels.Map(), "value": []any{ts, formatValue(s.Values[0])}})
	}
	return writeJSON(c, success("vector", result, statsJSON(st, h.now().Sub(began))))
}

func success(resultType string, result any, stats any) map[string]any {
	return map[string]any{"status": "success", "data": map[string]any{"resultType": resultType, "result": result, "stats": stats}}
}

// promTime is a time as Prometheus and Loki write sample times: Unix
// seconds, with a fraction only when there is one.
func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func sortSeries(s []Series) {
	slices.SortFunc(s, func(a, b Series) int { return strings.Compare(a.Labels.Key(), b.Labels.Key()) })
}

// encodeStreams writes streams; their entries are in the query's order.
func encodeStreams(streams []Stream) []any {
	out := make([]any, 0, len(streams))
	for _, s := range streams {
		values := make([][2]string, len(s.Entries))
		for i, e := range s.Entries {
			values[i] = [2]string{strconv.FormatInt(e.TS.UnixNano(), 10), e.Line}
		}
		out = append(out, map[string]any{"stream": s.Labels.Map(), "values": values})
	}
	return out
}

func encodeMatrix(series []Series, steps Steps) []any {
	sortSeries(series)
	out := make([]any, 0, len(series))
	for _, s := range series {
		var values []any
		for k, v := range s.Values {
			if !math.IsNaN(v) {
				values = append(values, []any{json.RawMessage(promTime(steps.At(k))), formatValue(v)})
			}
		}
		if len(values) > 0 {
			out = append(out, map[string]any{"metric": s.Labels.Map(), "values": values})
		}
	}
	return out
}

// statsJSON is Loki's stats object: the summary holds what this query read.
func statsJSON(st scanStats, took time.Duration) map[string]any {
	secs := took.Seconds()
	perSec := func(n int64) int64 {
		if secs <= 0 {
			return 0
		}
		return int64(float64(n) / secs)
	}
	return map[string]any{
		"summary": map[string]any{
			"bytesProcessedPerSecond": perSec(st.bytes), "linesProcessedPerSecond": perSec(st.lines),
			"totalBytesProcessed": st.bytes, "totalLinesProcessed": st.lines, "execTime": secs, "queueTime": 0,
			"subqueries": 0, "totalEntriesReturned": st.returned, "splits": 0, "shards": 0,
			"totalPostFilterLines": st.postFilter, "totalStructuredMetadataBytesProcessed": 0,
		},
		"querier":  map[string]any{"store": map[string]any{"totalChunksRef": 0, "totalChunksDownloaded": 0}},
		"ingester": map[string]any{"totalReached": 0, "totalChunksMatched": 0, "totalBatches": 0, "totalLinesSent": 0},
		"cache":    map[string]any{},
	}
}

// selectorParam reads the log query of a metadata request, if any.
func selectorParam(p url.Values, names ...string) (*LogExpr, error) {
	for _, n := range names {
		if s := p.Get(n); s != "" {
			return ParseLog(s)
		}
	}
	return nil, nil
}

// allLogs is the selector of every log.
func allLogs() *LogExpr { return &LogExpr{} }

// selection reads the window and the optional stream selector of a
// metadata request; without a selector, every log is selected.
func (h *Handler) selection(c echo.Context, p url.Values) (*LogExpr, time.Time, time.Time, error) {
	start, end, err := h.window(p)
	if err != nil {
		return nil, start, end, err
	}
	l, err := selectorParam(p, "query")
	if err != nil {
		return nil, start, end, fail(c, err)
	}
	if l == nil {
		l = allLogs()
	}
	return l, start, end, nil
}

// labels answers the label names of the window. level and source are
// always there; metadata labels are gathered by reading the window's logs,
// at most --loki-max-scan of them, newest first.
func (h *Handler) labels(c echo.Context) error {
	p := params(c)
	l, start, end, err := h.selection(c, p)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	if err := h.sample(c.Request().Context(), l, start, end, func(ls Labels) {
		for _, lb := range ls {
			names[lb.Name] = true
		}
	}); err != nil {
		return fail(c, err)
	}
	out := slices.Sorted(maps.Keys(names))
	return writeJSON(c, map[string]any{"status": "success", "data": orEmpty(out)})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// sample calls fn with the labels of the window's matching logs, newest
// first, stopping quietly after --loki-max-scan logs: label lists serve
// autocompletion, where the recent logs are the useful ones.
func (h *Handler) sample(ctx context.Context, l *LogExpr, start, end time.Time, fn func(Labels)) error {
	return h.sampleEvents(ctx, l, start, end, func(_ *logs.Event, ls Labels) { fn(ls) })
}

// sampleEvents is sample with the logs themselves.
func (h *Handler) sampleEvents(ctx context.Context, l *LogExpr, start, end time.Time, fn func(*logs.Event, Labels)) error {
	var st scanStats
	n := 0
	err := h.en.scan(ctx, l, start, end, false, &st, func(e *logs.Event, ls Labels) bool {
		fn(e, ls)
		n++
		return n < h.en.cfg.MaxScan
	})
	var tooMany *TooExpensiveError
	if errors.As(err, &tooMany) {
		return nil
	}
	return err
}

// labelValues answers a label's values: level and source exactly, from
// the rollups when no query narrows them; others from the window's logs
// as for labels.
func (h *Handler) labelValues(c echo.Context) error {
	p := params(c)
	name := c.Param("name")
	start, end, err := h.window(p)
	if err != nil {
		return err
	}
	l, err := selectorParam(p, "query")
	if err != nil {
		return fail(c, err)
	}
	ctx := c.Request().Context()
	if l == nil && (name == "level" || name == "source") {
		body, _, err := h.en.q.Stats(ctx, logs.Stats{Start: start, End: end, Top: h.en.lim.MaxTop})
		if err != nil {
			return fail(c, err)
		}
		var res struct {
			Levels  map[logs.Level]int64 `json:"logLevelDistribution"`
			Sources json.RawMessage      `json:"topSources"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			return err
		}
		var out []string
		if name == "level" {
			for _, lv := range logs.AllLevels() {
				if res.Levels[lv] > 0 {
					out = append(out, LevelLabel(lv))
				}
			}
		} else {
			var m map[string]int64
			if err := json.Unmarshal(res.Sources, &m); err != nil {
				return err
			}
			for s := range m {
				out = append(out, s)
			}
			slices.Sort(out)
		}
		return writeJSON(c, map[string]any{"status": "success", "data": orEmpty(out)})
	}
	if l == nil {
		l = allLogs()
	}
	values := map[string]bool{}
	if err := h.sample(ctx, l, start, end, func(ls Labels) {
		if v, ok := ls.Get(name); ok {
			values[v] = true
		}
	}); err != nil {
		return fail(c, err)
	}
	out := make([]string, 0, len(values))
	for v := range values {
		out = append(out, v)
	}
	slices.Sort(out)
	return writeJSON(c, map[string]any{"status": "success", "data": out})
}

// series answers the label sets of the streams the match[] selectors
// select, reading the window's logs (at most --loki-max-scan).
func (h *Handler) series(c echo.Context) error {
	p := params(c)
	start, end, err := h.window(p)
	if err != nil {
		return err
	}
	matches := p["match[]"]
	if len(matches) == 0 {
		matches = p["match"]
	}
	if len(matches) == 0 {
		return badRequest("parameter match[]: at least one stream selector is required")
	}
	seen := map[string]Labels{}
	var st scanStats
	for _, m := range matches {
		l, err := ParseLog(m)
		if err != nil {
			return fail(c, err)
		}
		if err := h.en.scan(c.Request().Context(), l, start, end, false, &st, func(_ *logs.Event, ls Labels) bool {
			seen[ls.Key()] = ls
			return true
		}); err != nil {
			return fail(c, err)
		}
	}
	keys := slices.Sorted(maps.Keys(seen))
	out := make([]map[string]string, len(keys))
	for i, k := range keys {
		out[i] = seen[k].Map()
	}
	return writeJSON(c, map[string]any{"status": "success", "data": out})
}

// indexStats answers how much a selector selects: streams, entries and
// bytes of its logs in the window (one "chunk" per stream).
func (h *Handler) indexStats(c echo.Context) error {
	p := params(c)
	start, end, err := h.window(p)
	if err != nil {
		return err
	}
	l, err := selectorParam(p, "query")
	if err != nil {
		return fail(c, err)
	}
	if l == nil {
		return badRequest("parameter query: a stream selector is required")
	}
	streams := map[string]bool{}
	var entries, size int64
	var st scanStats
	if err := h.en.scan(c.Request().Context(), &LogExpr{Selector: l.Selector}, start, end, false, &st, func(e *logs.Event, ls Labels) bool {
		streams[ls.Key()] = true
		entries++
		size += int64(len(e.Message))
		return true
	}); err != nil {
		return fail(c, err)
	}
	return writeJSON(c, map[string]any{"streams": len(streams), "chunks": len(streams), "entries": entries, "bytes": size})
}

// volumeParams reads what index/volume and index/volume_range share.
func (h *Handler) volumeParams(c echo.Context) (l *LogExpr, start, end time.Time, targets []string, limit int, err error) {
	p := params(c)
	if start, end, err = h.window(p); err != nil {
		return
	}
	if l, err = selectorParam(p, "query"); err != nil {
		err = fail(c, err)
		return
	}
	if l == nil {
		err = badRequest("parameter query: a stream selector is required")
		return
	}
	if t := p.Get("targetLabels"); t != "" {
		targets = strings.Split(t, ",")
	}
	limit = 100
	if s := p.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			err = badRequest("parameter limit: must be a whole number at least 1")
			return
		}
	}
	if a := p.Get("aggregateBy"); a != "" && a != "series" && a != "labels" {
		err = badRequest("parameter aggregateBy: must be series or labels")
		return
	}
	return
}

// volumeLabels are the labels a volume is reported under: targetLabels
// when given, otherwise the labels the selector names.
func volumeLabels(l *LogExpr, targets []string, ls Labels) Labels {
	names := targets
	if len(names) == 0 {
		for _, m := range l.Selector {
			names = append(names, m.Name)
		}
	}
	out := Labels{}
	for _, lb := range ls {
		if slices.Contains(names, lb.Name) {
			out = append(out, lb)
		}
	}
	return out
}

// volume answers the bytes of each selected stream group in the window,
// largest first, as a vector.
func (h *Handler) volume(c echo.Context) error {
	l, start, end, targets, limit, err := h.volumeParams(c)
	if err != nil {
		return err
	}
	sums := map[string]*Series{}
	var st scanStats
	if err := h.en.scan(c.Request().Context(), &LogExpr{Selector: l.Selector}, start, end, false, &st, func(e *logs.Event, ls Labels) bool {
		g := volumeLabels(l, targets, ls)
		s, ok := sums[g.Key()]
		if !ok {
			s = &Series{Labels: g, Values: []float64{0}}
			sums[g.Key()] = s
		}
		s.Values[0] += float64(len(e.Message))
		return true
	}); err != nil {
		return fail(c, err)
	}
	all := make([]Series, 0, len(sums))
	for _, s := range sums {
		all = append(all, *s)
	}
	slices.SortFunc(all, func(a, b Series) int {
		if a.Values[0] != b.Values[0] {
			if a.Values[0] > b.Values[0] {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Labels.Key(), b.Labels.Key())
	})
	ts := json.RawMessage(promTime(end))
	result := []any{}
	for _, s := range all[:min(limit, len(all))] {
		result = append(result, map[string]any{"metric": s.Labels.Map(), "value": []any{ts, formatValue(s.Values[0])}})
	}
	return writeJSON(c, map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": result}})
}

// volumeRange answers the bytes of each selected stream group per step.
func (h *Handler) volumeRange(c echo.Context) error {
	l, start, end, targets, limit, err := h.volumeParams(c)
	if err != nil {
		return err
	}
	step := defaultStep(start, end)
	if s := params(c).Get("step"); s != "" {
		if step, err = parseStep(s); err != nil {
			return err
		}
	}
	steps, err := h.en.NewSteps(start, end, step)
	if err != nil {
		return fail(c, err)
	}
	// Each point t holds the bytes of [t, t+step), as Loki's volumes do.
	series := map[string]*Series{}
	var st scanStats
	last := steps.At(steps.N - 1).Add(step)
	if err := h.en.scan(c.Request().Context(), &LogExpr{Selector: l.Selector}, start, last.Add(-time.Nanosecond), true, &st, func(e *logs.Event, ls Labels) bool {
		g := volumeLabels(l, targets, ls)
		s, ok := series[g.Key()]
		if !ok {
			s = &Series{Labels: g, Values: nanSlice(steps.N)}
			series[g.Key()] = s
		}
		k := int(e.Timestamp.Sub(start) / step)
		if k >= 0 && k < steps.N {
			if math.IsNaN(s.Values[k]) {
				s.Values[k] = 0
			}
			s.Values[k] += float64(len(e.Message))
		}
		return true
	}); err != nil {
		return fail(c, err)
	}
	all := make([]Series, 0, len(series))
	for _, s := range series {
		all = append(all, *s)
	}
	total := func(s Series) (t float64) {
		for _, v := range s.Values {
			if !math.IsNaN(v) {
				t += v
			}
		}
		return t
	}
	slices.SortFunc(all, func(a, b Series) int {
		ta, tb := total(a), total(b)
		if ta != tb {
			if ta > tb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Labels.Key(), b.Labels.Key())
	})
	all = all[:min(limit, len(all))]
	return writeJSON(c, map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": encodeMatrix(all, steps)}})
}

// detectedFields answers the fields Logs Drilldown offers: those the json
// or logfmt parser finds in the matching lines (the first that parses a
// line), with their type, cardinality and parser. Stream labels are not
// fields: detected_labels lists them.
func (h *Handler) detectedFields(c echo.Context) error {
	p := params(c)
	l, start, end, err := h.selection(c, p)
	if err != nil {
		return err
	}
	type field struct {
		values  map[string]bool
		parsers map[string]bool
	}
	fields := map[string]*field{}
	if err := h.sampleEvents(c.Request().Context(), l, start, end, func(e *logs.Event, _ Labels) {
		for _, parser := range []string{"json", "logfmt"} {
			var parsed Labels
			if parser == "json" {
				parsed = parseJSON(nil, nil, e.Message)
			} else {
				parsed = parseLogfmt(nil, nil, e.Message)
			}
			if _, failed := parsed.Get("__error__"); failed {
				continue
			}
			found := false
			for _, lb := range parsed {
				if lb.Value == "" {
					continue
				}
				f := fields[lb.Name]
				if f == nil {
					f = &field{values: map[string]bool{}, parsers: map[string]bool{}}
					fields[lb.Name] = f
				}
				f.values[lb.Value] = true
				f.parsers[parser] = true
				found = true
			}
			if found {
				return
			}
		}
	}); err != nil {
		return fail(c, err)
	}
	out := []any{}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		f := fields[name]
		out = append(out, map[string]any{"label": name, "type": fieldType(f.values), "cardinality": len(f.values),
			"parsers": slices.Sorted(maps.Keys(f.parsers))})
	}
	return writeJSON(c, map[string]any{"fields": out, "limit": h.en.cfg.MaxScan})
}

// fieldType is the narrowest of Loki's field types all values have.
func fieldType(values map[string]bool) string {
	isInt, isFloat, isBool := true, true, true
	for v := range values {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			isInt = false
		}
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			isFloat = false
		}
		if v != "true" && v != "false" {
			isBool = false
		}
	}
	switch {
	case isInt:
		return "int"
	case isFloat:
		return "float"
	case isBool:
		return "boolean"
	}
	return "string"
}

// detectedLabels answers the stream labels of the window with their
// cardinality, as Logs Drilldown asks for them.
func (h *Handler) detectedLabels(c echo.Context) error {
	p := params(c)
	l, start, end, err := h.selection(c, p)
	if err != nil {
		return err
	}
	values := map[string]map[string]bool{}
	if err := h.sample(c.Request().Context(), l, start, end, func(ls Labels) {
		for _, lb := range ls {
			if values[lb.Name] == nil {
				values[lb.Name] = map[string]bool{}
			}
			values[lb.Name][lb.Value] = true
		}
	}); err != nil {
		return fail(c, err)
	}
	out := []any{}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		out = append(out, map[string]any{"label": name, "cardinality": len(values[name])})
	}
	return writeJSON(c, map[string]any{"detectedLabels": out})
}

// patterns: logengine does not mine log patterns; Logs Drilldown shows
// its patterns tab empty rather than failing.
func (h *Handler) patterns(c echo.Context) error {
	if _, err := selectorParam(params(c), "query"); err != nil {
		return fail(c, err)
	}
	return writeJSON(c, map[string]any{"status": "success", "data": []any{}})
}

// buildInfo tells clients which Loki API this server follows.
func (h *Handler) buildInfo(c echo.Context) error {
	return writeJSON(c, map[string]any{"version": "3.0.0", "revision": "logengine", "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""})
}

func (h *Handler) formatQuery(c echo.Context) error {
	q := params(c).Get("query")
	if _, err := Parse(q); err != nil {
		return fail(c, err)
	}
	return writeJSON(c, map[string]any{"status": "success", "data": q})
}

func (h *Handler) notSupported(c echo.Context) error {
	return echo.NewHTTPError(http.StatusNotImplemented, c.Path()+" is not supported by this server")
}
