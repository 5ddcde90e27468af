package cache

// The local tier is unexported; its tests, in package cache_test with the
// others, reach it through these.

type LocalTier = localTier

var (
	NewLocalTier = newLocalTier
	EntrySize    = entrySize
)

// Keys lists the tier's keys, most recently used first, without touching
// their order as Get would.
func (l *localTier) Keys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keys []string
	for e := l.order.Front(); e != nil; e = e.Next() {
		keys = append(keys, e.Value.(*localEntry).key)
	}
	return keys
}
