package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kinds of queries, as a dashboard and an operator would send them.
const (
	KindRecent  = "recent"  // GET /api/v1/logs?size=20
	KindLevel   = "level"   // GET /api/v1/logs?logLevel=ERROR
	KindSource  = "source"  // GET /api/v1/logs?source=<a source>
	KindKeyword = "keyword" // GET /api/v1/logs?keyword=<a word>
	KindStats   = "stats"   // GET /api/v1/logs/stats?startTime=<15 minutes ago>
)

var queryKinds = []string{KindRecent, KindLevel, KindSource, KindKeyword, KindStats}

const (
	// queryConcurrency bounds queries in flight; a tick finding them all
	// busy is skipped (and counted) rather than queued.
	queryConcurrency = 16
	// queryGrace bounds how long queries go on after the logs are sent,
	// to measure each kind of the mix at least once.
	queryGrace = 10 * time.Second
)

type weightedKind struct {
	kind   string
	weight int
}

// parseMix reads "recent=4,level=2,…"; "" is DefaultQueryMix. Kinds with
// weight 0 are left out.
func parseMix(s string) ([]weightedKind, error) {
	if strings.TrimSpace(s) == "" {
		s = DefaultQueryMix
	}
	var out []weightedKind
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, w, ok := strings.Cut(item, "=")
		kind = strings.ToLower(strings.TrimSpace(kind))
		if !ok {
			return nil, fmt.Errorf("loadtest: query mix item %q: want kind=weight", item)
		}
		if !slices.Contains(queryKinds, kind) {
			return nil, fmt.Errorf("loadtest: query mix: unknown kind %q; use %s", kind, strings.Join(queryKinds, ", "))
		}
		if seen[kind] {
			return nil, fmt.Errorf("loadtest: query mix: %s given twice", kind)
		}
		seen[kind] = true
		weight, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || weight < 0 {
			return nil, fmt.Errorf("loadtest: query mix: weight of %s must be a whole number ≥ 0, not %q", kind, w)
		}
		if weight > 0 {
			out = append(out, weightedKind{kind, weight})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadtest: query mix %q has no kind with a positive weight", s)
	}
	return out, nil
}

// wrr is smooth weighted round-robin: every kind comes up in proportion
// to its weight, evenly spread, and all of them within one round.
type wrr struct {
	kinds   []weightedKind
	current []int
	total   int
}

func newWRR(kinds []weightedKind) *wrr {
	w := &wrr{kinds: kinds, current: make([]int, len(kinds))}
	for _, k := range kinds {
		w.total += k.weight
	}
	return w
}

func (w *wrr) next() string {
	best := 0
	for i, k := range w.kinds {
		w.current[i] += k.weight
		if w.current[i] > w.current[best] {
			best = i
		}
	}
	w.current[best] -= w.total
	return w.kinds[best].kind
}

// QueryStats is what one kind of query measured.
type QueryStats struct {
	// Count is the number of queries answered 200.
	Count int64 `json:"count"`
	// Errors counts the other answers by status ("conn": network error).
	Errors map[string]int64 `json:"errors,omitempty"`
	// Skipped counts queries not sent because queryConcurrency were in flight.
	Skipped int64   `json:"skipped,omitempty"`
	P50     float64 `json:"p50"`
	P95     float64 `json:"p95"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	// CacheHitShare is the share of 200 answers with X-Cache: HIT.
	CacheHitShare float64 `json:"cache_hit_share"`
	// Cache counts the 200 answers by X-Cache (HIT, MISS, STALE).
	Cache map[string]int64 `json:"cache"`
}

type kindStats struct {
	lat     *recorder
	errors  map[string]int64
	cache   map[string]int64
	skipped int64
}

// queryStats collects every kind's measures.
type queryStats struct {
	mu    sync.Mutex
	kinds map[string]*kindStats
	all   *recorder // every answered query, for the progress line
}

func newQueryStats(mix []weightedKind, seed uint64) *queryStats {
	q := &queryStats{kinds: map[string]*kindStats{}, all: newRecorder(1, seed)}
	for i, k := range mix {
		q.kinds[k.kind] = &kindStats{
			lat:    newRecorder(reservoirSize, seed+uint64(i)+1),
			errors: map[string]int64{}, cache: map[string]int64{},
		}
	}
	return q
}

func (q *queryStats) answered(kind string, d time.Duration, cache string) {
	k := q.kinds[kind]
	k.lat.add(d)
	q.all.add(d)
	if cache == "" {
		cache = "NONE"
	}
	q.mu.Lock()
	k.cache[cache]++
	q.mu.Unlock()
}

func (q *queryStats) failed(kind, key string) {
	q.mu.Lock()
	q.kinds[kind].errors[key]++
	q.mu.Unlock()
}

func (q *queryStats) skip(kind string) {
	q.mu.Lock()
	q.kinds[kind].skipped++
	q.mu.Unlock()
}

func (q *queryStats) report() map[string]QueryStats {
	out := make(map[string]QueryStats, len(q.kinds))
	q.mu.Lock()
	defer q.mu.Unlock()
	for name, k := range q.kinds {
		l := k.lat.latency()
		s := QueryStats{
			Count: l.Count, Skipped: k.skipped,
			P50: l.P50, P95: l.P95, P99: l.P99, Max: l.Max,
			Cache: map[string]int64{},
		}
		for c, n := range k.cache {
			s.Cache[c] = n
		}
		if len(k.errors) > 0 {
			s.Errors = map[string]int64{}
			for e, n := range k.errors {
				s.Errors[e] = n
			}
		}
		if l.Count > 0 {
			s.CacheHitShare = round3(float64(k.cache["HIT"]) / float64(l.Count))
		}
		out[name] = s
	}
	return out
}

// queryPath is the path and query of one query of kind.
func queryPath(kind string, rng *rand.Rand, now time.Time) string {
	switch kind {
	case KindLevel:
		return "/api/v1/logs?logLevel=ERROR"
	case KindSource:
		return "/api/v1/logs?" + url.Values{"source": {sources[rng.IntN(len(sources))]}}.Encode()
	case KindKeyword:
		return "/api/v1/logs?" + url.Values{"keyword": {vocabulary[rng.IntN(len(vocabulary))]}}.Encode()
	case KindStats:
		// Whole seconds, as a dashboard asking for "the last 15 minutes"
		// would send them.
		from := now.UTC().Truncate(time.Second).Add(-15 * time.Minute)
		return "/api/v1/logs/stats?" + url.Values{"startTime": {from.Format(time.RFC3339)}}.Encode()
	default:
		return "/api/v1/logs?size=20"
	}
}

// queryLoop sends QueryRate queries per second while logs are sent, and
// afterwards until every kind of the mix was sent at least once.
func (r *runner) queryLoop(ctx context.Context, sendDone <-chan struct{}) {
	t := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.QueryRate))
	defer t.Stop()
	rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), 0x9e3779b9))
	w := newWRR(r.mix)
	sent := map[string]int{}
	sem := make(chan struct{}, queryConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	var graceEnd time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-sendDone:
			sendDone, graceEnd = nil, time.Now().Add(queryGrace)
			if len(sent) == len(r.mix) {
				return
			}
			continue
		case <-t.C:
		}
		if sendDone == nil && (len(sent) == len(r.mix) || time.Now().After(graceEnd)) {
			return
		}
		kind := w.next()
		sent[kind]++
		path := queryPath(kind, rng, time.Now())
		select {
		case sem <- struct{}{}:
		default:
			r.queries.skip(kind)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			began := time.Now()
			status, header, _, err := r.do(ctx, http.MethodGet, r.cfg.GatewayURL+path, nil)
			d := time.Since(began)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					r.queries.failed(kind, "conn")
				}
			case status != http.StatusOK:
				r.queries.failed(kind, strconv.Itoa(status))
			default:
				r.queries.answered(kind, d, header.Get("X-Cache"))
			}
		})
	}
}
