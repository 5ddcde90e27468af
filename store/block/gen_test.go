package block

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// The realistic mix the sizes and benchmarks are measured on: 50 sources
// of Zipf volume; INFO 70 %, WARN 15 %, ERROR 10 %, DEBUG 5 %; messages
// of 80 to 120 characters from 36 templates filled from 2,000 words of
// Zipf frequency and a few numbers; one log in 10,000 carrying a unique
// rare token; metadata of 3 or 4 keys (user id, region, duration, and an
// HTTP status on 60 % of the logs); 32-hex trace ids shared by 1 to 4
// consecutive logs; UUIDv7 ids; timestamps 0 to 5 ms apart.

// RareEvery is how often a log carries a unique rare token.
const RareEvery = 10_000

var templates = []string{
	"GET /api/{w}/{w} completed with status {status} in {ms}ms for client {w}",
	"POST /v1/{w}/{id}/{w} returned {status} after {ms}ms",
	"user {w} {w} the {w} {w} from {w} session {id}",
	"cache {w} for key {w}:{w}:{id} ttl={n}s size={n}B",
	"connection to {w}-{w}.internal:{port} {w} after {n} retries",
	"processed batch of {n} {w} records from topic {w}.{w} partition {n}",
	"failed to {w} {w}: {w} {w} timeout after {ms}ms",
	"scheduled job {w}-{w} started on worker {w}-{n} queue {w}",
	"job {w}-{w} finished in {ms}ms with {n} {w} and {n} {w}",
	"payment {id} for order {id} {w} by {w} gateway",
	"invoice {id} {w} for customer {id} amount {n}.{n} {w}",
	"retrying request to {w} service ({w} {w}), attempt {n} of 5",
	"circuit breaker {w} is now {w} after {n} consecutive {w}",
	"query on table {w}_{w} took {ms}ms and scanned {n} rows",
	"slow query detected: select {w} from {w} where {w} = {n}",
	"health check {w} for {w}-{w} replied {status} in {ms}ms",
	"config reloaded from {w}/{w}.yaml with {n} {w} changes",
	"received {n} bytes from {ip} on port {port} via {w}",
	"tls handshake with {ip} {w}: {w} {w} certificate",
	"rate limit of {n} req/s exceeded by {w} client {id}",
	"token for user {id} {w}, issuing new {w} {w} token",
	"message {id} acknowledged by consumer {w}-{n} group {w}",
	"upload of {w}_{id}.{w} ({n} KiB) to bucket {w} {w}",
	"download {w} {w} {w} at {n} KiB/s from {w} mirror",
	"garbage collection paused {ms}ms, heap {n} MiB of {n} MiB",
	"deadlock detected between {w} and {w} on {w} {id}",
	"transaction {id} committed with {n} {w} {w} in {ms}ms",
	"transaction {id} rolled back: {w} {w} {w} conflict",
	"feature flag {w}_{w} evaluated to {w} for {w} {id}",
	"email {w} to {w}@{w}.com queued with template {w}",
	"notification {id} delivered to {w} device {w} in {ms}ms",
	"websocket {id} {w} by {ip} after {n}s idle {w}",
	"dns lookup of {w}.{w}.svc took {ms}ms, got {n} {w}",
	"pod {w}-{w}-{id} restarted: {w} {w} exit code {n}",
	"deploy {w} {w} version {n}.{n}.{n} rolled out to {n} {w}",
	"unexpected {w} in {w} handler: {w} {w} {w} at line {n}",
}

var regions = []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1"}

// statuses with their cumulative weights.
var statuses = []struct {
	code int
	upTo float64
}{{200, 0.80}, {201, 0.85}, {204, 0.88}, {400, 0.92}, {404, 0.96}, {500, 0.99}, {503, 1}}

// vocabulary makes 2,000 distinct pronounceable words, the same every time.
func vocabulary() []string {
	rng := rand.New(rand.NewPCG(7, 11))
	cons := "bcdfghjklmnprstvwz"
	vows := "aeiou"
	seen := map[string]bool{}
	var out []string
	for len(out) < 2000 {
		var b strings.Builder
		for range 1 + rng.IntN(3) {
			b.WriteByte(cons[rng.IntN(len(cons))])
			b.WriteByte(vows[rng.IntN(len(vows))])
			if rng.IntN(3) == 0 {
				b.WriteByte(cons[rng.IntN(len(cons))])
			}
		}
		w := b.String()
		if len(w) >= 3 && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// Realistic returns n logs of the realistic mix from seed, sorted by
// (Timestamp, ID), and the rare tokens some of them carry.
func Realistic(n int, seed uint64) (events []logs.Event, rare []string) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	vocab := vocabulary()
	words := rand.NewZipf(rng, 1.1, 4, uint64(len(vocab)-1))
	srcs := rand.NewZipf(rng, 1.2, 1, 49)
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(seed%1000) * time.Hour)
	var trace string
	traceLeft := 0
	events = make([]logs.Event, n)
	for i := range events {
		ts = ts.Add(time.Duration(rng.IntN(5000)) * time.Microsecond)
		e := &events[i]
		e.Timestamp = ts
		e.ID = uuidV7(rng, ts)
		switch r := rng.Float64(); {
		case r < 0.70:
			e.Level = logs.LevelInfo
		case r < 0.85:
			e.Level = logs.LevelWarn
		case r < 0.95:
			e.Level = logs.LevelError
		default:
			e.Level = logs.LevelDebug
		}
		e.Source = sourceName(vocab, int(srcs.Uint64()))
		ms := int(math.Exp(rng.NormFloat64()*1.2 + 3.5))
		e.Message = message(rng, vocab, words, ms)
		if i%RareEvery == RareEvery/2-1 {
			tok := "rare" + hex.EncodeToString(randBytes(rng, 6))
			rare = append(rare, tok)
			e.Message += " " + tok
		}
		if traceLeft == 0 {
			trace, traceLeft = hex.EncodeToString(randBytes(rng, 16)), 1+rng.IntN(4)
		}
		e.TraceID = trace
		traceLeft--
		e.Metadata = metadata(rng, ms)
	}
	slices.SortStableFunc(events, func(a, b logs.Event) int { return compareEvents(&a, &b) })
	return events, rare
}

func sourceName(vocab []string, i int) string {
	return vocab[1000+i] + "-" + []string{"api", "worker", "gateway", "db", "cache"}[i%5]
}

func uuidV7(rng *rand.Rand, ts time.Time) uuid.UUID {
	var id uuid.UUID
	ms := uint64(ts.UnixMilli())
	if rng.IntN(10) == 0 {
		ms++ // made a millisecond after the timestamp
	}
	for j := range 6 {
		id[j] = byte(ms >> (40 - 8*j))
	}
	copy(id[6:], randBytes(rng, 10))
	id[6] = id[6]&0x0f | 0x70
	id[8] = id[8]&0x3f | 0x80
	return id
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func message(rng *rand.Rand, vocab []string, words *rand.Zipf, ms int) string {
	t := templates[rng.IntN(len(templates))]
	var b strings.Builder
	for len(t) > 0 {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			b.WriteString(t)
			break
		}
		b.WriteString(t[:i])
		j := strings.IndexByte(t[i:], '}') + i
		switch t[i+1 : j] {
		case "w":
			b.WriteString(vocab[words.Uint64()])
		case "n":
			b.WriteString(strconv.Itoa(rng.IntN(1000)))
		case "ms":
			b.WriteString(strconv.Itoa(ms))
		case "id":
			b.WriteString(strconv.Itoa(100000 + rng.IntN(900000)))
		case "status":
			b.WriteString(strconv.Itoa(status(rng)))
		case "port":
			b.WriteString(strconv.Itoa(1024 + rng.IntN(60000)))
		case "ip":
			fmt.Fprintf(&b, "10.%d.%d.%d", rng.IntN(8), rng.IntN(256), rng.IntN(256))
		}
		t = t[j+1:]
	}
	for b.Len() < 80 {
		b.WriteString(" " + vocab[words.Uint64()])
	}
	s := b.String()
	if len(s) > 120 {
		s = s[:strings.LastIndexByte(s[:121], ' ')]
	}
	return s
}

func status(rng *rand.Rand) int {
	r := rng.Float64()
	for _, s := range statuses {
		if r < s.upTo {
			return s.code
		}
	}
	return 200
}

func metadata(rng *rand.Rand, ms int) json.RawMessage {
	b := []byte(`{"userId":"u-`)
	b = fmt.Appendf(b, "%05d", rng.IntN(10000))
	b = append(b, `","region":"`...)
	b = append(b, regions[rng.IntN(len(regions))]...)
	b = append(b, '"')
	if rng.Float64() < 0.6 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(status(rng)), 10)
	}
	b = append(b, `,"durationMs":`...)
	b = strconv.AppendInt(b, int64(ms), 10)
	return append(b, '}')
}
