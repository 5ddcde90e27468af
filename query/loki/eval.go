package loki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/store/logs"
	"github.com/spf13/pflag"
)

// Querier is the query service the Loki API is built on (query.Service):
// cached, bounded searches, stats and histograms, answered as JSON.
type Querier interface {
	Search(ctx context.Context, q logs.Search) ([]byte, string, error)
	Stats(ctx context.Context, q logs.Stats) ([]byte, string, error)
	Histogram(ctx context.Context, q logs.Histogram) ([]byte, string, error)
}

// Config bounds what one Loki API query may cost.
type Config struct {
	// MaxScan is how many logs one query may read that its answer does not
	// return (filtered out by a regular expression, a parser, a label
	// filter, or aggregated one by one); past it the query is refused
	// with 422.
	MaxScan   int
	MaxSeries int
	MaxPoints int
	// MaxLimit bounds the limit (lines) of one log query.
	MaxLimit int
}

// DefaultConfig is the configuration with nothing set.
func DefaultConfig() Config {
	return Config{MaxScan: 100000, MaxSeries: 500, MaxPoints: 11000, MaxLimit: 5000}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.MaxScan, "loki-max-scan", c.MaxScan, "logs one Loki API query may read without returning them, or aggregate one by one (422 beyond)")
	fs.IntVar(&c.MaxSeries, "loki-max-series", c.MaxSeries, "series one Loki API metric query may return (422 beyond)")
	fs.IntVar(&c.MaxPoints, "loki-max-points", c.MaxPoints, "points per series of one Loki API range query (400 beyond: choose a longer step)")
	fs.IntVar(&c.MaxLimit, "loki-max-limit", c.MaxLimit, "most lines one Loki API log query returns (a larger limit is 400)")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *Config) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{"loki-max-scan": int64(c.MaxScan), "loki-max-series": int64(c.MaxSeries),
		"loki-max-points": int64(c.MaxPoints), "loki-max-limit": int64(c.MaxLimit)})
	return p.Err()
}

// TooExpensiveError is a query refused for its cost; it answers 422.
type TooExpensiveError struct{ Msg string }

func (e *TooExpensiveError) Error() string { return e.Msg }

// Engine evaluates LogQL over the query service.
type Engine struct {
	cfg Config
	q   Querier
	lim query.Limits
}

// NewEngine evaluates queries with q's searches.
func NewEngine(cfg Config, q Querier, lim query.Limits) *Engine {
	return &Engine{cfg: cfg, q: q, lim: lim}
}

// Config is the configuration the engine runs with.
func (en *Engine) Config() Config { return en.cfg }

// scanStats counts what a query read, for Loki's stats object.
type scanStats struct {
	lines, bytes, postFilter, returned int64
}

// pushdown is the part of a log query the store can filter: level (any
// matcher: the six levels are tested), source equality, metadata
// equality and the first |= text (case-insensitive there: a superset,
// verified here). empty means nothing can match.
func (en *Engine) pushdown(l *LogExpr) (s logs.Search, empty bool) {
	var sources []string
	sourceSet := false
	var levels []logs.Level
	for _, lv := range logs.AllLevels() {
		ok := true
		for i := range l.Selector {
			if m := &l.Selector[i]; m.Name == "level" && !m.Matches(LevelLabel(lv), true) {
				ok = false
			}
		}
		if ok {
			levels = append(levels, lv)
		}
	}
	if len(levels) == 0 {
		return s, true
	}
	if len(levels) < logs.NumLevels {
		s.Levels = levels
	}
	for _, m := range l.Selector {
		switch {
		case m.Name == "source" && m.Op == OpEq:
			if sourceSet && !slices.Contains(sources, m.Value) {
				return s, true
			}
			sources, sourceSet = []string{m.Value}, true
		case m.Name != "level" && m.Name != "source" && m.Op == OpEq && m.Value != "" && len(s.Meta) < en.lim.MaxMetaFilters:
			s.Meta = append(s.Meta, logs.MetaMatch{Key: m.Name, Value: m.Value})
		}
	}
	s.Sources = sources
	for _, st := range l.Pipeline {
		if st.Line != nil && st.Line.Op == "|=" && st.Line.Value != "" && len(st.Line.Value) <= en.lim.MaxKeyword && !strings.ContainsRune(st.Line.Value, 0) {
			s.Keyword = st.Line.Value
			break
		}
	}
	return s, false
}

// selects reports whether a log's stream labels pass the selector.
func selects(sel []Matcher, ls Labels) bool {
	for i := range sel {
		v, ok := ls.Get(sel[i].Name)
		if !sel[i].Matches(v, ok) {
			return false
		}
	}
	return true
}

// scan reads the logs of [start, end] the pushed-down filter keeps, in
// order, and calls fn with each log and its labels after the pipeline;
// fn returns false to stop. More than MaxScan logs read is refused.
func (en *Engine) scan(ctx context.Context, l *LogExpr, start, end time.Time, asc bool, st *scanStats, fn func(e *logs.Event, ls Labels) bool) error {
	return en.scanPages(ctx, l, start, end, asc, en.lim.MaxPageSize, true, st, fn)
}

// scanPages is scan with the size of its first page (a log query that
// wants a few lines should not read a thousand). Unless countKept, the
// logs fn is given do not count against MaxScan: a log query's lines are
// bounded by its limit, and only the logs it reads in vain are a cost
// without bound.
func (en *Engine) scanPages(ctx context.Context, l *LogExpr, start, end time.Time, asc bool, firstPage int, countKept bool, st *scanStats, fn func(e *logs.Event, ls Labels) bool) error {
	base, empty := en.pushdown(l)
	if empty || end.Before(start) {
		return nil
	}
	q := base
	q.Start, q.End, q.Asc, q.Size, q.CountLimit = start.UTC(), end.UTC(), asc, min(max(firstPage, 1), en.lim.MaxPageSize), 1
	narrowed := len(q.Sources) > 0 || len(q.Meta) > 0
	if q.Keyword != "" && !narrowed && en.lim.MaxKeywordWindow > 0 && q.End.Sub(q.Start) > en.lim.MaxKeywordWindow {
		return &TooExpensiveError{Msg: fmt.Sprintf("a line filter without a source or metadata selector over %s exceeds the limit of %s (--max-keyword-window); narrow the time range or add a selector",
			q.End.Sub(q.Start), en.lim.MaxKeywordWindow)}
	}
	read := 0
	for {
		body, _, err := en.q.Search(ctx, q)
		if err != nil {
			return err
		}
		var page query.PageJSON
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("decode a search page: %w", err)
		}
		for _, item := range page.Content {
			e, err := eventOf(item)
			if err != nil {
				return err
			}
			st.lines++
			st.bytes += int64(len(e.Message))
			stream := StreamLabels(&e)
			ls, ok := Labels(nil), selects(l.Selector, stream)
			if ok {
				ls, ok = process(l.Pipeline, e.Message, stream)
			}
			if !ok || countKept {
				if read++; read > en.cfg.MaxScan {
					return &TooExpensiveError{Msg: fmt.Sprintf("the query reads more than %d logs (--loki-max-scan) because some of its filters (regular expressions, parsers, label filters) are checked log by log, or it aggregates them one by one; narrow the time range or select by source, level or an exact metadata label", en.cfg.MaxScan)}
				}
			}
			if !ok {
				continue
			}
			st.postFilter++
			if !fn(&e, ls) {
				return nil
			}
		}
		if page.NextCursor == "" || len(page.Content) == 0 {
			return nil
		}
		q.Page, q.Size = 0, en.lim.MaxPageSize
		cur, err := query.DecodeCursor(page.NextCursor)
		if err != nil {
			return err
		}
		q.After = &cur
	}
}

func eventOf(l query.LogJSON) (logs.Event, error) {
	ts, err := time.Parse(time.RFC3339Nano, l.Timestamp)
	if err != nil {
		return logs.Event{}, fmt.Errorf("a search answer's timestamp %q: %w", l.Timestamp, err)
	}
	return logs.Event{Timestamp: ts, Level: l.LogLevel, Source: l.Source, Message: l.Message, Metadata: l.Metadata, TraceID: l.TraceID}, nil
}

// Entry is one log line of a stream.
type Entry struct {
	TS   time.Time
	Line string
}

// Stream is the entries of one label set.
type Stream struct {
	Labels  Labels
	Entries []Entry
}

// Logs answers a log query: at most limit lines of [start, end), newest
// first unless forward, grouped into streams by their labels.
func (en *Engine) Logs(ctx context.Context, l *LogExpr, start, end time.Time, limit int, forward bool, st *scanStats) ([]Stream, error) {
	byKey := map[string]*Stream{}
	var order []string
	n := 0
	err := en.scanPages(ctx, l, start, end.Add(-time.Nanosecond), forward, limit, false, st, func(e *logs.Event, ls Labels) bool {
		k := ls.Key()
		s, ok := byKey[k]
		if !ok {
			s = &Stream{Labels: ls}
			byKey[k] = s
			order = append(order, k)
		}
		s.Entries = append(s.Entries, Entry{TS: e.Timestamp, Line: e.Message})
		n++
		return n < limit
	})
	if err != nil {
		return nil, err
	}
	st.returned = int64(n)
	slices.Sort(order)
	out := make([]Stream, len(order))
	for i, k := range order {
		out[i] = *byKey[k]
	}
	return out, nil
}

// Series is one labelled series over the query's points; NaN marks a
// point without a value.
type Series struct {
	Labels Labels
	Values []float64
}

// Value is a metric expression's result: a matrix, or a scalar.
type Value struct {
	Series   []Series
	Scalar   []float64 // set for a scalar result
	IsScalar bool
}

// Steps are the evaluation times of a metric query.
type Steps struct {
	Start time.Time
	Step  time.Duration
	N     int
}

// At is the time of point k.
func (s Steps) At(k int) time.Time { return s.Start.Add(time.Duration(k) * s.Step) }

// NewSteps are the points start, start+step, … up to end.
func (en *Engine) NewSteps(start, end time.Time, step time.Duration) (Steps, error) {
	if step <= 0 {
		return Steps{}, unsupported("step must be positive")
	}
	n := int(end.Sub(start)/step) + 1
	if n > en.cfg.MaxPoints {
		return Steps{}, unsupported("exceeded maximum resolution of %d points per timeseries; try a longer step (the step parameter)", en.cfg.MaxPoints)
	}
	return Steps{Start: start, Step: step, N: n}, nil
}

// Metric evaluates a metric expression at steps.
func (en *Engine) Metric(ctx context.Context, e Expr, steps Steps, st *scanStats) (Value, error) {
	switch e := e.(type) {
	case *Number:
		vals := make([]float64, steps.N)
		for i := range vals {
			vals[i] = e.Value
		}
		return Value{Scalar: vals, IsScalar: true}, nil
	case *VectorLit:
		vals := make([]float64, steps.N)
		for i := range vals {
			vals[i] = e.Value
		}
		return Value{Series: []Series{{Labels: Labels{}, Values: vals}}}, nil
	case *RangeAgg:
		return en.rangeAgg(ctx, e, steps, st)
	case *VectorAgg:
		if v, ok, err := en.fromRollups(ctx, e, steps); ok || err != nil {
			return v, err
		}
		inner, err := en.Metric(ctx, e.Inner, steps, st)
		if err != nil {
			return Value{}, err
		}
		if inner.IsScalar {
			return Value{}, unsupported("%s of a scalar is not supported", e.Op)
		}
		return Value{Series: aggregate(e, inner.Series, steps.N)}, nil
	case *Binary:
		l, err := en.Metric(ctx, e.Left, steps, st)
		if err != nil {
			return Value{}, err
		}
		r, err := en.Metric(ctx, e.Right, steps, st)
		if err != nil {
			return Value{}, err
		}
		return binary(e.Op, l, r, steps.N), nil
	case *LogExpr:
		return Value{}, unsupported("a log query is not a metric expression; wrap it in count_over_time({...}[5m]) or rate")
	}
	return Value{}, unsupported("unsupported expression")
}

// rangeAgg reads the logs of the whole span once: a log at ts counts at
// every point t with t-range <= ts < t.
func (en *Engine) rangeAgg(ctx context.Context, r *RangeAgg, steps Steps, st *scanStats) (Value, error) {
	first := steps.Start.Add(-r.Range)
	last := steps.At(steps.N - 1)
	byKey := map[string]*Series{}
	var tooMany bool
	var pipelineErr string
	err := en.scan(ctx, &r.Log, first, last.Add(-time.Nanosecond), true, st, func(e *logs.Event, ls Labels) bool {
		if v, ok := ls.Get("__error__"); ok && pipelineErr == "" {
			pipelineErr = v
		}
		k := ls.Key()
		s, ok := byKey[k]
		if !ok {
			if len(byKey) >= en.cfg.MaxSeries {
				tooMany = true
				return false
			}
			s = &Series{Labels: ls, Values: nanSlice(steps.N)}
			byKey[k] = s
		}
		d := e.Timestamp.Sub(steps.Start)
		kmin := floorDiv(int64(d), int64(steps.Step)) + 1
		kmax := floorDiv(int64(d+r.Range), int64(steps.Step))
		var add float64 = 1 // counted; a rate is divided once at the end
		if r.Func == "bytes_over_time" {
			add = float64(len(e.Message))
		}
		for k := max(kmin, 0); k <= min(kmax, int64(steps.N-1)); k++ {
			if math.IsNaN(s.Values[k]) {
				s.Values[k] = 0
			}
			s.Values[k] += add
		}
		return true
	})
	if err != nil {
		return Value{}, err
	}
	if tooMany {
		return Value{}, &TooExpensiveError{Msg: fmt.Sprintf("the query has more than %d series (--loki-max-series); aggregate it with sum by (...)", en.cfg.MaxSeries)}
	}
	if pipelineErr != "" {
		return Value{}, unsupported("pipeline error: %q; skip such lines with | __error__=\"\"", pipelineErr)
	}
	out := make([]Series, 0, len(byKey))
	for _, s := range byKey {
		if r.Func == "rate" {
			for k, v := range s.Values {
				s.Values[k] = v / r.Range.Seconds()
			}
		}
		out = append(out, *s)
	}
	return Value{Series: out}, nil
}

func nanSlice(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// groupLabels are the labels a sum or topk groups by.
func groupLabels(a *VectorAgg, ls Labels) Labels {
	out := Labels{}
	for _, l := range ls {
		in := slices.Contains(a.Labels, l.Name)
		if (a.Without && !in && l.Name != "__name__") || (!a.Without && in) {
			out = append(out, l)
		}
	}
	return out
}

func aggregate(a *VectorAgg, in []Series, n int) []Series {
	groups := map[string][]int{}
	var order []string
	glabels := map[string]Labels{}
	for i, s := range in {
		g := groupLabels(a, s.Labels)
		k := g.Key()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
			glabels[k] = g
		}
		groups[k] = append(groups[k], i)
	}
	var out []Series
	switch a.Op {
	case "sum":
		for _, k := range order {
			vals := nanSlice(n)
			for _, i := range groups[k] {
				for p, v := range in[i].Values {
					if !math.IsNaN(v) {
						if math.IsNaN(vals[p]) {
							vals[p] = 0
						}
						vals[p] += v
					}
				}
			}
			out = append(out, Series{Labels: glabels[k], Values: vals})
		}
	case "topk":
		kept := make([][]float64, len(in))
		for _, k := range order {
			members := groups[k]
			for p := 0; p < n; p++ {
				var present []int
				for _, i := range members {
					if !math.IsNaN(in[i].Values[p]) {
						present = append(present, i)
					}
				}
				slices.SortStableFunc(present, func(x, y int) int {
					vx, vy := in[x].Values[p], in[y].Values[p]
					switch {
					case vx > vy:
						return -1
					case vx < vy:
						return 1
					}
					return strings.Compare(in[x].Labels.Key(), in[y].Labels.Key())
				})
				for _, i := range present[:min(a.K, len(present))] {
					if kept[i] == nil {
						kept[i] = nanSlice(n)
					}
					kept[i][p] = in[i].Values[p]
				}
			}
		}
		for i, vals := range kept {
			if vals != nil {
				out = append(out, Series{Labels: in[i].Labels, Values: vals})
			}
		}
	}
	return out
}

func arith(op string, a, b float64) float64 {
	switch op {
	case "+":
		return a + b
	case "-":
		return a - b
	case "*":
		return a * b
	default:
		return a / b
	}
}

// binary applies op pointwise: scalar with scalar, scalar with every
// series, or series with the series of exactly the same labels.
func binary(op string, l, r Value, n int) Value {
	switch {
	case l.IsScalar && r.IsScalar:
		out := make([]float64, n)
		for p := range out {
			out[p] = arith(op, l.Scalar[p], r.Scalar[p])
		}
		return Value{Scalar: out, IsScalar: true}
	case l.IsScalar || r.IsScalar:
		series, scalar, scalarLeft := r.Series, l.Scalar, true
		if r.IsScalar {
			series, scalar, scalarLeft = l.Series, r.Scalar, false
		}
		out := make([]Series, len(series))
		for i, s := range series {
			vals := nanSlice(n)
			for p, v := range s.Values {
				if !math.IsNaN(v) {
					if scalarLeft {
						vals[p] = arith(op, scalar[p], v)
					} else {
						vals[p] = arith(op, v, scalar[p])
					}
				}
			}
			out[i] = Series{Labels: s.Labels, Values: vals}
		}
		return Value{Series: out}
	}
	right := map[string]Series{}
	for _, s := range r.Series {
		right[s.Labels.Key()] = s
	}
	var out []Series
	for _, s := range l.Series {
		o, ok := right[s.Labels.Key()]
		if !ok {
			continue
		}
		vals := nanSlice(n)
		for p := range vals {
			if !math.IsNaN(s.Values[p]) && !math.IsNaN(o.Values[p]) {
				vals[p] = arith(op, s.Values[p], o.Values[p])
			}
		}
		out = append(out, Series{Labels: s.Labels, Values: vals})
	}
	return Value{Series: out}
}

// fromRollups answers sum [by (level)] (count_over_time|rate({selector
// on source and level}[r])) from the store's per-minute rollups through
// histograms, without reading a log: ok is false when the query has any
// other shape, or steps that buckets cannot align with.
func (en *Engine) fromRollups(ctx context.Context, a *VectorAgg, steps Steps) (Value, bool, error) {
	r, isRange := a.Inner.(*RangeAgg)
	if a.Op != "sum" || a.Without || !isRange || (r.Func != "count_over_time" && r.Func != "rate") {
		return Value{}, false, nil
	}
	byLevel := false
	for _, l := range a.Labels {
		switch l {
		case "level":
			byLevel = true
		case "detected_level": // no such label here: groups nothing
		default:
			return Value{}, false, nil
		}
	}
	for _, m := range r.Log.Selector {
		if m.Name != "level" && !(m.Name == "source" && m.Op == OpEq) {
			return Value{}, false, nil
		}
	}
	for _, st := range r.Log.Pipeline {
		if st.Drop == nil {
			return Value{}, false, nil
		}
	}
	g := gcd(r.Range, steps.Step)
	if steps.N > 1 {
		g = gcd(g, steps.Step)
	} else {
		g = r.Range
	}
	if g < time.Second || g%time.Second != 0 || steps.Start.UnixNano()%int64(g) != 0 {
		return Value{}, false, nil
	}
	base, empty := en.pushdown(&r.Log)
	out := map[logs.Level][]float64{}
	if !empty {
		// Buckets of width g from the first window's start to the last
		// point, fetched in histograms of at most MaxBuckets buckets.
		first := steps.Start.Add(-r.Range)
		last := steps.At(steps.N - 1)
		nb := int(last.Sub(first) / g)
		counts := map[logs.Level][]int64{}
		for from := 0; from < nb; from += en.lim.MaxBuckets {
			to := min(from+en.lim.MaxBuckets, nb)
			h := logs.Histogram{Start: first.Add(time.Duration(from) * g).UTC(), End: first.Add(time.Duration(to)*g - time.Nanosecond).UTC(),
				Levels: base.Levels, Sources: base.Sources, Interval: g}
			body, _, err := en.q.Histogram(ctx, h)
			if err != nil {
				return Value{}, true, err
			}
			var res struct {
				Buckets []struct {
					Time   time.Time            `json:"time"`
					Counts map[logs.Level]int64 `json:"counts"`
				} `json:"buckets"`
			}
			if err := json.Unmarshal(body, &res); err != nil {
				return Value{}, true, fmt.Errorf("decode a histogram: %w", err)
			}
			for _, b := range res.Buckets {
				idx := int(b.Time.Sub(first) / g)
				if idx < 0 || idx >= nb {
					continue
				}
				for lv, c := range b.Counts {
					if counts[lv] == nil {
						counts[lv] = make([]int64, nb)
					}
					counts[lv][idx] += c
				}
			}
		}
		per := int(r.Range / g)
		stride := int(steps.Step / g)
		for lv, cs := range counts {
			vals := nanSlice(steps.N)
			for k := 0; k < steps.N; k++ {
				// Point k covers buckets [k*stride, k*stride+per).
				var sum int64
				for b := k * stride; b < k*stride+per && b < nb; b++ {
					sum += cs[b]
				}
				if sum > 0 {
					vals[k] = float64(sum)
					if r.Func == "rate" {
						vals[k] /= r.Range.Seconds()
					}
				}
			}
			out[lv] = vals
		}
	}
	var series []Series
	if byLevel {
		for _, lv := range logs.AllLevels() {
			if vals, ok := out[lv]; ok {
				series = append(series, Series{Labels: Labels{{"level", LevelLabel(lv)}}, Values: vals})
			}
		}
	} else if len(out) > 0 {
		total := nanSlice(steps.N)
		for _, vals := range out {
			for p, v := range vals {
				if !math.IsNaN(v) {
					if math.IsNaN(total[p]) {
						total[p] = 0
					}
					total[p] += v
				}
			}
		}
		series = []Series{{Labels: Labels{}, Values: total}}
	}
	return Value{Series: series}, true, nil
}

func gcd(a, b time.Duration) time.Duration {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// errorKind sorts an evaluation error into its HTTP status.
func errorKind(err error) (unsupportedErr, tooExpensive bool) {
	var u *UnsupportedError
	var t *TooExpensiveError
	return errors.As(err, &u), errors.As(err, &t)
}
