package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Visibility probes: about probeCount logs spread over the run carry a
// trace id of their own and are polled by it until the gateway finds them.
const (
	probeCount       = 50
	probeConcurrency = 4
	probePoll        = 25 * time.Millisecond
	// walkPage is the page size of the verification walk (the gateway's
	// default largest page; a smaller --max-page-size only means more pages).
	walkPage    = 1000
	verifyPause = 500 * time.Millisecond
)

// page is the part of a search answer the verification reads.
type page struct {
	Content []struct {
		ID      string `json:"id"`
		TraceID string `json:"traceId"`
	} `json:"content"`
	NextCursor string `json:"nextCursor"`
}

// timeParam formats a query time to the millisecond. A window that ends
// "now" at the millisecond makes each poll a distinct query, which the
// gateway's cache (keyed by the normalised query) cannot answer with an
// older result.
func timeParam(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

// search runs GET /api/v1/logs with q and decodes the page.
func (r *runner) search(ctx context.Context, q url.Values) (page, error) {
	var p page
	status, _, body, err := r.do(ctx, http.MethodGet, r.cfg.GatewayURL+"/api/v1/logs?"+q.Encode(), nil)
	if err != nil {
		return p, err
	}
	if status != http.StatusOK {
		return p, fmt.Errorf("gateway answered %d: %.200s", status, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, fmt.Errorf("gateway answer is not a page: %w", err)
	}
	return p, nil
}

type probe struct {
	ref        eventRef
	acceptedAt time.Time
}

// prober measures how long an accepted log takes to become searchable.
type prober struct {
	r        *runner
	enabled  bool
	step     int64       // with a count: probe the batch holding every step-th log
	wanted   atomic.Bool // with a duration: the next batch carries a probe
	period   time.Duration
	issued   atomic.Int64
	ch       chan probe
	lat      *recorder
	notFound atomic.Int64
}

func newProber(r *runner) *prober {
	p := &prober{
		r: r, enabled: r.cfg.GatewayURL != "",
		ch:  make(chan probe, probeCount),
		lat: newRecorder(probeCount, uint64(r.cfg.Seed)),
	}
	if r.cfg.Count > 0 {
		p.step = max(int64(r.cfg.Count)/probeCount, 1)
	} else {
		p.period = max(r.cfg.Duration/probeCount, 50*time.Millisecond)
		p.wanted.Store(true)
	}
	return p
}

// want says whether the batch of logs [first, first+n) carries a probe.
func (p *prober) want(first int64, n int) bool {
	if !p.enabled || p.issued.Load() >= probeCount {
		return false
	}
	if p.step > 0 {
		next := (first + p.step - 1) / p.step * p.step
		if next >= first+int64(n) {
			return false
		}
	} else if !p.wanted.CompareAndSwap(true, false) {
		return false
	}
	return p.issued.Add(1) <= probeCount
}

// accepted hands an accepted probe log to the pollers.
func (p *prober) accepted(ref eventRef, at time.Time) {
	select {
	case p.ch <- probe{ref: ref, acceptedAt: at}:
	default:
	}
}

// run asks for probes while logs are sent and polls each accepted one
// until it is found or VerifyTimeout after its acceptance.
func (p *prober) run(ctx context.Context, sendDone <-chan struct{}) {
	var tick <-chan time.Time
	if p.period > 0 {
		t := time.NewTicker(p.period)
		defer t.Stop()
		tick = t.C
	}
	sem := make(chan struct{}, probeConcurrency)
	var wg sync.WaitGroup
	start := func(pr probe) {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			p.poll(ctx, pr)
		})
	}
loop:
	for {
		select {
		case pr := <-p.ch:
			start(pr)
		case <-tick:
			p.wanted.Store(true)
		case <-sendDone:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	// The workers have stopped: what is in the channel is all there is.
	for {
		select {
		case pr := <-p.ch:
			start(pr)
			continue
		default:
		}
		break
	}
	wg.Wait()
}

func (p *prober) poll(ctx context.Context, pr probe) {
	deadline := pr.acceptedAt.Add(p.r.cfg.VerifyTimeout)
	want := uuid.UUID(pr.ref.id).String()
	q := url.Values{
		"traceId":   {pr.ref.trace},
		"startTime": {timeParam(pr.ref.ts.Add(-time.Minute))},
		"size":      {"10"},
	}
	for ctx.Err() == nil && time.Now().Before(deadline) {
		q.Set("endTime", timeParam(time.Now().Add(time.Millisecond)))
		pg, err := p.r.search(ctx, q)
		if err == nil {
			for _, c := range pg.Content {
				if c.ID == want {
					p.lat.add(time.Since(pr.acceptedAt))
					return
				}
			}
		}
		// Poll often at first, then less: the measure stays within about
		// 5% while a log that takes long to appear costs few queries.
		if !sleep(ctx, min(max(probePoll, time.Since(pr.acceptedAt)/20), time.Second)) {
			break
		}
	}
	p.notFound.Add(1)
}

func (p *prober) latency() Latency { return p.lat.latency() }

// verify waits until the gateway finds every accepted log of the run and
// counts what is missing or stored twice. Each round first asks the
// statistics for the number of logs in the run's window (exact, cheap),
// and only when it reaches the accepted count does it read the run's logs
// back: up to walkLimit accepted logs it walks them all (keyword = run id)
// with the cursor; beyond, it looks a sample up by trace id, and Lost and
// Duplicates count within the sample.
func (r *runner) verify(ctx context.Context, start time.Time, rep *Report) {
	deadline := time.Now().Add(r.cfg.VerifyTimeout)
	from := start.Add(-time.Minute)
	r.ledger.mu.Lock()
	ids, walk, sample := r.ledger.ids, !r.ledger.overflow, append([]eventRef(nil), r.ledger.sample...)
	r.ledger.mu.Unlock()
	rep.Verification = "walk"
	if !walk {
		rep.Verification = "sample"
	}
	accepted := rep.Accepted
	// missing is what is not found yet, out of of; it falling tells the
	// store is still catching up.
	var lastErr error
	missing, of, what := accepted, accepted, "accepted logs"
	measured := false
	var lastDrop time.Time
	note := func(m, o int64, w, status string) {
		if measured && w == what && m < missing {
			lastDrop = time.Now()
		}
		missing, of, what, measured = m, o, w, true
		r.setVerifyStatus(status)
	}
	found := make([]bool, len(sample)) // sampled logs found once
	// When the window's total has not moved (or could not be read) for
	// stallAfter, the logs are read back anyway, lest a count that is off
	// keep the verification waiting for nothing.
	var lastTotal int64 = -1
	moved := time.Now()
	for {
		began := time.Now()
		total, err := r.windowTotal(ctx, from)
		if err == nil && total != lastTotal {
			lastTotal, moved = total, time.Now()
		}
		if err != nil {
			lastErr = err
		}
		waiting := time.Since(moved) < r.cfg.stallAfter
		switch {
		case err != nil && waiting:
		case err == nil && total < accepted && waiting:
			// Other clients' logs may be in the window too: at least this
			// many of the run's are missing.
			note(accepted-total, accepted, "accepted logs", fmt.Sprintf("%d logs in the window, %d accepted", total, accepted))
		case walk:
			var o walkOutcome
			if o, err = r.walkRun(ctx, from, ids); err != nil {
				lastErr = err
				break
			}
			rep.Duplicates, rep.StoredUnacknowledged = o.duplicates, o.unacknowledged
			note(o.lost, accepted, "accepted logs", fmt.Sprintf("read back %d of %d", accepted-o.lost, accepted))
			if o.lost == 0 {
				rep.Verified = o.duplicates == 0
				return
			}
		default:
			var lost int64
			if lost, err = r.checkSample(ctx, sample, found, &rep.Duplicates); err != nil {
				lastErr = err
				break
			}
			note(lost, int64(len(sample)), "sampled accepted logs", fmt.Sprintf("sample found %d of %d", int64(len(sample))-lost, len(sample)))
			if lost == 0 {
				rep.Verified = rep.Duplicates == 0
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			rep.Lost = missing
			msg := fmt.Sprintf("verification timed out after %s: %d of %d %s not found", r.cfg.VerifyTimeout, missing, of, what)
			if time.Since(lastDrop) < 5*time.Second {
				msg += "; the store was still catching up (raise --verify-timeout or lower --rate)"
			}
			if lastErr != nil {
				msg += fmt.Sprintf("; last error: %v", lastErr)
			}
			rep.VerifyError = msg
			return
		}
		// Rest at least as long as the round took, so that verifying never
		// takes more than half of one connection from a store catching up.
		if !sleep(ctx, max(verifyPause, time.Since(began))) {
			return
		}
	}
}

// windowTotal is the number of logs, of any client, in the run's window.
func (r *runner) windowTotal(ctx context.Context, from time.Time) (int64, error) {
	q := url.Values{
		"startTime": {timeParam(from)},
		"endTime":   {timeParam(time.Now().Add(time.Minute))},
		"top":       {"1"},
	}
	status, _, body, err := r.do(ctx, http.MethodGet, r.cfg.GatewayURL+"/api/v1/logs/stats?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("gateway answered %d to stats: %.200s", status, body)
	}
	var st struct {
		TotalCount *int64 `json:"totalCount"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.TotalCount == nil {
		return 0, fmt.Errorf("gateway stats answer has no totalCount: %.200s", body)
	}
	return *st.TotalCount, nil
}

type walkOutcome struct {
	rows, lost, duplicates, unacknowledged int64
}

// walkRun reads every log of the run, a page of walkPage at a time
// following nextCursor, and compares their ids with the accepted ones.
func (r *runner) walkRun(ctx context.Context, from time.Time, accepted [][16]byte) (walkOutcome, error) {
	q := url.Values{
		"keyword":   {r.runID},
		"startTime": {timeParam(from)},
		"endTime":   {timeParam(time.Now().Add(time.Minute))},
		"size":      {strconv.Itoa(walkPage)},
		"sort":      {"asc"},
	}
	seen := make(map[[16]byte]int32, len(accepted))
	var o walkOutcome
	for {
		pg, err := r.search(ctx, q)
		if err != nil {
			return o, err
		}
		for _, c := range pg.Content {
			id, err := uuid.Parse(c.ID)
			if err != nil {
				return o, fmt.Errorf("gateway returned the id %q", c.ID)
			}
			seen[id]++
			o.rows++
		}
		if pg.NextCursor == "" || len(pg.Content) == 0 {
			break
		}
		q.Set("cursor", pg.NextCursor)
	}
	want := make(map[[16]byte]struct{}, len(accepted))
	for _, id := range accepted {
		want[id] = struct{}{}
		if seen[id] == 0 {
			o.lost++
		}
	}
	for id, n := range seen {
		o.duplicates += int64(n - 1)
		if _, ok := want[id]; !ok {
			o.unacknowledged++
		}
	}
	return o, nil
}

// checkSample looks up by trace id each sampled log not found yet, marks
// those found, adds copies beyond the first to duplicates, and returns how
// many are still missing.
func (r *runner) checkSample(ctx context.Context, sample []eventRef, found []bool, duplicates *int64) (int64, error) {
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, probeConcurrency)
	var wg sync.WaitGroup
	for i, ref := range sample {
		if found[i] {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pg, err := r.search(ctx, url.Values{
				"traceId":   {ref.trace},
				"startTime": {timeParam(ref.ts.Add(-time.Minute))},
				"endTime":   {timeParam(time.Now().Add(time.Minute))},
				"size":      {"100"},
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				return
			}
			want := uuid.UUID(ref.id).String()
			n := 0
			for _, c := range pg.Content {
				if c.ID == want {
					n++
				}
			}
			if n > 0 {
				found[i] = true
				*duplicates += int64(n - 1)
			}
		})
	}
	wg.Wait()
	var lost int64
	for _, f := range found {
		if !f {
			lost++
		}
	}
	return lost, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
