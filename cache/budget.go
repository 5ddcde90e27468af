package cache

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// The byte budget is kept in Redis, next to the entries, so that every
// gateway sharing a prefix enforces one budget: Redis's maxmemory may be
// unset, and one process's view would not bound the others' writes.
//
// Under the prefix, budget:bytes holds the bytes counted, budget:sizes
// each entry's cost, budget:age the entries by write time (the oldest is
// evicted first) and budget:expiry by expiry time (entries Redis expired
// leave the count). One script does a write and its accounting atomically.
var budgetedSet = rueidis.NewLuaScript(`
-- Redis before 5 needs this to write after reading TIME; later ones ignore it.
if redis.replicate_commands then redis.replicate_commands() end
local key, sizes, age, expiry, bytes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local value, ttl, cost, budget, maxEvict = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = tonumber(redis.call('GET', bytes) or '0')
local function forget(k)
  local size = tonumber(redis.call('HGET', sizes, k) or '0')
  redis.call('HDEL', sizes, k)
  redis.call('ZREM', age, k)
  redis.call('ZREM', expiry, k)
  total = total - size
end
-- Entries Redis has expired no longer take room.
for _, k in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, 256)) do
  forget(k)
end
local old = tonumber(redis.call('HGET', sizes, key) or '0')
local evicted, refused = 0, 0
if cost > budget then
  refused = 1
else
  -- Evict the oldest entries (never the one being replaced: it goes below)
  -- until the new one fits.
  local skipped = 0
  while total - old + cost > budget and evicted < maxEvict do
    local oldest = redis.call('ZRANGE', age, skipped, skipped)
    if #oldest == 0 then break end
    if oldest[1] == key then
      skipped = skipped + 1
    else
      redis.call('DEL', oldest[1])
      forget(oldest[1])
      evicted = evicted + 1
    end
  end
  if total - old + cost > budget then
    refused = 1
  else
    forget(key)
    redis.call('SET', key, value, 'PX', ttl)
    redis.call('HSET', sizes, key, cost)
    redis.call('ZADD', age, now, key)
    redis.call('ZADD', expiry, now + ttl, key)
    total = total + cost
  end
end
if total < 0 then total = 0 end
redis.call('SET', bytes, total)
-- The accounting lives as long as the longest-lived entry it counts (and
-- a minute more), and then goes too.
local keepUntil = now + ttl
local last = redis.call('ZRANGE', expiry, -1, -1, 'WITHSCORES')
if #last == 2 then keepUntil = math.max(keepUntil, tonumber(last[2])) end
for _, k in ipairs({sizes, age, expiry, bytes}) do
  redis.call('PEXPIREAT', k, math.floor(keepUntil) + 60000)
end
return {total, evicted, refused}
`)

// maxEvictions bounds the work of one write; a write that would need
// more is refused (and counted) instead.
const maxEvictions = 1000

// entryCost is what an entry counts against the budget: its value, its
// key (stored once as the key and three times in the accounting) and an
// estimate of Redis's own bookkeeping per key and index entry.
func entryCost(key string, value []byte) int64 {
	return int64(len(value) + 4*len(key) + 200)
}

func (c *Cache) budgetKeys(key string) []string {
	p := c.cfg.Prefix + "budget:"
	return []string{key, p + "sizes", p + "age", p + "expiry", p + "bytes"}
}

// setBudgeted writes value under key for ttl within the byte budget,
// evicting the oldest entries to make room; stored is false when the
// value could not be given room.
func (c *Cache) setBudgeted(ctx context.Context, cl rueidis.Client, key string, value []byte, ttl time.Duration) (stored bool, err error) {
	res, err := budgetedSet.Exec(ctx, cl, c.budgetKeys(key), []string{
		rueidis.BinaryString(value), strconv.FormatInt(max(ttl.Milliseconds(), 1), 10),
		strconv.FormatInt(entryCost(key, value), 10), strconv.FormatInt(c.cfg.MaxBytes, 10), strconv.Itoa(maxEvictions),
	}).AsIntSlice()
	if err != nil {
		return false, err
	}
	if len(res) != 3 {
		return false, errBudgetReply
	}
	c.metrics.Bytes.Set(float64(res[0]))
	c.metrics.Evictions.Add(float64(res[1]))
	if res[2] != 0 {
		c.metrics.Refusals.WithLabelValues("budget").Inc()
		return false, nil
	}
	return true, nil
}
