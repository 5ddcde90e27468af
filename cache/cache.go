// Package cache is logengine's Redis layer: namespaced keys, reads and
// writes bounded by a short timeout, and a breaker so that a Redis outage
// costs a request nothing. Redis is optional: every failure is a miss.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/resilience"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
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
}

// DefaultConfig returns the defaults for addr.
func DefaultConfig(addr string) Config {
	return Config{
		Addr:    addr,
		Prefix:  "logengine:v1:",
		Timeout: 100 * time.Millisecond,
		Breaker: resilience.BreakerConfig{Failures: 3, Delay: 5 * time.Second},
	}
}

// Cache is a Redis-backed byte cache. A nil *Cache is a valid, always-miss
// cache, for when no Redis address is configured.
type Cache struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics.Cache
	breaker *resilience.Breaker

	mu     sync.Mutex
	client rueidis.Client // nil until Redis first answers
}

// New returns a cache for cfg.Addr. Redis need not be up: the connection is
// made on first use and retried while the breaker lets calls through.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Cache {
	m := metrics.NewCache(reg)
	return &Cache{
		cfg:     cfg,
		logger:  logger,
		metrics: m,
		breaker: resilience.NewBreaker("redis", cfg.Breaker, nil, logger, metrics.NewBreaker(reg)),
	}
}

// Key builds a namespaced key of a kind ("search", "stats") from the parts
// that identify a request; the parts are hashed to keep keys short.
func (c *Cache) Key(kind string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	prefix := "logengine:v1:"
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
	cl, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:      []string{c.cfg.Addr},
		DisableCache:     true,
		Dialer:           net.Dialer{Timeout: c.cfg.Timeout * 5},
		ConnWriteTimeout: c.cfg.Timeout * 5,
	})
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

// Get returns the cached value; any failure is a miss (and counted).
func (c *Cache) Get(ctx context.Context, tier, key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	var val []byte
	err := c.do(ctx, func(ctx context.Context, cl rueidis.Client) error {
		var err error
		val, err = cl.Do(ctx, cl.B().Get().Key(key).Build()).AsBytes()
		return err
	})
	switch {
	case err == nil:
		c.metrics.Hits.WithLabelValues(tier).Inc()
		return val, true
	case rueidis.IsRedisNil(err):
	default:
		c.fail("get", err)
	}
	c.metrics.Misses.WithLabelValues(tier).Inc()
	return nil, false
}

// Set stores value for ttl; a failure is logged and otherwise ignored.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) {
	if c == nil {
		return
	}
	err := c.do(ctx, func(ctx context.Context, cl rueidis.Client) error {
		return cl.Do(ctx, cl.B().Set().Key(key).Value(rueidis.BinaryString(value)).Px(ttl).Build()).Error()
	})
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
