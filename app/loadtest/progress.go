package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// progressPrinter writes a line a second: rewritten in place on a
// terminal, appended otherwise.
type progressPrinter struct {
	r     *runner
	start time.Time
	tty   bool

	mu           sync.Mutex
	phase        string
	lastAccepted int64
	lastLen      int
	printed      bool
}

func newProgressPrinter(r *runner, start time.Time) *progressPrinter {
	return &progressPrinter{r: r, start: start, tty: isTerminal(r.progress), phase: "sending"}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progressPrinter) setPhase(phase string) {
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
}

func (p *progressPrinter) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.print()
		}
	}
}

func (p *progressPrinter) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.r.ledger
	accepted := l.accepted.Load()
	sent := accepted + l.rejected.Load() + l.failed.Load()
	perSecond := accepted - p.lastAccepted
	p.lastAccepted = accepted
	line := fmt.Sprintf("%-9s %6.0fs  sent %d  accepted/s %d  errors %d",
		p.phase, time.Since(p.start).Seconds(), sent, perSecond, l.errorCount())
	if recent := p.r.queries.all.drainRecent(); len(recent) > 0 {
		slices.Sort(recent)
		line += fmt.Sprintf("  query p95 %.1fms", ms(percentile(recent, 95)))
	}
	if status := p.r.verifyStatus.Load(); p.phase == "verifying" && status != nil {
		line += "  " + *status
	}
	if p.tty {
		pad := max(p.lastLen-len(line), 0)
		fmt.Fprintf(p.r.progress, "\r%s%s", line, strings.Repeat(" ", pad))
		p.lastLen = len(line)
	} else {
		fmt.Fprintln(p.r.progress, line)
	}
	p.printed = true
}

// finish ends the rewritten line.
func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.printed {
		fmt.Fprintln(p.r.progress)
	}
}

// rssSampler follows the server's resident memory: VmHWM and VmRSS of a
// local process, or the producers' process_resident_memory_bytes.
type rssSampler struct {
	client *http.Client
	pid    int
	urls   []string

	mu     sync.Mutex
	max    int64
	source string
}

func newRSSSampler(client *http.Client, cfg Config) *rssSampler {
	return &rssSampler{client: client, pid: cfg.ServerPID, urls: cfg.ProducerURLs}
}

func (s *rssSampler) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			// One last look: VmHWM covers the whole life of the process.
			s.sample(context.WithoutCancel(ctx))
			return
		case <-t.C:
		}
	}
}

func (s *rssSampler) sample(ctx context.Context) {
	if s.pid > 0 {
		if v, err := procPeakRSS(s.pid); err == nil {
			s.observe(v, fmt.Sprintf("/proc/%d/status VmHWM", s.pid))
		}
		return
	}
	for _, u := range s.urls {
		if v, err := s.metricRSS(ctx, u); err == nil {
			s.observe(v, "process_resident_memory_bytes of the producer, sampled every second")
		}
	}
}

func (s *rssSampler) observe(v int64, source string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v > s.max {
		s.max, s.source = v, source
	}
}

func (s *rssSampler) peak() (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.source
}

// procPeakRSS is the larger of VmHWM (the peak) and VmRSS in bytes.
func procPeakRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatus(raw)
}

func parseProcStatus(raw []byte) (int64, error) {
	var best int64
	found := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		best, found = max(best, kb*1024), true
	}
	if !found {
		return 0, fmt.Errorf("no VmHWM or VmRSS in /proc status")
	}
	return best, nil
}

func (s *rssSampler) metricRSS(ctx context.Context, base string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("metrics answered %d", resp.StatusCode)
	}
	v, err := parseRSSMetric(resp.Body)
	_, _ = io.Copy(io.Discard, resp.Body)
	return v, err
}

// parseRSSMetric finds process_resident_memory_bytes in a Prometheus text
// exposition.
func parseRSSMetric(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "process_resident_memory_bytes")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest) // value, then an optional timestamp
		if len(fields) == 0 {
			continue
		}
		f, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, err
		}
		return int64(f), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no process_resident_memory_bytes metric")
}
