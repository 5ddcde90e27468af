package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Retries of a batch refused with 503 (or 429, 502, 504) or lost to a
// network error: the same body, so the same ids and timestamps, is sent
// again after an exponential back-off.
const (
	maxAttempts    = 5
	backoffBase    = 100 * time.Millisecond
	backoffMax     = 2 * time.Second
	retryAfterMax  = 5 * time.Second
	requestTimeout = 60 * time.Second
	// sampleSize is how many accepted logs are remembered to be checked
	// one by one when the run is too large to walk.
	sampleSize = 200
)

// ledger is the client's account of what the producers accepted.
type ledger struct {
	accepted, rejected, failed, requests atomic.Int64
	// batches refused for good or out of attempts
	failedBatches atomic.Int64

	mu       sync.Mutex
	errors   map[string]int64
	ids      [][16]byte // every accepted id while at most walkLimit
	overflow bool       // more than walkLimit accepted: ids dropped
	limit    int
	sample   []eventRef // a uniform sample of accepted logs
	seen     int64
	rng      *rand.Rand
}

func newLedger(walkLimit int, seed uint64) *ledger {
	return &ledger{errors: map[string]int64{}, limit: walkLimit, rng: rand.New(rand.NewPCG(seed, 0x1ed9e2))}
}

func (l *ledger) fail(key string) {
	l.mu.Lock()
	l.errors[key]++
	l.mu.Unlock()
}

func (l *ledger) errorCount() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, c := range l.errors {
		n += c
	}
	return n
}

func (l *ledger) record(refs []eventRef) {
	l.accepted.Add(int64(len(refs)))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.overflow {
		if len(l.ids)+len(refs) > l.limit {
			l.overflow, l.ids = true, nil
		} else {
			for _, r := range refs {
				l.ids = append(l.ids, r.id)
			}
		}
	}
	for _, r := range refs {
		l.seen++
		if len(l.sample) < sampleSize {
			l.sample = append(l.sample, r)
		} else if j := l.rng.Int64N(l.seen); j < sampleSize {
			l.sample[j] = r
		}
	}
}

func (l *ledger) fill(rep *Report) {
	rep.Accepted = l.accepted.Load()
	rep.Rejected = l.rejected.Load()
	rep.Failed = l.failed.Load()
	rep.Requests = l.requests.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	rep.Errors = make(map[string]int64, len(l.errors))
	for k, v := range l.errors {
		rep.Errors[k] = v
	}
}

// pacer spaces requests so that all workers together send rate logs per
// second: each batch reserves the next free slot of the shared schedule.
// A late worker does not catch up in a burst.
type pacer struct {
	mu     sync.Mutex
	perLog time.Duration
	next   time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{perLog: time.Duration(float64(time.Second) / rate)}
}

// reserve returns when a batch of n logs may be sent.
func (p *pacer) reserve(n int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	slot := p.next
	p.next = p.next.Add(time.Duration(n) * p.perLog)
	return slot
}

// send runs the workers until the duration or count is reached, nothing
// is accepted at all, or ctx ends.
func (r *runner) send(ctx context.Context, start time.Time) {
	cfg := r.cfg
	var deadline time.Time
	if cfg.Count == 0 {
		deadline = start.Add(cfg.Duration)
	}
	pace := newPacer(cfg.Rate)
	var claimed atomic.Int64
	// claim returns the index of the first log of the next batch and its
	// size; 0 when the run is over.
	claim := func() (int64, int) {
		if cfg.Count > 0 {
			end := claimed.Add(int64(cfg.BatchSize))
			first := end - int64(cfg.BatchSize)
			if first >= int64(cfg.Count) {
				return first, 0
			}
			return first, int(min(end, int64(cfg.Count)) - first)
		}
		if !time.Now().Before(deadline) {
			return 0, 0
		}
		return claimed.Add(int64(cfg.BatchSize)) - int64(cfg.BatchSize), cfg.BatchSize
	}
	// Sending stops early when the first batches all failed: the target
	// is wrong or down, and the report says why.
	hopeless := func() bool {
		return r.ledger.accepted.Load() == 0 && r.ledger.failedBatches.Load() >= int64(2*cfg.Concurrency)
	}
	var next atomic.Uint64 // round-robin over the producers
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			gen := newGenerator(cfg.Seed, r.runID, w)
			var buf []byte
			refs := make([]eventRef, 0, cfg.BatchSize)
			for ctx.Err() == nil && !hopeless() {
				first, n := claim()
				if n == 0 {
					return
				}
				if pace != nil {
					slot := pace.reserve(n)
					if !deadline.IsZero() && !slot.Before(deadline) {
						return
					}
					if !sleep(ctx, time.Until(slot)) {
						return
					}
				}
				probe := r.probes.want(first, n)
				buf, refs = r.buildBatch(gen, buf[:0], refs[:0], n, probe)
				r.post(ctx, &next, buf, refs, probe)
			}
		})
	}
	wg.Wait()
}

// buildBatch encodes n logs; the first is a visibility probe (with a trace
// id of its own) when probe is set.
func (r *runner) buildBatch(gen *generator, buf []byte, refs []eventRef, n int, probe bool) ([]byte, []eventRef) {
	single := r.cfg.BatchSize == 1
	if !single {
		buf = append(buf, '[')
	}
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		var ref eventRef
		buf, ref = gen.appendEvent(buf, time.Now(), probe && i == 0, r.cfg.ClientIDs)
		refs = append(refs, ref)
	}
	if !single {
		buf = append(buf, ']')
	}
	return buf, refs
}

// acceptance is the part of a 202 answer the client needs.
type acceptance struct {
	Accepted int      `json:"accepted"`
	Rejected int      `json:"rejected"`
	IDs      []string `json:"ids"`
}

// post sends one batch until it is accepted, refused for good, or out of
// attempts.
func (r *runner) post(ctx context.Context, next *atomic.Uint64, body []byte, refs []eventRef, probe bool) {
	path := "/api/v1/logs/batch"
	if r.cfg.BatchSize == 1 {
		path = "/api/v1/logs"
	}
	n := int64(len(refs))
	for attempt := 1; ; attempt++ {
		base := r.cfg.ProducerURLs[int((next.Add(1)-1)%uint64(len(r.cfg.ProducerURLs)))]
		began := time.Now()
		status, header, answer, err := r.do(ctx, http.MethodPost, base+path, body)
		elapsed := time.Since(began)
		r.ledger.requests.Add(1)
		if err == nil && status == http.StatusAccepted {
			acceptedAt := time.Now()
			r.accept.add(elapsed)
			r.book(refs, answer, acceptedAt, probe)
			return
		}
		if ctx.Err() != nil {
			// The outcome is unknown; the run is over anyway.
			r.ledger.failed.Add(n)
			r.ledger.failedBatches.Add(1)
			return
		}
		key := "conn"
		if err == nil {
			key = strconv.Itoa(status)
		}
		r.ledger.fail(key)
		// Without client ids, a request with no answer may have been
		// stored: sending it again could store its logs twice.
		retriable := (err != nil && r.cfg.ClientIDs) || status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests ||
			status == http.StatusBadGateway || status == http.StatusGatewayTimeout
		if err != nil && !retriable {
			r.ledger.failed.Add(n)
			r.ledger.failedBatches.Add(1)
			return
		}
		if !retriable {
			// Refused for good (400, 413, 415…): those logs are not stored.
			r.ledger.rejected.Add(n)
			r.ledger.failedBatches.Add(1)
			return
		}
		if attempt == maxAttempts {
			r.ledger.failed.Add(n)
			r.ledger.failedBatches.Add(1)
			return
		}
		wait := backoff(attempt)
		if ra, err := strconv.Atoi(header.Get("Retry-After")); err == nil && ra > 0 {
			wait = max(wait, min(time.Duration(ra)*time.Second, retryAfterMax))
		}
		if !sleep(ctx, wait) {
			r.ledger.failed.Add(n)
			r.ledger.failedBatches.Add(1)
			return
		}
	}
}

// book records a 202: the ids it lists are stored, the others of the
// batch were refused as invalid. Without client ids, the ids are the
// producer's, in the order of the accepted logs.
func (r *runner) book(refs []eventRef, answer []byte, at time.Time, probe bool) {
	var a acceptance
	err := json.Unmarshal(answer, &a)
	if !r.cfg.ClientIDs {
		if err != nil || len(a.IDs) != len(refs) || a.Rejected != 0 {
			// Generated logs are valid: an answer that does not take them
			// all cannot be matched with them.
			r.ledger.failed.Add(int64(len(refs)))
			r.ledger.failedBatches.Add(1)
			return
		}
		for i, s := range a.IDs {
			id, err := uuid.Parse(s)
			if err != nil {
				r.ledger.failed.Add(int64(len(refs)))
				r.ledger.failedBatches.Add(1)
				return
			}
			refs[i].id = id
		}
		r.ledger.record(refs)
		if probe {
			r.probes.accepted(refs[0], at)
		}
		return
	}
	if err != nil || len(a.IDs) != a.Accepted {
		// Not the producer's answer: trust the status.
		a = acceptance{Accepted: len(refs)}
		for _, ref := range refs {
			a.IDs = append(a.IDs, uuid.UUID(ref.id).String())
		}
	}
	if a.Rejected > 0 {
		r.ledger.rejected.Add(int64(a.Rejected))
	}
	ok := refs
	if len(a.IDs) != len(refs) {
		byID := make(map[[16]byte]eventRef, len(refs))
		for _, ref := range refs {
			byID[ref.id] = ref
		}
		ok = make([]eventRef, 0, len(a.IDs))
		for _, s := range a.IDs {
			if id, err := uuid.Parse(s); err == nil {
				if ref, found := byID[id]; found {
					ok = append(ok, ref)
				}
			}
		}
	}
	r.ledger.record(ok)
	if probe && len(ok) > 0 && ok[0].id == refs[0].id {
		r.probes.accepted(refs[0], at)
	}
}

// do sends one request and reads the whole answer, so the connection is
// reused.
func (r *runner) do(ctx context.Context, method, url string, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// backoff is the wait before attempt+1: exponential with jitter.
func backoff(attempt int) time.Duration {
	d := min(backoffBase<<(attempt-1), backoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
