package loadtest

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// levelWeights skew levels as production logs are: mostly INFO.
var levelWeights = []struct {
	level  string
	weight int // per thousand
}{
	{"INFO", 700}, {"WARN", 150}, {"ERROR", 80}, {"DEBUG", 60}, {"FATAL", 10},
}

// sources are 50 services: a few named ones, the most frequent, then
// svc-00 … svc-44.
var sources = func() []string {
	out := []string{"auth-service", "payment-service", "order-service", "db-service", "api-gateway"}
	for i := range 45 {
		out = append(out, fmt.Sprintf("svc-%02d", i))
	}
	return out
}()

// vocabulary is ordered from common to rare; words are drawn with a Zipf
// law, so the first ones appear in many messages and the last in few.
var vocabulary = []string{
	"request", "user", "completed", "session", "cache", "database", "connection", "response",
	"timeout", "retry", "order", "payment", "token", "query", "latency", "upstream",
	"handler", "account", "inventory", "checkout", "profile", "search", "shipment", "invoice",
	"refund", "cart", "notification", "email", "webhook", "scheduler", "worker", "queue",
	"partition", "replica", "snapshot", "migration", "index", "shard", "lease", "heartbeat",
	"throttled", "degraded", "recovered", "evicted", "rebalanced", "compacted", "rotated", "flushed",
	"certificate", "handshake", "redirect", "quota", "backpressure", "deadline", "circuit", "fallback",
	"tenant", "region", "bucket", "archive", "manifest", "checksum", "fingerprint", "nonce",
	"aurora", "basilisk", "chimera", "dirigible", "ephemeris", "fjord", "gossamer", "halcyon",
	"isthmus", "juniper", "kestrel", "labyrinth", "meridian", "nebula", "obsidian", "palimpsest",
	"quasar", "rhapsody", "sextant", "tessellate", "umbra", "vortex", "wyvern", "xenolith",
	"yarrow", "zeppelin",
}

var regions = []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1", "sa-east-1"}

var endpoints = []string{"/api/orders", "/api/users", "/api/cart", "/api/payments", "/api/search", "/api/inventory", "/login", "/health"}

// templates by level: {w} is a vocabulary word, {n} a number, {p} an
// endpoint.
var templates = map[string][]string{
	"INFO": {
		"GET {p} completed with 200 in {n}ms",
		"user {n} logged in",
		"order {n} created",
		"payment processed for order {n}",
		"cache refreshed for {w}",
		"request handled",
	},
	"WARN": {
		"slow query on {w} took {n}ms",
		"retrying {w} after timeout (attempt {n})",
		"high memory usage: {n} percent",
		"deprecated endpoint {p} called",
	},
	"ERROR": {
		"connection timeout to {w} after {n}ms",
		"failed to process order {n}",
		"user login failed for user {n}",
		"upstream {w} answered 502",
	},
	"DEBUG": {
		"cache lookup for {w} hit={n}",
		"parsed request body of {n} bytes",
		"acquired lease on {w}",
	},
	"FATAL": {
		"out of memory in {w}",
		"cannot reach database after {n} attempts",
	},
}

// eventRef is what the run remembers of a sent log to find it again.
type eventRef struct {
	id    [16]byte
	trace string
	ts    time.Time
}

// generator makes one worker's logs. Content comes from the seed; ids and
// trace ids also depend on the run, so that runs never share them.
type generator struct {
	runID     string
	content   *rand.Rand
	ids       *rand.Rand
	sourceZ   *rand.Zipf
	wordZ     *rand.Zipf
	trace     string
	traceLeft int
}

func newGenerator(seed int64, runID string, worker int) *generator {
	content := rand.New(rand.NewPCG(uint64(seed), uint64(worker)))
	runBits, _ := strconv.ParseUint(runID, 16, 64)
	ids := rand.New(rand.NewPCG(runBits, uint64(worker)<<32|uint64(seed)))
	return &generator{
		runID:   runID,
		content: content,
		ids:     ids,
		sourceZ: rand.NewZipf(content, 1.2, 2, uint64(len(sources)-1)),
		wordZ:   rand.NewZipf(content, 1.1, 1, uint64(len(vocabulary)-1)),
	}
}

func (g *generator) level() string {
	n := g.content.IntN(1000)
	for _, lw := range levelWeights {
		if n < lw.weight {
			return lw.level
		}
		n -= lw.weight
	}
	return "INFO"
}

func (g *generator) word() string { return vocabulary[g.wordZ.Uint64()] }

func (g *generator) uuid() [16]byte {
	var b [16]byte
	hi, lo := g.ids.Uint64(), g.ids.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return b
}

func (g *generator) newTrace() string {
	var b [16]byte
	hi, lo := g.ids.Uint64(), g.ids.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

// nextTrace shares a trace id among one to four consecutive logs, as the
// logs of one request share it; a unique one is never shared.
func (g *generator) nextTrace(unique bool) string {
	if unique {
		return g.newTrace()
	}
	if g.traceLeft <= 0 {
		g.trace, g.traceLeft = g.newTrace(), 1+g.content.IntN(4)
	}
	g.traceLeft--
	return g.trace
}

// message is "[run <id>] " and a filled template, with up to three more
// words.
func (g *generator) message(level string) []byte {
	tpls := templates[level]
	tpl := tpls[g.content.IntN(len(tpls))]
	msg := make([]byte, 0, 96)
	msg = append(msg, "[run "...)
	msg = append(msg, g.runID...)
	msg = append(msg, "] "...)
	for i := 0; i < len(tpl); i++ {
		if tpl[i] == '{' && i+2 < len(tpl) && tpl[i+2] == '}' {
			switch tpl[i+1] {
			case 'w':
				msg = append(msg, g.word()...)
			case 'n':
				msg = strconv.AppendInt(msg, int64(1+g.content.IntN(99999)), 10)
			case 'p':
				msg = append(msg, endpoints[g.content.IntN(len(endpoints))]...)
			}
			i += 2
			continue
		}
		msg = append(msg, tpl[i])
	}
	for range g.content.IntN(4) {
		msg = append(msg, ' ')
		msg = append(msg, g.word()...)
	}
	return msg
}

// appendEvent appends one log as a JSON object. A unique trace id makes the
// log findable alone by traceId.
func (g *generator) appendEvent(buf []byte, now time.Time, uniqueTrace, withID bool) ([]byte, eventRef) {
	ref := eventRef{id: g.uuid(), trace: g.nextTrace(uniqueTrace), ts: now.UTC()}
	level := g.level()
	if withID {
		buf = append(buf, `{"id":"`...)
		buf = appendUUID(buf, ref.id)
		buf = append(buf, `","timestamp":"`...)
	} else {
		buf = append(buf, `{"timestamp":"`...)
	}
	buf = ref.ts.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","level":"`...)
	buf = append(buf, level...)
	buf = append(buf, `","source":`...)
	buf = appendJSONString(buf, sources[g.sourceZ.Uint64()])
	buf = append(buf, `,"message":`...)
	buf = appendJSONString(buf, string(g.message(level)))
	buf = append(buf, `,"traceId":"`...)
	buf = append(buf, ref.trace...)
	buf = append(buf, `","metadata":{"run":"`...)
	buf = append(buf, g.runID...)
	buf = append(buf, `","userId":"u`...)
	buf = strconv.AppendInt(buf, int64(1+g.content.IntN(100000)), 10)
	buf = append(buf, `","region":"`...)
	buf = append(buf, regions[g.content.IntN(len(regions))]...)
	buf = append(buf, `","durationMs":`...)
	buf = strconv.AppendInt(buf, int64(1+g.content.ExpFloat64()*40), 10)
	buf = append(buf, "}}"...)
	return buf, ref
}

func appendUUID(buf []byte, id [16]byte) []byte {
	var s [36]byte
	hex.Encode(s[0:8], id[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], id[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], id[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], id[8:10])
	s[23] = '-'
	hex.Encode(s[24:], id[10:])
	return append(buf, s[:]...)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}
