// Package query is the read side: it parses searches and statistics
// requests, answers them from the cache or PostgreSQL behind a circuit
// breaker, and serves the gateway's HTTP API.
package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/resilience"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"
)

// Store is the read side of PostgreSQL.
type Store interface {
	Search(ctx context.Context, q logs.Search) (logs.Page, error)
	Stats(ctx context.Context, q logs.Stats) (logs.StatsResult, error)
	Histogram(ctx context.Context, q logs.Histogram) (logs.HistogramResult, error)
	// Identity names the database answers come from; cache keys include
	// it, so that deployments sharing one Redis never serve each other's.
	Identity(ctx context.Context) (string, error)
}

// Cache holds encoded answers. Get and Set never fail: a problem is a miss.
type Cache interface {
	Key(kind string, parts ...string) string
	Get(ctx context.Context, tier, key string) ([]byte, bool)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration)
	// Epochs fingerprints the invalidation epochs of the hours of a window;
	// ok is false when the cache cannot tell.
	Epochs(ctx context.Context, from, to time.Time) (fingerprint string, ok bool)
}

// Cache statuses, sent in the X-Cache header.
const (
	CacheHit   = "HIT"
	CacheMiss  = "MISS"
	CacheStale = "STALE"
)

// ErrUnavailable means PostgreSQL cannot answer and nothing is cached.
var ErrUnavailable = errors.New("the log store is unavailable")

// ErrBusy means too many queries run at once; the client should retry.
var ErrBusy = errors.New("too many queries at once")

// ErrRefused means PostgreSQL refused this query (for example it ran past
// the statement timeout) while it is otherwise healthy.
var ErrRefused = errors.New("the log store refused the query")

// ServiceConfig shapes the query service.
type ServiceConfig struct {
	// CacheTTL is the life of an answer for a window touching the last
	// HotWindow: bounded staleness, as the CQRS design accepts.
	CacheTTL  time.Duration
	HotWindow time.Duration
	// ClosedTTL (searches) and AggregateTTL (stats, histograms) are the
	// lives of answers for windows entirely in the past. Their keys carry
	// the windows' invalidation epochs, so they are exact however long.
	ClosedTTL    time.Duration
	AggregateTTL time.Duration
	// StaleTTL is how long the last good answer is kept to serve, marked
	// STALE, while PostgreSQL is down.
	StaleTTL     time.Duration
	QueryTimeout time.Duration
	Breaker      resilience.BreakerConfig
	// IsQueryError tells an error of one query (a timeout, a bad value)
	// from the store being down; only the latter counts against the breaker.
	IsQueryError func(error) bool
	// MaxConcurrent bounds the database queries running at once; a query
	// waits at most MaxWait for a place, then gets ErrBusy.
	MaxConcurrent int
	MaxWait       time.Duration
	// MaxResponseBytes bounds the JSON of one search page: past it the
	// page ends early with a cursor to continue, as a full page does.
	MaxResponseBytes int
	// Tracer records a span per query; nil records nothing. Set by the
	// caller, like IsQueryError, not by a flag.
	Tracer trace.TracerProvider
}

// DefaultServiceConfig is the configuration with nothing set.
func DefaultServiceConfig() ServiceConfig {
	return ServiceConfig{
		CacheTTL:      30 * time.Second,
		HotWindow:     15 * time.Minute,
		ClosedTTL:     5 * time.Minute,
		AggregateTTL:  time.Hour,
		StaleTTL:      24 * time.Hour,
		QueryTimeout:  10 * time.Second,
		Breaker:       resilience.BreakerConfig{Failures: 3, Delay: 10 * time.Second},
		MaxConcurrent: 16,
		MaxWait:       100 * time.Millisecond,
		// A thousand logs of a few hundred bytes fit many times over; a
		// thousand of 80 KB do not.
		MaxResponseBytes: 8 << 20,
	}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *ServiceConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&c.CacheTTL, "cache-ttl", c.CacheTTL, "lifetime of a cached answer for a window touching the last --hot-window (bounded staleness)")
	fs.DurationVar(&c.ClosedTTL, "cache-ttl-closed", c.ClosedTTL, "lifetime of a cached search over a window entirely in the past (kept exact by invalidation epochs)")
	fs.DurationVar(&c.AggregateTTL, "cache-ttl-aggregates", c.AggregateTTL, "lifetime of cached stats and histograms over a window entirely in the past")
	fs.DurationVar(&c.StaleTTL, "cache-ttl-stale", c.StaleTTL, "how long the last good answer is kept to serve, marked STALE, while PostgreSQL is down")
	fs.DurationVar(&c.HotWindow, "hot-window", c.HotWindow, "a window ending less than this ago is hot: cached for --cache-ttl only")
	fs.DurationVar(&c.QueryTimeout, "query-timeout", c.QueryTimeout, "deadline of one gateway query")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent-queries", c.MaxConcurrent, "database queries the gateway runs at once (429 beyond)")
	fs.DurationVar(&c.MaxWait, "query-queue-wait", c.MaxWait, "how long a query waits for a free place before 429")
	fs.IntVar(&c.MaxResponseBytes, "max-response-bytes", c.MaxResponseBytes, "largest JSON answer of one search page; past it the page ends early with a nextCursor to continue (one log larger than this is still sent alone)")
	fs.IntVar(&c.Breaker.Failures, "breaker-failures", c.Breaker.Failures, "consecutive PostgreSQL failures that open the gateway's breaker")
	fs.DurationVar(&c.Breaker.Delay, "breaker-delay", c.Breaker.Delay, "how long the breaker stays open before it probes again")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *ServiceConfig) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{"max-concurrent-queries": int64(c.MaxConcurrent), "breaker-failures": int64(c.Breaker.Failures)})
	p.Positive(map[string]time.Duration{
		"cache-ttl": c.CacheTTL, "cache-ttl-closed": c.ClosedTTL, "cache-ttl-aggregates": c.AggregateTTL,
		"cache-ttl-stale": c.StaleTTL, "hot-window": c.HotWindow, "query-timeout": c.QueryTimeout, "breaker-delay": c.Breaker.Delay,
	})
	p.NotNegative(map[string]time.Duration{"query-queue-wait": c.MaxWait})
	if c.MaxResponseBytes < minResponseBytes {
		p.Add("max-response-bytes", "must be at least %d, not %d", minResponseBytes, c.MaxResponseBytes)
	}
	return p.Err()
}

// Service answers queries: cache first, then PostgreSQL behind a breaker.
type Service struct {
	cfg      ServiceConfig
	store    Store
	cache    Cache
	breaker  *resilience.Breaker
	bulkhead *resilience.Bulkhead
	flight   singleflight.Group
	logger   *slog.Logger
	now      func() time.Time
	tracer   trace.Tracer

	identity atomic.Pointer[string] // the store's, once known
}

// NewService builds the service.
func NewService(cfg ServiceConfig, store Store, cache Cache, logger *slog.Logger, reg prometheus.Registerer) *Service {
	if cfg.IsQueryError == nil {
		cfg.IsQueryError = func(error) bool { return false }
	}
	// A query the client abandoned, or one PostgreSQL refused, says nothing
	// about PostgreSQL's health.
	dbDown := func(err error) bool { return !errors.Is(err, context.Canceled) && !cfg.IsQueryError(err) }
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider()
	}
	return &Service{
		cfg: cfg, store: store, cache: cache, logger: logger,
		bulkhead: resilience.NewBulkhead(cfg.MaxConcurrent, cfg.MaxWait), now: time.Now,
		tracer:  cfg.Tracer.Tracer("logengine/query"),
		breaker: resilience.NewBreaker("postgres", cfg.Breaker, dbDown, logger, metrics.NewBreaker(reg)),
	}
}

// Config is the configuration the service runs with.
func (s *Service) Config() ServiceConfig { return s.cfg }

// BreakerState is the database breaker's state, for health.
func (s *Service) BreakerState() string { return s.breaker.State() }

// Search answers a search with its encoded JSON page and the cache status.
func (s *Service) Search(ctx context.Context, q logs.Search) ([]byte, string, error) {
	if len(q.Tenants) == 0 {
		q.Tenants = logs.TenantsFrom(ctx)
	}
	// Cursor pages of a walk are not kept for outages: worth little, and a
	// long walk would fill Redis with them.
	keepStale := q.After == nil
	parts := append(searchKey(q), "maxBytes:"+strconv.Itoa(s.cfg.MaxResponseBytes))
	return s.cached(ctx, "search", keepStale, q.Start, q.End, parts, func(ctx context.Context) ([]byte, error) {
		return s.boundedPage(ctx, q)
	})
}

// Stats answers a statistics request with its encoded JSON body.
func (s *Service) Stats(ctx context.Context, q logs.Stats) ([]byte, string, error) {
	if len(q.Tenants) == 0 {
		q.Tenants = logs.TenantsFrom(ctx)
	}
	return s.cached(ctx, "stats", true, q.Start, q.End, statsKey(q), func(ctx context.Context) ([]byte, error) {
		res, err := s.store.Stats(ctx, q)
		if err != nil {
			return nil, err
		}
		return encodeStats(q, res)
	})
}

// Histogram answers a histogram request with its encoded JSON body.
func (s *Service) Histogram(ctx context.Context, q logs.Histogram) ([]byte, string, error) {
	if len(q.Tenants) == 0 {
		q.Tenants = logs.TenantsFrom(ctx)
	}
	return s.cached(ctx, "histogram", true, q.Start, q.End, histogramKey(q), func(ctx context.Context) ([]byte, error) {
		res, err := s.store.Histogram(ctx, q)
		if err != nil {
			return nil, err
		}
		return encodeHistogram(q, res)
	})
}

type noCacheKey struct{}

// WithoutCacheRead marks a request that must be answered by the store
// (Cache-Control: no-cache): the cache is not read, but still refreshed.
func WithoutCacheRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, noCacheKey{}, true)
}

func skipsCache(ctx context.Context) bool {
	v, _ := ctx.Value(noCacheKey{}).(bool)
	return v
}

// cached is cache-aside with one database query per key at a time and the
// last good answer as a fallback while the database is down.
func (s *Service) cached(ctx context.Context, kind string, keepStale bool, start, end time.Time, parts []string, load func(context.Context) ([]byte, error)) (body []byte, status string, err error) {
	ctx, span := s.tracer.Start(ctx, "query."+kind)
	defer func() {
		span.SetAttributes(attribute.String("cache.status", status))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	cache := s.cache
	id, idErr := s.storeIdentity(ctx)
	if idErr != nil {
		// Without the store's identity no key is safe to read or write.
		// The query itself most likely fails too, and says so.
		s.logger.Debug("the store's identity is unknown: answering without the cache", "err", idErr)
		cache = noCache{}
	}
	parts = append([]string{"store=" + id}, parts...)
	// The last good answer, for outages, is kept under the plain key.
	staleKey := cache.Key(kind, parts...) + ":stale"
	tier, ttl := "hot", s.cfg.CacheTTL
	if end.Before(s.now().Add(-s.cfg.HotWindow)) && end.Sub(start) <= maxEpochWindow {
		if fp, ok := cache.Epochs(ctx, start, end); ok {
			tier, ttl = "closed", s.cfg.ClosedTTL
			if kind != "search" {
				ttl = s.cfg.AggregateTTL
			}
			parts = append(parts, "epochs:"+fp)
			// Kept while these epochs last: the answer must hold every
			// write they count, so no replica behind them may give it.
			ctx = logs.WithUpToDate(ctx)
		}
	}
	key := cache.Key(kind, parts...)
	if !skipsCache(ctx) {
		if body, ok := cache.Get(ctx, tier, key); ok {
			return body, CacheHit, nil
		}
	}
	v, err, _ := s.flight.Do(key, func() (any, error) {
		// Detached from one caller's cancellation: others share the result.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.QueryTimeout)
		defer cancel()
		var body []byte
		err := s.bulkhead.Run(qctx, func(ctx context.Context) error {
			return s.breaker.Run(ctx, func(ctx context.Context) error {
				var err error
				body, err = load(ctx)
				return err
			})
		})
		if err != nil {
			return nil, err
		}
		cache.Set(qctx, key, body, ttl)
		if keepStale {
			cache.Set(qctx, staleKey, body, s.cfg.StaleTTL)
		}
		return body, nil
	})
	if err == nil {
		return v.([]byte), CacheMiss, nil
	}
	if ctx.Err() != nil {
		return nil, "", ctx.Err()
	}
	if errors.Is(err, resilience.ErrFull) {
		return nil, "", ErrBusy
	}
	if s.cfg.IsQueryError(err) {
		return nil, "", fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if body, ok := cache.Get(ctx, "stale", staleKey); ok {
		s.logger.Warn("serving a stale answer; the store failed", "kind", kind, "err", err)
		return body, CacheStale, nil
	}
	s.logger.Warn("query failed", "kind", kind, "err", err)
	return nil, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// storeIdentity is the store's identity, asked once and then remembered
// (a database keeps it for life). Concurrent first callers share one
// question, which goes through the breaker, so a store known to be down
// is not asked again and again.
func (s *Service) storeIdentity(ctx context.Context) (string, error) {
	if id := s.identity.Load(); id != nil {
		return *id, nil
	}
	// The flight's keys are cache keys, which never start with a NUL.
	v, err, _ := s.flight.Do("\x00identity", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.QueryTimeout)
		defer cancel()
		var id string
		err := s.breaker.Run(ctx, func(ctx context.Context) error {
			var err error
			id, err = s.store.Identity(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		s.identity.Store(&id)
		return id, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// noCache always misses: the service's cache while it cannot tell whose
// answers a key would hold.
type noCache struct{}

func (noCache) Key(kind string, parts ...string) string {
	// Still a key: concurrent identical misses share one query by it.
	return kind + "\x00" + listKey(parts)
}

func (noCache) Get(context.Context, string, string) ([]byte, bool)          { return nil, false }
func (noCache) Set(context.Context, string, []byte, time.Duration)          {}
func (noCache) Epochs(context.Context, time.Time, time.Time) (string, bool) { return "", false }

// maxEpochWindow bounds the hours whose epochs one key carries (one
// client-side cached GET each); longer windows use the hot tier's TTL.
const maxEpochWindow = 31 * 24 * time.Hour

func timeKey(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func searchKey(q logs.Search) []string {
	levels := make([]string, len(q.Levels))
	for i, l := range q.Levels {
		levels[i] = string(l)
	}
	cursor := ""
	if q.After != nil {
		cursor = encodeCursor(*q.After)
	}
	return []string{
		listKey(q.Tenants), timeKey(q.Start), timeKey(q.End), strings.Join(levels, ","), listKey(q.Sources),
		strings.ToLower(q.Keyword), q.TraceID, strconv.Itoa(q.Page), strconv.Itoa(q.Size),
		cursor, strconv.FormatBool(q.Asc), strconv.Itoa(q.CountLimit), metaKey(q.Meta),
	}
}

// listKey encodes a list so that no two lists share a form: each item is
// preceded by its length, so "a,b" as one source and "a" and "b" as two
// differ whatever bytes the items hold.
func listKey(items []string) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(strconv.Itoa(len(it)))
		b.WriteByte(':')
		b.WriteString(it)
	}
	return b.String()
}

func metaKey(m []logs.MetaMatch) string {
	var b strings.Builder
	for _, mm := range m {
		b.WriteString(strconv.Quote(mm.Key) + "=" + strconv.Quote(mm.Value) + ";")
	}
	return b.String()
}

func histogramKey(q logs.Histogram) []string {
	levels := make([]string, len(q.Levels))
	for i, l := range q.Levels {
		levels[i] = string(l)
	}
	return []string{listKey(q.Tenants), timeKey(q.Start), timeKey(q.End), strings.Join(levels, ","), listKey(q.Sources), q.Interval.String()}
}

func statsKey(q logs.Stats) []string {
	levels := make([]string, len(q.Levels))
	for i, l := range q.Levels {
		levels[i] = string(l)
	}
	return []string{listKey(q.Tenants), timeKey(q.Start), timeKey(q.End), strings.Join(levels, ","), listKey(q.Sources), strconv.Itoa(q.Top)}
}

// LogJSON is one log as the API returns it.
type LogJSON struct {
	ID        string          `json:"id"`
	Timestamp string          `json:"timestamp"`
	LogLevel  logs.Level      `json:"logLevel"`
	Source    string          `json:"source"`
	Message   string          `json:"message"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	TraceID   string          `json:"traceId,omitempty"`
	// Tenant is shown only in answers across tenants.
	Tenant string `json:"tenant,omitempty"`
}

// Marshal encodes v as JSON without HTML escaping, so messages and
// sources read as they were written ("<" stays "<", not "\u003c").
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// NewLogJSON is the API's form of a log.
func NewLogJSON(e logs.Event) LogJSON {
	return LogJSON{
		ID: e.ID.String(), Timestamp: e.Timestamp.UTC().Format(time.RFC3339Nano), LogLevel: e.Level,
		Source: e.Source, Message: e.Message, Metadata: e.Metadata, TraceID: e.TraceID, Tenant: e.Tenant,
	}
}

// PageJSON is the tutorial's page object plus a keyset cursor: the
// content, then the fields a streamed page writes after it.
type PageJSON struct {
	Content []LogJSON `json:"content"`
	pageFooter
}

// encodeStats writes topSources as an object in count order, which a Go
// map would lose.
func encodeStats(q logs.Stats, r logs.StatsResult) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"logLevelDistribution":{`)
	first := true
	for _, l := range logs.AllLevels() {
		if n, ok := r.ByLevel[l]; ok {
			if !first {
				b.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&b, "%q:%d", l, n)
		}
	}
	b.WriteString(`},"topSources":{`)
	for i, sc := range r.TopSources {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := Marshal(sc.Source)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		fmt.Fprintf(&b, ":%d", sc.Count)
	}
	fmt.Fprintf(&b, `},"totalCount":%d,"startTime":%q,"endTime":%q}`, r.Total, timeKey(q.Start), timeKey(q.End))
	return b.Bytes(), nil
}

type bucketJSON struct {
	Time   string               `json:"time"`
	Counts map[logs.Level]int64 `json:"counts"`
	Total  int64                `json:"total"`
}

func encodeHistogram(q logs.Histogram, r logs.HistogramResult) ([]byte, error) {
	out := struct {
		Interval  string       `json:"interval"`
		StartTime string       `json:"startTime"`
		EndTime   string       `json:"endTime"`
		Buckets   []bucketJSON `json:"buckets"`
	}{Interval: formatInterval(q.Interval), StartTime: timeKey(q.Start), EndTime: timeKey(q.End), Buckets: make([]bucketJSON, len(r.Buckets))}
	for i, b := range r.Buckets {
		out.Buckets[i] = bucketJSON{Time: timeKey(b.Time), Counts: b.Counts, Total: b.Total}
	}
	return Marshal(out)
}
