package bench

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The data set, as the storage benchmark is specified: a week of logs
// (30 % in days 7..1, 60 % in the last day before its final hour, 10 % in
// the last hour), levels INFO 70 / WARN 15 / ERROR 10 / DEBUG 5 %, 50
// sources with Zipf volume, messages from a few dozen templates over a
// vocabulary of 2,000 words, one log in 10,000 with a unique rare token,
// 3–4 metadata keys, trace ids shared by 1–4 consecutive logs.
const (
	sources    = 50
	vocabSize  = 2000
	rareEvery  = 10_000
	commonWord = "request"
)

type logLine struct {
	ts      time.Time
	level   string
	source  string
	message string
	meta    string // a JSON object
	trace   string
}

type dataset struct {
	logs  []logLine // in time order
	start time.Time
}

var templates = []string{
	"request {w} served in {n} ms",
	"request for {w} {w} failed with {w}",
	"user {n} started {w} session on {w}",
	"cache {w} for key {w}:{n}",
	"connection to {w} lost after {n} ms, retrying",
	"job {w} {n} completed, {n} items",
	"request {n} queued behind {n} others on {w}",
	"payment {n} for {w} {w} declined: {w}",
	"{w} {w} {w} took {n} ms",
	"slow request {w} {w}: {n} ms over budget",
	"config {w} reloaded by {w}",
	"health check of {w} answered {n}",
	"worker {n} picked {w} from {w}",
	"request rejected: {w} {w} not allowed",
	"index {w} rebuilt in {n} s",
	"message {n} published to {w}",
	"consumer {w} lag is {n} records",
	"timeout waiting for {w} after {n} ms",
	"request {w} returned {n} bytes",
	"order {n} moved to {w}",
	"login of {w} from {w} denied",
	"scheduler woke {w} {n} times",
	"disk {w} at {n} percent",
	"request trace {w} spans {n} services",
	"retry {n} of {w} {w}",
	"session {n} expired for {w}",
	"{w} handler panicked: {w} {w}",
	"export {w} wrote {n} rows",
	"upstream {w} answered {n} in {n} ms",
	"request body of {n} bytes refused by {w}",
}

var regions = []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1"}

func vocabulary(r *rand.Rand) []string {
	syl := strings.Fields("ka lo mi re tu sa ven dor pi la qu ex tor ban gel mu ri so va ne cha pol zi fa tem")
	seen := map[string]bool{commonWord: true}
	var out []string
	for len(out) < vocabSize {
		var b strings.Builder
		for range 2 + r.IntN(2) {
			b.WriteString(syl[r.IntN(len(syl))])
		}
		if w := b.String(); !seen[w] && !strings.Contains(w, "rare") {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func generate(n int, seed uint64, now time.Time) *dataset {
	r := rand.New(rand.NewPCG(seed, 42))
	words := vocabulary(r)
	zipf := rand.NewZipf(r, 1.1, 1, sources-1)
	d := &dataset{start: now.Add(-7 * 24 * time.Hour)}
	d.logs = make([]logLine, n)
	span := func(from, to time.Duration) time.Time {
		return now.Add(-from + time.Duration(r.Int64N(int64(from-to))))
	}
	for i := range d.logs {
		l := &d.logs[i]
		switch u := r.Float64(); {
		case u < 0.30:
			l.ts = span(7*24*time.Hour, 24*time.Hour)
		case u < 0.90:
			l.ts = span(24*time.Hour, time.Hour)
		default:
			l.ts = span(time.Hour, 0)
		}
		l.ts = l.ts.Truncate(time.Microsecond)
	}
	slices.SortFunc(d.logs, func(a, b logLine) int { return a.ts.Compare(b.ts) })
	var trace string
	traceLeft := 0
	for i := range d.logs {
		l := &d.logs[i]
		if i > 0 && !l.ts.After(d.logs[i-1].ts) {
			l.ts = d.logs[i-1].ts.Add(time.Microsecond) // unique times: exact answers
		}
		switch u := r.Float64(); {
		case u < 0.70:
			l.level = "INFO"
		case u < 0.85:
			l.level = "WARN"
		case u < 0.95:
			l.level = "ERROR"
		default:
			l.level = "DEBUG"
		}
		l.source = fmt.Sprintf("svc-%02d", zipf.Uint64())
		var msg strings.Builder
		for part := range strings.SplitSeq(templates[r.IntN(len(templates))], " ") {
			if msg.Len() > 0 {
				msg.WriteByte(' ')
			}
			part = strings.ReplaceAll(part, "{w}", words[r.IntN(len(words))])
			for strings.Contains(part, "{n}") {
				part = strings.Replace(part, "{n}", strconv.Itoa(r.IntN(100000)), 1)
			}
			msg.WriteString(part)
		}
		if i%rareEvery == rareEvery/2 {
			var tok [8]byte
			for j := range tok {
				tok[j] = byte(r.UintN(256))
			}
			msg.WriteString(" rare" + hex.EncodeToString(tok[:]))
		}
		l.message = msg.String()
		meta := fmt.Sprintf(`{"userId":"u%d","region":%q,"status":%d`, r.IntN(10000), regions[r.IntN(len(regions))], []int{200, 200, 200, 201, 204, 400, 404, 500}[r.IntN(8)])
		if r.IntN(2) == 0 {
			meta += fmt.Sprintf(`,"durationMs":%d`, r.IntN(5000))
		}
		l.meta = meta + "}"
		if traceLeft == 0 {
			var id [16]byte
			for j := range id {
				id[j] = byte(r.UintN(256))
			}
			trace, traceLeft = hex.EncodeToString(id[:]), 1+r.IntN(4)
		}
		l.trace = trace
		traceLeft--
	}
	return d
}

// appendBatch writes logs [from, to) as the batch API's JSON array.
func (d *dataset) appendBatch(buf *bytes.Buffer, from, to int) {
	buf.WriteByte('[')
	for i := from; i < to; i++ {
		l := &d.logs[i]
		if i > from {
			buf.WriteByte(',')
		}
		msg, _ := json.Marshal(l.message)
		fmt.Fprintf(buf, `{"timestamp":%q,"level":%q,"source":%q,"message":%s,"metadata":%s,"traceId":%q}`,
			l.ts.Format(time.RFC3339Nano), l.level, l.source, msg, l.meta, l.trace)
	}
	buf.WriteByte(']')
}

// query is one benchmark query and the check of its answer.
type query struct {
	name  string
	path  string
	check func(body []byte) error
}

type pageAnswer struct {
	Content []struct {
		Timestamp string
		LogLevel  string
		Source    string
		Message   string
		TraceID   string
	}
	TotalElements int64
}

func (d *dataset) queries(now time.Time) []query {
	hour, day, week := now.Add(-time.Hour), now.Add(-24*time.Hour), d.start
	in := func(l *logLine, from time.Time) bool { return !l.ts.Before(from) && !l.ts.After(now) }
	// newest picks the newest 100 logs of the window that keep says.
	newest := func(from time.Time, keep func(*logLine) bool) []*logLine {
		var out []*logLine
		for i := len(d.logs) - 1; i >= 0 && len(out) < 100; i-- {
			if l := &d.logs[i]; in(l, from) && keep(l) {
				out = append(out, l)
			}
		}
		return out
	}
	page := func(name string, from time.Time, params url.Values, want []*logLine, exactTotal int64) query {
		params.Set("startTime", from.Format(time.RFC3339Nano))
		params.Set("endTime", now.Format(time.RFC3339Nano))
		params.Set("size", "100")
		return query{name: name, path: "/api/v1/logs?" + params.Encode(), check: func(body []byte) error {
			var p pageAnswer
			if err := json.Unmarshal(body, &p); err != nil {
				return err
			}
			if len(p.Content) != len(want) {
				return fmt.Errorf("%d logs, want %d", len(p.Content), len(want))
			}
			for i, c := range p.Content {
				if c.Timestamp != want[i].ts.Format(time.RFC3339Nano) || c.Message != want[i].message {
					return fmt.Errorf("log %d is %s %q, want %s %q", i, c.Timestamp, c.Message, want[i].ts.Format(time.RFC3339Nano), want[i].message)
				}
			}
			if exactTotal >= 0 && p.TotalElements != exactTotal {
				return fmt.Errorf("total %d, want %d", p.TotalElements, exactTotal)
			}
			return nil
		}}
	}
	count := func(from time.Time, keep func(*logLine) bool) int64 {
		var n int64
		for i := range d.logs {
			if l := &d.logs[i]; in(l, from) && keep(l) {
				n++
			}
		}
		return n
	}
	all := func(*logLine) bool { return true }
	source := "svc-24" // mid-ranked by volume
	var rare, trace *logLine
	for i := range d.logs {
		l := &d.logs[i]
		if rare == nil && in(l, day) && strings.Contains(l.message, " rare") {
			rare = l
		}
	}
	trace = &d.logs[len(d.logs)/2]
	rareTok := rare.message[strings.LastIndex(rare.message, " rare")+1:]
	errorsOnly := func(l *logLine) bool { return l.level == "ERROR" }
	ofSource := func(l *logLine) bool { return l.source == source }
	common := func(l *logLine) bool { return strings.Contains(strings.ToLower(l.message), commonWord) }
	ofTrace := func(l *logLine) bool { return l.trace == trace.trace }

	qs := []query{
		page("newest 100, last hour", hour, url.Values{}, newest(hour, all), count(hour, all)),
		page("ERROR newest 100, last hour", hour, url.Values{"logLevel": {"ERROR"}}, newest(hour, errorsOnly), count(hour, errorsOnly)),
		page("one source newest 100, last hour", hour, url.Values{"source": {source}}, newest(hour, ofSource), count(hour, ofSource)),
		page("rare token, 24 h", day, url.Values{"keyword": {rareTok}}, newest(day, func(l *logLine) bool { return l == rare }), 1),
		page("common word newest 100, 24 h", day, url.Values{"keyword": {commonWord}}, newest(day, common), -1),
	}
	byLevel := map[string]int64{}
	for i := range d.logs {
		if l := &d.logs[i]; in(l, day) {
			byLevel[l.level]++
		}
	}
	stats := url.Values{"startTime": {day.Format(time.RFC3339Nano)}, "endTime": {now.Format(time.RFC3339Nano)}}
	qs = append(qs, query{name: "count by level, 24 h", path: "/api/v1/logs/stats?" + stats.Encode(), check: func(body []byte) error {
		var s struct{ LogLevelDistribution map[string]int64 }
		if err := json.Unmarshal(body, &s); err != nil {
			return err
		}
		for level, n := range byLevel {
			if s.LogLevelDistribution[level] != n {
				return fmt.Errorf("%s: %d, want %d", level, s.LogLevelDistribution[level], n)
			}
		}
		return nil
	}})
	perHour := map[string]int64{}
	for i := range d.logs {
		if l := &d.logs[i]; in(l, week) {
			perHour[l.ts.Truncate(time.Hour).Format(time.RFC3339)]++
		}
	}
	hist := url.Values{"startTime": {week.Format(time.RFC3339Nano)}, "endTime": {now.Format(time.RFC3339Nano)}, "interval": {"1h"}}
	qs = append(qs, query{name: "hourly histogram, 7 days", path: "/api/v1/logs/histogram?" + hist.Encode(), check: func(body []byte) error {
		var h struct {
			Buckets []struct {
				Time  string
				Total int64
			}
		}
		if err := json.Unmarshal(body, &h); err != nil {
			return err
		}
		var sum int64
		for _, b := range h.Buckets {
			t, _ := time.Parse(time.RFC3339Nano, b.Time)
			if want := perHour[t.UTC().Format(time.RFC3339)]; b.Total != want {
				return fmt.Errorf("bucket %s: %d, want %d", b.Time, b.Total, want)
			}
			sum += b.Total
		}
		if sum != int64(len(d.logs)) {
			return fmt.Errorf("buckets sum to %d, want %d", sum, len(d.logs))
		}
		return nil
	}})
	qs = append(qs, page("one trace id, 7 days", week, url.Values{"traceId": {trace.trace}}, newest(week, ofTrace), count(week, ofTrace)))
	return qs
}
