// Package cache is logengine's Redis layer: namespaced keys, reads and
// writes bounded by a short timeout, a breaker so that a Redis outage costs
// a request nothing, a local tier (rueidis client-side caching, kept exact
// by Redis invalidation messages) and per-hour invalidation epochs. Redis
// is optional: every failure is a miss.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/resilience"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/spf13/pflag"
)

// Config shapes the cache.
type Config struct {
	Addr string
	// Prefix namespaces and versions every key; change it when the cached
	// format changes.
	Prefix string
	// Timeout bounds one Redis operation; past it the operation is a miss.
	Timeout time.Duration
	// Breaker opens after consecutive failures so later calls skip Redis.
	Breaker resilience.BreakerConfig
	// LocalBytes bounds the in-process copy of hot entries, per connection
	// (0 = rueidis's default, 128 MiB); LocalTTL bounds an entry's life in it.
	LocalBytes int
	LocalTTL   time.Duration
	// EpochTTL is how long an unused epoch counter lives.
	EpochTTL time.Duration
	// MaxBytes is the byte budget of the answers cached in Redis under
	// Prefix, their last good copies included, enforced by logengine
	// itself: past it the oldest are evicted.
	MaxBytes int64
	// MaxEntryBytes is the largest answer cached; larger ones are served
	// but never stored.
	MaxEntryBytes int
	Security      Security
}

// DefaultConfig is the configuration with nothing set.
func DefaultConfig() Config {
	return Config{
		Addr:       "127.0.0.1:6379",
		Prefix:     "logengine:v1:",
		Timeout:    100 * time.Millisecond,
		Breaker:    resilience.BreakerConfig{Failures: 3, Delay: 5 * time.Second},
		LocalBytes: 32 << 20,
		LocalTTL:   time.Minute,
		EpochTTL:   30 * 24 * time.Hour,
		MaxBytes:   256 << 20,
		// A page of 1,000 typical logs is a few hundred kilobytes.
		MaxEntryBytes: 1 << 20,
	}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Addr, "redis-addr", c.Addr, "Redis address of the query cache; empty disables the cache")
	fs.StringVar(&c.Prefix, "cache-prefix", c.Prefix, "prefix of every cache key in Redis")
	fs.IntVar(&c.LocalBytes, "cache-local-bytes", c.LocalBytes, "bytes of the in-process cache tier per Redis connection")
	fs.DurationVar(&c.Timeout, "cache-timeout", c.Timeout, "deadline of one Redis operation; past it the operation counts as a miss")
	fs.Int64Var(&c.MaxBytes, "cache-max-bytes", c.MaxBytes, "byte budget of the answers cached in Redis under --cache-prefix, last good copies included; past it the oldest are evicted")
	fs.IntVar(&c.MaxEntryBytes, "cache-max-entry-bytes", c.MaxEntryBytes, "largest answer cached in Redis; larger answers are served but not cached")
	s := &c.Security
	fs.StringVar(&s.User, "redis-user", s.User, "Redis ACL user (empty: the default user)")
	fs.StringVar(&s.PasswordFile, "redis-password-file", s.PasswordFile, "file holding the Redis password, read at every connection (or set LOGENGINE_REDIS_PASSWORD; never a flag)")
	fs.BoolVar(&s.TLS, "redis-tls", s.TLS, "connect to Redis over TLS (the system's CAs unless --redis-tls-ca-file)")
	fs.StringVar(&s.TLSCAFile, "redis-tls-ca-file", s.TLSCAFile, "PEM CA certificates that sign Redis's certificate")
	fs.StringVar(&s.TLSCertFile, "redis-tls-cert-file", s.TLSCertFile, "PEM client certificate, for a Redis that requires one")
	fs.StringVar(&s.TLSKeyFile, "redis-tls-key-file", s.TLSKeyFile, "PEM private key of --redis-tls-cert-file")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *Config) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{"cache-local-bytes": int64(c.LocalBytes), "cache-max-bytes": c.MaxBytes, "cache-max-entry-bytes": int64(c.MaxEntryBytes)})
	c.Security.validate(p.Add)
	if c.MaxBytes > 0 && int64(c.MaxEntryBytes) > c.MaxBytes {
		p.Add("cache-max-entry-bytes", "must not be more than --cache-max-bytes (%d), not %d", c.MaxBytes, c.MaxEntryBytes)
	}
	p.Positive(map[string]time.Duration{"cache-timeout": c.Timeout})
	return p.Err()
}

// Config is the configuration the cache runs with.
func (c *Cache) Config() Config { return c.cfg }

// Cache is a Redis-backed byte cache. A nil *Cache is a valid, always-miss
// cache, for when no Redis address is configured.
type Cache struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics.Cache
	breaker *resilience.Breaker

	mu     sync.Mutex
	client rueidis.Client // nil until Redis first answers

	// bumpMissed is set when epochs could not be bumped (Redis unreachable
	// from the writer): the next successful bump also bumps the global
	// generation, which every epoch fingerprint includes, so entries that
	// missed an invalidation are never read again.
	bumpMissed atomic.Bool
}

// New returns a cache for cfg.Addr. Redis need not be up: the connection is
// made on first use and retried while the breaker lets calls through.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Cache {
	m := metrics.NewCache(reg)
	for _, reason := range []string{"too_large", "budget"} {
		m.Refusals.WithLabelValues(reason).Add(0)
	}
	return &Cache{
		cfg:     cfg,
		logger:  logger,
		metrics: m,
		breaker: resilience.NewBreaker("redis", cfg.Breaker, redisDown, logger, metrics.NewBreaker(reg)),
	}
}

// errBudgetReply is a reply of the budget script this code does not know.
var errBudgetReply = errors.New("cache: unexpected reply from the budget script")

// redisDown tells whether err says Redis is unreachable or too slow: only
// transport errors and timeouts count against the breaker. An answer
// Redis gave (a missing key, an error reply such as WRONGTYPE or OOM) and
// a caller that gave up say nothing about its health; counting them let
// a cold cache, or one odd key, switch Redis off for every request.
func redisDown(err error) bool {
	var re *rueidis.RedisError
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.As(err, &re):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return true
	}
	return errors.Is(err, rueidis.ErrClosing) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

// firstError is the first error among results, if any.
func firstError(results []rueidis.RedisResult) error {
	for _, res := range results {
		if err := res.Error(); err != nil {
			return err
		}
	}
	return nil
}

// isEOF reports a connection that was closed under the client.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// Key builds a namespaced key of a kind ("search", "stats") from the parts
// that identify a request; the parts are hashed to keep keys short. Each
// part is length-prefixed before hashing, so no two lists of parts share
// a key whatever bytes they hold.
func (c *Cache) Key(kind string, parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	prefix := DefaultConfig().Prefix
	if c != nil {
		prefix = c.cfg.Prefix
	}
	return prefix + kind + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *Cache) conn() (rueidis.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	opt := rueidis.ClientOption{
		InitAddress:       []string{c.cfg.Addr},
		CacheSizeEachConn: c.cfg.LocalBytes,
		NewCacheStoreFn: func(o rueidis.CacheStoreOption) rueidis.CacheStore {
			return rueidis.NewSimpleCacheAdapter(newLocalTier(o.CacheSizeEachConn, c.metrics.LocalBytes, c.metrics.LocalEntries))
		},
		Dialer:           net.Dialer{Timeout: c.cfg.Timeout * 5},
		ConnWriteTimeout: c.cfg.Timeout * 5,
	}
	if err := c.cfg.Security.apply(&opt); err != nil {
		return nil, err
	}
	cl, err := rueidis.NewClient(opt)
	if errors.Is(err, rueidis.ErrNoCache) {
		// A server without RESP3 client tracking: Redis only, no local tier.
		opt.DisableCache, opt.CacheSizeEachConn, opt.NewCacheStoreFn = true, 0, nil
		cl, err = rueidis.NewClient(opt)
	}
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl, nil
}

func (c *Cache) do(ctx context.Context, fn func(ctx context.Context, cl rueidis.Client) error) error {
	return c.breaker.Run(ctx, func(ctx context.Context) error {
		cl, err := c.conn()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
		return fn(ctx, cl)
	})
}

// Get returns the cached value; any failure is a miss (and counted). A
// value found in the local tier is counted under tier "local".
func (c *Cache) Get(ctx context.Context, tier, key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	start := time.Now()
	var (
		val   []byte
		local bool
	)
	err := c.do(ctx, func(ctx context.Context, cl rueidis.Client) error {
		res := cl.DoCache(ctx, cl.B().Get().Key(key).Cache(), c.cfg.LocalTTL)
		local = res.IsCacheHit()
		var err error
		val, err = res.AsBytes()
		return err
	})
	c.metrics.Duration.WithLabelValues("get").Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		if local {
			tier = "local"
		}
		c.metrics.Hits.WithLabelValues(tier).Inc()
		return val, true
	case rueidis.IsRedisNil(err):
	default:
		c.fail("get", err)
	}
	c.metrics.Misses.WithLabelValues(tier).Inc()
	return nil, false
}

func (c *Cache) epochKey(hour int64) string {
	return c.cfg.Prefix + "epoch:" + strconv.FormatInt(hour, 10)
}

func (c *Cache) genKey() string { return c.cfg.Prefix + "epoch:generation" }

// Epochs returns a fingerprint of the invalidation epochs of the hours
// [from, to] touch. A key that includes it changes as soon as a log is
// written into one of those hours, so a cached answer for a closed window
// is never out of date. ok is false when Redis cannot say: then nothing
// should be cached or read for that window.
func (c *Cache) Epochs(ctx context.Context, from, to time.Time) (fingerprint string, ok bool) {
	if c == nil {
		return "", false
	}
	keys := []string{c.genKey()}
	for h := from.UTC().Truncate(time.Hour); !h.After(to); h = h.Add(time.Hour) {
		keys = append(keys, c.epochKey(h.Unix()/3600))
	}
	var vals map[string]rueidis.RedisMessage
	err := c.do(ctx, func(ctx context.Context, cl rueidis.Client) error {
		var err error
		// Client-side cached: Redis tells this process when an epoch
		// changes, so most lookups cost no round trip.
		vals, err = rueidis.MGetCache(cl, ctx, c.cfg.LocalTTL, keys)
		return err
	})
	if err != nil {
		c.fail("epochs", err)
		return "", false
	}
	h := sha256.New()
	for _, k := range keys {
		m := vals[k]
		v, _ := m.ToString() // a missing epoch is 0: nothing written yet
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), true
}

// Invalidate bumps the epochs of every hour the times fall in, in one
// round trip. The writer calls it after its transaction committed.
func (c *Cache) Invalidate(ctx context.Context, times []time.Time) error {
	if c == nil || len(times) == 0 {
		return nil
	}
	hours := map[int64]bool{}
	for _, t := range times {
		hours[t.UTC().Unix()/3600] = true
	}
	err := c.do(ctx, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, 0, 2*len(hours)+1)
		if c.bumpMissed.Load() {
			cmds = append(cmds, cl.B().Incr().Key(c.genKey()).Build())
		}
		for h := range hours {
			cmds = append(cmds,
				cl.B().Incr().Key(c.epochKey(h)).Build(),
				cl.B().Pexpire().Key(c.epochKey(h)).Milliseconds(c.cfg.EpochTTL.Milliseconds()).Build())
		}
		// A connection that broke while Redis was away fails its next
		// command (EOF) before the client reconnects: one more try on a
		// fresh one. Increments done twice are harmless: epochs need
		// only change.
		var err error
		for attempt := 0; attempt < 2; attempt++ {
			if err = firstError(cl.DoMulti(ctx, cmds...)); !isEOF(err) {
				break
			}
		}
		return err
	})
	if err != nil {
		c.bumpMissed.Store(true)
		c.fail("invalidate", err)
		return err
	}
	c.bumpMissed.Store(false)
	return nil
}

// Set stores value for ttl within the byte budget; a value over
// MaxEntryBytes is not stored. A failure is logged and otherwise ignored.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) {
	if c == nil {
		return
	}
	if len(value) > c.cfg.MaxEntryBytes {
		c.metrics.Refusals.WithLabelValues("too_large").Inc()
		return
	}
	start := time.Now()
	err := c.do(ctx, func(ctx context.Context, cl rueidis.Client) error {
		_, err := c.setBudgeted(ctx, cl, key, value, ttl)
		return err
	})
	c.metrics.Duration.WithLabelValues("set").Observe(time.Since(start).Seconds())
	if err != nil {
		c.fail("set", err)
	}
}

func (c *Cache) fail(op string, err error) {
	c.metrics.Errors.Inc()
	if !errors.Is(err, resilience.ErrOpen) {
		c.logger.Debug("cache unavailable", "op", op, "err", err)
	}
}

// Ping reports whether Redis answers now (for health).
func (c *Cache) Ping(ctx context.Context) error {
	if c == nil {
		return errors.New("cache disabled")
	}
	cl, err := c.conn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout*5)
	defer cancel()
	return cl.Do(ctx, cl.B().Ping().Build()).Error()
}

// Close releases the connection.
func (c *Cache) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		c.client.Close()
		c.client = nil
	}
}
