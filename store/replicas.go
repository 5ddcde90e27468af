package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

// ReplicaConfig configures the gateway's reads from PostgreSQL streaming
// replicas.
type ReplicaConfig struct {
	// URLs name the replicas, one server each; none reads the primary.
	URLs []string
	// MaxLag is how far behind the primary a replica may be and still
	// answer a query whose window reaches past what it has replayed.
	MaxLag time.Duration
	// CheckInterval is the pause between two health checks of a replica.
	CheckInterval time.Duration
}

// DefaultReplicaConfig is the configuration with nothing set: no replicas.
func DefaultReplicaConfig() ReplicaConfig {
	return ReplicaConfig{MaxLag: 2 * time.Second, CheckInterval: time.Second}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *ReplicaConfig) RegisterFlags(fs *pflag.FlagSet) {
	flagvalue.ListVar(fs, &c.URLs, "postgres-read-url", c.URLs,
		"comma list of PostgreSQL streaming replica URLs (one server each) the gateway reads from; the primary (--postgres-url) answers when none is healthy or fresh enough")
	fs.DurationVar(&c.MaxLag, "max-replica-lag", c.MaxLag,
		"a replica further behind than this does not answer queries whose window reaches past what it has replayed")
	fs.DurationVar(&c.CheckInterval, "replica-check-interval", c.CheckInterval,
		"pause between health and lag checks of each replica; must be shorter than --max-replica-lag")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *ReplicaConfig) Validate() error {
	var p flagvalue.Problems
	for i, u := range c.URLs {
		if err := validReplicaURL(u); err != nil {
			p.Add("postgres-read-url", "URL %d: %v", i+1, err)
		}
	}
	p.Positive(map[string]time.Duration{"max-replica-lag": c.MaxLag, "replica-check-interval": c.CheckInterval})
	if c.CheckInterval >= c.MaxLag && c.MaxLag > 0 {
		// Between two checks a replica's known freshness ages by up to an
		// interval: a longer one would make every replica look late.
		p.Add("replica-check-interval", "must be shorter than --max-replica-lag (%s)", c.MaxLag)
	}
	return p.Err()
}

// validReplicaURL accepts a postgres:// URL naming one server. The list
// is split at commas, so a multi-host URL would arrive in pieces.
func validReplicaURL(u string) error {
	cc, err := pgconn.ParseConfig(u) // its errors redact the password
	if err != nil {
		return err
	}
	if !hasScheme(u) {
		return errors.New("must be a postgres:// URL")
	}
	// sslmode=prefer adds a fallback to the same server without TLS.
	for _, fb := range cc.Fallbacks {
		if fb.Host != cc.Host || fb.Port != cc.Port {
			return errors.New("must name one server (list each replica as its own URL)")
		}
	}
	return nil
}

func hasScheme(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// Route targets, the values of store_reads_routed_total's label.
const (
	// TargetReplica: a replica answered.
	TargetReplica = "replica"
	// TargetPrimary: the primary answered, as no healthy replica was
	// fresh enough for the query (or none is configured).
	TargetPrimary = "primary"
	// TargetFallback: the primary answered because no replica was
	// healthy, or the chosen one failed.
	TargetFallback = "fallback"
)

// Replicas routes the gateway's reads: searches, statistics and
// histograms go round-robin to the healthy replicas fresh enough for
// them, everything else and every write to the primary. It is the query
// service's store; the consumer and maintenance use the primary *Store.
//
// Freshness. Every CheckInterval each replica reports whether it is in
// recovery, whether its WAL receiver runs and has replayed all it
// received, and the commit time of the last transaction it replayed. Its
// lag is 0 when it has replayed all it received (an idle primary sends
// nothing, and the replica is then as current as the primary), else now
// minus that commit time. Its fresh point is the time of the check minus
// the lag: every commit before it is visible on the replica. A query
// whose window ends after the fresh point (or has no end) goes to the
// replica only if the fresh point is within MaxLag of now.
//
// Cache. A query asked WithUpToDate (the query service does for answers
// it keys by invalidation epochs) goes to a replica only once that
// replica has replayed the primary's WAL position read after the call
// began (waiting at most MaxLag), so it holds every write whose epoch bump
// its caller could have seen; else the primary answers.
type Replicas struct {
	cfg     ReplicaConfig
	primary *Store
	log     *slog.Logger
	reg     prometheus.Registerer
	reps    []*replica
	next    atomic.Uint64
	m       replicaMetrics
	now     func() time.Time
	// fencePoll is the pause between two looks at a replica's replayed
	// position while a query waits for it.
	fencePoll time.Duration
}

type replica struct {
	name string // host:port, for labels and logs; never the password
	url  string

	mu    sync.Mutex
	st    *Store // nil until it first opened
	up    bool
	fresh time.Time     // every commit before it is replayed
	lag   time.Duration // at the last check
	why   string        // why it is down, for the log at a change
}

type replicaMetrics struct {
	lag    *prometheus.GaugeVec
	up     *prometheus.GaugeVec
	routed *prometheus.CounterVec
	fences *prometheus.CounterVec
}

func (m replicaMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.lag, m.up, m.routed, m.fences}
}

// NewReplicas routes reads between primary and the replicas cfg names.
// Replicas open, and are checked, once Run runs; until then the primary
// answers. reg may be nil.
func NewReplicas(cfg ReplicaConfig, primary *Store, logger *slog.Logger, reg prometheus.Registerer) (*Replicas, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r := &Replicas{cfg: cfg, primary: primary, log: logger, reg: reg, now: time.Now, fencePoll: 10 * time.Millisecond}
	for _, u := range cfg.URLs {
		cc, err := pgconn.ParseConfig(u)
		if err != nil {
			return nil, fmt.Errorf("store: replica: %w", err)
		}
		r.reps = append(r.reps, &replica{name: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), url: u, why: "not checked yet"})
	}
	r.m = replicaMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "store_replica_lag_seconds",
			Help: "How far a read replica is behind the primary at its last check (0 when it has replayed all the WAL it received); while checks fail, the time since it was last known fresh.",
		}, []string{"replica"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "store_replica_up",
			Help: "1 when a read replica passed its last health check (reachable and in recovery), else 0.",
		}, []string{"replica"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "store_reads_routed_total",
			Help: "Gateway reads (search, stats, histogram) by who answered: replica, primary (no replica fresh enough, or none configured), fallback (no replica healthy, or it failed).",
		}, []string{"target"}),
		fences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "store_replica_fences_total",
			Help: "Reads that had to hold every committed write (cached by invalidation epochs), by outcome: caught_up (a replica answered), behind (it did not catch up within --max-replica-lag), failed.",
		}, []string{"outcome"}),
	}
	for _, t := range []string{TargetReplica, TargetPrimary, TargetFallback} {
		r.m.routed.WithLabelValues(t)
	}
	for _, o := range []string{"caught_up", "behind", "failed"} {
		r.m.fences.WithLabelValues(o)
	}
	for _, rep := range r.reps {
		r.m.up.WithLabelValues(rep.name).Set(0)
		r.m.lag.WithLabelValues(rep.name)
	}
	for i, c := range r.m.all() {
		if err := reg.Register(c); err != nil {
			for _, done := range r.m.all()[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("store: register replica metrics: %w", err)
		}
	}
	return r, nil
}

// Config is the configuration the router runs with.
func (r *Replicas) Config() ReplicaConfig { return r.cfg }

// Run checks every replica every CheckInterval until ctx ends, the first
// check at once. It returns only then, even with no replica to check.
func (r *Replicas) Run(ctx context.Context) error {
	if len(r.reps) == 0 {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	for _, rep := range r.reps {
		wg.Go(func() {
			t := time.NewTicker(r.cfg.CheckInterval)
			defer t.Stop()
			for {
				r.check(ctx, rep)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// Close closes the replicas' pools and unregisters the metrics. Call it
// after Run returned and no query runs.
func (r *Replicas) Close() {
	for _, rep := range r.reps {
		rep.mu.Lock()
		if rep.st != nil {
			rep.st.Close()
			rep.st = nil
		}
		rep.mu.Unlock()
	}
	for _, c := range r.m.all() {
		r.reg.Unregister(c)
	}
}

// ReplicaStatus is one replica as the last check left it.
type ReplicaStatus struct {
	Name string        // host:port
	Up   bool          // it passed the last check
	Lag  time.Duration // at the last check
}

// Status lists the replicas in the order of the configuration.
func (r *Replicas) Status() []ReplicaStatus {
	out := make([]ReplicaStatus, len(r.reps))
	for i, rep := range r.reps {
		rep.mu.Lock()
		out[i] = ReplicaStatus{Name: rep.name, Up: rep.up, Lag: rep.lag}
		rep.mu.Unlock()
	}
	return out
}

// replicaCheck is one health check: in recovery (a promoted replica is
// a primary of its own, whose writes the consumer never sees); WAL
// receiver running and everything received replayed; the lag behind the
// last replayed commit, on the replica's clock. Any role may run it.
const replicaCheck = `SELECT pg_is_in_recovery(),
	coalesce(pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), false)
		AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver),
	extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`

// check opens rep if it is not yet open, then measures its health and lag.
func (r *Replicas) check(ctx context.Context, rep *replica) {
	ctx, cancel := context.WithTimeout(ctx, max(r.cfg.CheckInterval, time.Second))
	defer cancel()
	rep.mu.Lock()
	st := rep.st
	rep.mu.Unlock()
	if st == nil {
		cfg := r.primary.Config()
		cfg.URL = rep.url
		// Its own registry: the store's metrics would collide with the
		// primary's; the router's own metrics name the replica.
		s, err := OpenReadOnly(ctx, cfg, r.log, prometheus.NewRegistry())
		if err != nil {
			if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
				r.down(rep, err.Error())
			}
			return
		}
		rep.mu.Lock()
		rep.st, st = s, s
		rep.mu.Unlock()
	}
	start := r.now()
	var (
		inRecovery, replayedAll bool
		lagSeconds              *float64
	)
	err := st.pool.QueryRow(ctx, replicaCheck).Scan(&inRecovery, &replayedAll, &lagSeconds)
	switch {
	case err != nil:
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.down(rep, "health check: "+err.Error())
		}
		return
	case !inRecovery:
		r.down(rep, "it is not in recovery: a primary, or a promoted replica, whose writes the consumer does not see")
		return
	}
	// Nothing replayed since it started and still replaying: how far
	// behind is unknown, so as far as can be (fresh stays zero).
	lag, fresh, gauge := time.Duration(0), start, 0.0
	switch {
	case replayedAll:
	case lagSeconds != nil:
		lag = max(time.Duration(*lagSeconds*float64(time.Second)), 0)
		fresh, gauge = start.Add(-lag), lag.Seconds()
	default:
		lag, fresh, gauge = math.MaxInt64, time.Time{}, math.Inf(1)
	}
	rep.mu.Lock()
	wasUp := rep.up
	rep.up, rep.lag, rep.fresh, rep.why = true, lag, fresh, ""
	rep.mu.Unlock()
	r.m.up.WithLabelValues(rep.name).Set(1)
	r.m.lag.WithLabelValues(rep.name).Set(gauge)
	if !wasUp {
		r.log.Info("read replica is up", "replica", rep.name, "lag", lag)
	}
}

// down marks rep unhealthy until its next good check.
func (r *Replicas) down(rep *replica, why string) {
	rep.mu.Lock()
	wasUp, before := rep.up, rep.why
	rep.up, rep.why = false, why
	fresh := rep.fresh
	rep.mu.Unlock()
	r.m.up.WithLabelValues(rep.name).Set(0)
	if !fresh.IsZero() {
		r.m.lag.WithLabelValues(rep.name).Set(r.now().Sub(fresh).Seconds())
	}
	if wasUp || before != why {
		r.log.Warn("read replica is down: reads go to the primary", "replica", rep.name, "reason", why)
	}
}

// state is what routing needs of rep.
func (rep *replica) state() (st *Store, up bool, fresh time.Time) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return rep.st, rep.up && rep.st != nil, rep.fresh
}

// pick chooses the replica for a query whose window ends at end (zero:
// no end), round-robin among the healthy ones fresh enough for it; nil
// and the target of the primary when there is none.
func (r *Replicas) pick(end time.Time, upToDate bool) (*replica, *Store, string) {
	n := uint64(len(r.reps))
	if n == 0 {
		return nil, nil, TargetPrimary
	}
	now := r.now()
	first := r.next.Add(1)
	anyUp := false
	for i := range n {
		rep := r.reps[(first+i)%n]
		st, up, fresh := rep.state()
		if !up {
			continue
		}
		anyUp = true
		recent := now.Sub(fresh) <= r.cfg.MaxLag
		// A window ending before the fresh point is all replayed, but for
		// late writes into the past (backfill): fine for answers kept a
		// short while, not for those kept by epochs.
		before := !end.IsZero() && !end.After(fresh)
		if recent || (before && !upToDate) {
			return rep, st, TargetReplica
		}
	}
	if anyUp {
		return nil, nil, TargetPrimary
	}
	return nil, nil, TargetFallback
}

// caughtUp reports whether the replica has replayed the primary's WAL
// position as it is now, waiting at most MaxLag for it. An error is the
// replica's; the primary not answering is false. The position is where
// WAL is inserted, not where it is written: with synchronous_commit off
// a commit returns (and its epochs are bumped) before its WAL is written.
func (r *Replicas) caughtUp(ctx context.Context, st *Store) (bool, error) {
	var lsn string
	if err := r.primary.pool.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.MaxLag)
	defer cancel()
	for {
		var done bool
		err := st.pool.QueryRow(wctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn).Scan(&done)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return false, nil // waited long enough
			}
			return false, err
		}
		if done {
			return true, nil
		}
		select {
		case <-wctx.Done():
			return false, nil
		case <-time.After(r.fencePoll):
		}
	}
}

// read runs fn on the store chosen for a query whose window ends at end.
func read[T any](ctx context.Context, r *Replicas, end time.Time, fn func(*Store) (T, error)) (T, error) {
	upToDate := logs.UpToDate(ctx)
	rep, st, target := r.pick(end, upToDate)
	if rep != nil && upToDate {
		ok, err := r.caughtUp(ctx, st)
		switch {
		case err != nil:
			r.m.fences.WithLabelValues("failed").Inc()
			if ctx.Err() != nil {
				var zero T
				return zero, ctx.Err()
			}
			r.failed(rep, err)
			rep, target = nil, TargetFallback
		case !ok:
			r.m.fences.WithLabelValues("behind").Inc()
			rep, target = nil, TargetPrimary
		default:
			r.m.fences.WithLabelValues("caught_up").Inc()
		}
	}
	if rep != nil {
		v, err := fn(st)
		if err == nil || ctx.Err() != nil || !retryOnPrimary(err) {
			r.m.routed.WithLabelValues(TargetReplica).Inc()
			return v, err
		}
		r.failed(rep, err)
		target = TargetFallback
	}
	r.m.routed.WithLabelValues(target).Inc()
	return fn(r.primary)
}

// retryOnPrimary reports whether a replica's error may not be the
// primary's too: not a statement timeout, not bad data.
func retryOnPrimary(err error) bool {
	return !IsDataError(err) && pgCode(err) != pgerrcode.QueryCanceled
}

// failed marks rep down after a query error that is not the query's own
// (a conflict with recovery is, and leaves it up).
func (r *Replicas) failed(rep *replica, err error) {
	if IsQueryError(err) {
		r.log.Debug("a read replica refused a query; the primary answers it", "replica", rep.name, "err", err)
		return
	}
	r.down(rep, "query: "+err.Error())
}

// Search is Store.Search on the store the query is routed to.
func (r *Replicas) Search(ctx context.Context, q logs.Search) (logs.Page, error) {
	return read(ctx, r, q.End, func(s *Store) (logs.Page, error) { return s.Search(ctx, q) })
}

// Stats is Store.Stats on the store the query is routed to.
func (r *Replicas) Stats(ctx context.Context, q logs.Stats) (logs.StatsResult, error) {
	return read(ctx, r, q.End, func(s *Store) (logs.StatsResult, error) { return s.Stats(ctx, q) })
}

// Histogram is Store.Histogram on the store the query is routed to.
func (r *Replicas) Histogram(ctx context.Context, q logs.Histogram) (logs.HistogramResult, error) {
	return read(ctx, r, q.End, func(s *Store) (logs.HistogramResult, error) { return s.Histogram(ctx, q) })
}

// Identity is the primary's: a physical replica has the same system
// identifier and database, so cached answers are shared. While the
// primary does not answer, a healthy replica tells it.
func (r *Replicas) Identity(ctx context.Context) (string, error) {
	id, err := r.primary.Identity(ctx)
	if err == nil || ctx.Err() != nil {
		return id, err
	}
	for _, rep := range r.reps {
		if st, up, _ := rep.state(); up {
			if id, rerr := st.Identity(ctx); rerr == nil {
				return id, nil
			}
		}
	}
	return "", err
}
