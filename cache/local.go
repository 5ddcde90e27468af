package cache

import (
	"container/list"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// localTier is the in-process copy of hot entries behind rueidis's
// client-side caching: a least-recently-used map bounded in bytes, one per
// Redis connection, whose size the cache_local_* gauges report. Redis's
// invalidation messages keep it exact (rueidis deletes what changed).
type localTier struct {
	mu      sync.Mutex
	max     int
	size    int
	order   *list.List // front: most recently used
	entries map[string]*list.Element
	bytes   prometheus.Gauge
	count   prometheus.Gauge
}

type localEntry struct {
	key  string
	val  rueidis.RedisMessage
	size int
}

func newLocalTier(maxBytes int, bytes, count prometheus.Gauge) *localTier {
	return &localTier{max: maxBytes, order: list.New(), entries: map[string]*list.Element{}, bytes: bytes, count: count}
}

// entrySize approximates an entry's memory: its key, its value and the
// bookkeeping around them.
func entrySize(key string, val rueidis.RedisMessage) int {
	n := len(key) + 96
	if s, err := val.ToString(); err == nil {
		n += len(s)
	}
	return n
}

func (l *localTier) Get(key string) rueidis.RedisMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[key]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*localEntry).val
	}
	return rueidis.RedisMessage{}
}

func (l *localTier) Set(key string, val rueidis.RedisMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remove(key)
	size := entrySize(key, val)
	if size > l.max {
		return // larger than the whole tier: Redis only
	}
	l.entries[key] = l.order.PushFront(&localEntry{key: key, val: val, size: size})
	l.add(size, 1)
	for l.size > l.max {
		l.remove(l.order.Back().Value.(*localEntry).key)
	}
}

func (l *localTier) Del(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remove(key)
}

func (l *localTier) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(-l.size, -len(l.entries))
	l.order.Init()
	l.entries = map[string]*list.Element{}
}

// remove drops key if present; l.mu is held.
func (l *localTier) remove(key string) {
	if e, ok := l.entries[key]; ok {
		l.order.Remove(e)
		delete(l.entries, key)
		l.add(-e.Value.(*localEntry).size, -1)
	}
}

func (l *localTier) add(bytes, entries int) {
	l.size += bytes
	l.bytes.Add(float64(bytes))
	l.count.Add(float64(entries))
}
