// Package audit writes the audit log: one JSON line per query, live tail,
// admin request, DLQ replay and export, saying who did it, what, when and with
// what result, to a stream of its own (stderr by default, or a file), and
// counts the records in audit_records_total. Writing never blocks nor
// fails the audited request: records are handed to a bounded queue, and
// what cannot be written is counted in audit_write_failures_total.
package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/logengine/logengine/configs"
	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of record.
const (
	KindQuery     = "query"      // a search, stats, histogram or Loki API request
	KindTail      = "tail"       // a live tail stream (SSE or the Loki websocket)
	KindAdmin     = "admin"      // an admin-scoped request, or a keys reload
	KindDLQReplay = "dlq_replay" // logengine dlq replay
	KindExport    = "export"     // logengine export
)

// Principals that are not key names.
const (
	// PrincipalAnonymous is a request without a valid key: the listeners
	// are open, or the key was missing or unknown. The record's client
	// says who it was.
	PrincipalAnonymous = "anonymous"
	// PrincipalSystem is the process itself (a keys file reload).
	PrincipalSystem = "system"
	// principalCLI labels the metric of a command run by an OS user,
	// whose name stays in the record only.
	principalCLI = "cli"
)

// Outcomes of a record.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// Record is one audited action. Its JSON names are stable (README,
// "Audit log").
type Record struct {
	Time time.Time
	Kind string
	// Principal is who: the API key's name, PrincipalAnonymous, the OS
	// user of a command, or PrincipalSystem.
	Principal string
	Tenant    string // the key's tenant, when a key was used
	Client    string // the client's address (HTTP)
	Role      string // the listener's role (HTTP)
	Method    string
	Path      string
	// Query is what was asked: the request's parameters, sorted, secrets
	// hidden, and a body's fields; or the action and its options.
	Query   string
	Status  int    // the HTTP status; 0 for an action that is not HTTP
	Outcome string // OutcomeOK or OutcomeError
	Error   string
	// Rows is how many logs the answer held, when the handler counted.
	Rows     int64
	RowsSet  bool
	Bytes    int64 // bytes of the answer's body
	Duration time.Duration
	TraceID  string
	// CorrelationID finds the request's line in the process's log.
	CorrelationID string
	// Details are a kind's own figures (a replay's skipped letters).
	Details []slog.Attr

	// keyed: Principal is an API key's name (a bounded metric label).
	keyed bool
}

// queueRecords bounds the records waiting to be written; past it a record
// is dropped and counted rather than holding up its request.
const queueRecords = 8192

// Logger writes audit records; a nil *Logger writes none.
type Logger struct {
	cfg    configs.Audit
	logger *slog.Logger // the process's log, for the audit stream's troubles
	out    *slog.Logger // the audit stream

	dest   destination
	queue  chan []byte
	reopen chan struct{}
	done   chan struct{}
	start  sync.Once
	// mu: a line is queued under the read lock, the queue closed under
	// the write lock, so no line is sent on a closed queue.
	mu     sync.RWMutex
	closed bool
	// failing: the last write failed (logged once until one succeeds).
	failing atomic.Bool

	records  *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// destination is where the writer goroutine puts lines.
type destination struct {
	path string // "" for stderr or stdout
	w    io.Writer
	f    *os.File // the file at path, or nil
}

// New opens the destination cfg names (a file that cannot be opened fails
// the start) and registers the metrics. Records are queued from now on and
// written once Start ran. With cfg.Log "off" it returns nil, which writes
// nothing.
func New(cfg configs.Audit, stderr, stdout io.Writer, logger *slog.Logger, reg prometheus.Registerer) (*Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	l := &Logger{
		cfg: cfg, logger: logger,
		queue: make(chan []byte, queueRecords), reopen: make(chan struct{}, 1), done: make(chan struct{}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_records_total",
			Help: "Audit records by kind (query, tail, admin, dlq_replay, export) and principal (the API key's name; anonymous without a key, system for the process itself, cli for a command).",
		}, []string{"kind", "principal"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_write_failures_total",
			Help: "Audit records not written, by reason: write (the destination refused them), queue_full (the destination is too slow), encode.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"write", "queue_full", "encode"} {
		l.failures.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{l.records, l.failures} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register audit metrics: %w", err)
			}
		}
	}
	switch cfg.Log {
	case configs.AuditStderr:
		l.dest = destination{w: stderr}
	case configs.AuditStdout, "-":
		l.dest = destination{w: stdout}
	default:
		f, err := openFile(cfg.Log)
		if err != nil {
			return nil, err
		}
		l.dest = destination{path: cfg.Log, w: f, f: f}
	}
	l.out = slog.New(slog.NewJSONHandler(queueWriter{l}, &slog.HandlerOptions{ReplaceAttr: recordAttr})).With("log", "audit")
	return l, nil
}

func openFile(path string) (*os.File, error) {
	// 0600: records hold what people searched for.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	return f, nil
}

// Config is the configuration the logger runs with.
func (l *Logger) Config() configs.Audit {
	if l == nil {
		return configs.Audit{Log: configs.AuditOff, MaxQueryBytes: configs.DefaultAudit().MaxQueryBytes}
	}
	return l.cfg
}

// recordAttr drops slog's level and message (every line is a record) and
// writes the time in UTC.
func recordAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey, slog.MessageKey:
		return slog.Attr{}
	case slog.TimeKey:
		if a.Value.Kind() == slog.KindTime {
			a.Value = slog.TimeValue(a.Value.Time().UTC())
		}
	}
	return a
}

// Start runs the writer until stop, which writes what is queued (within
// ctx) and closes the file. Call it once.
func (l *Logger) Start() (stop func(ctx context.Context)) {
	if l == nil {
		return func(context.Context) {}
	}
	l.start.Do(func() { go l.run() })
	return l.stop
}

func (l *Logger) stop(ctx context.Context) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		l.logger.Warn("audit records still queued at shutdown were not written", "records", len(l.queue))
	}
}

// run writes queued lines in order, one goroutine, so a slow destination
// holds up only the queue.
func (l *Logger) run() {
	defer close(l.done)
	defer func() {
		if l.dest.f != nil {
			_ = l.dest.f.Close()
		}
	}()
	for {
		select {
		case line, ok := <-l.queue:
			if !ok {
				return
			}
			l.write(line)
		case <-l.reopen:
			l.reopenFile()
		}
	}
}

func (l *Logger) write(line []byte) {
	if _, err := l.dest.w.Write(line); err != nil {
		l.failures.WithLabelValues("write").Inc()
		if !l.failing.Swap(true) {
			l.logger.Error("audit records cannot be written; the requests go on, and audit_write_failures_total counts what is lost",
				"audit_log", l.cfg.Log, "err", err)
		}
		return
	}
	if l.failing.Swap(false) {
		l.logger.Info("audit records are written again", "audit_log", l.cfg.Log)
	}
}

// reopenFile opens the file path again (after log rotation moved it).
func (l *Logger) reopenFile() {
	if l.dest.path == "" {
		return
	}
	f, err := openFile(l.dest.path)
	if err != nil {
		l.logger.Error("audit log not reopened; writing on to the file open before", "err", err)
		return
	}
	_ = l.dest.f.Close()
	l.dest.w, l.dest.f = f, f
	l.logger.Info("audit log reopened", "audit_log", l.dest.path)
}

// Reopen makes the writer open its file again, as log rotation needs.
func (l *Logger) Reopen() {
	if l == nil {
		return
	}
	select {
	case l.reopen <- struct{}{}:
	default: // one is pending already
	}
}

// Watch returns the loop that reopens the file on SIGHUP (logrotate's
// postrotate signal) until ctx ends. Without a file it only waits.
func (l *Logger) Watch() func(ctx context.Context) error {
	if l == nil || l.dest.path == "" {
		return func(ctx context.Context) error { <-ctx.Done(); return nil }
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return func(ctx context.Context) error {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				l.Reopen()
			}
		}
	}
}

// queueWriter hands each line slog formats to the writer goroutine, never
// waiting: a full queue drops the line and counts it.
type queueWriter struct{ l *Logger }

func (q queueWriter) Write(p []byte) (int, error) {
	q.l.mu.RLock()
	defer q.l.mu.RUnlock()
	if q.l.closed { // a request that ends after shutdown
		q.l.failures.WithLabelValues("queue_full").Inc()
		return len(p), nil
	}
	line := append([]byte(nil), p...) // slog reuses its buffer
	select {
	case q.l.queue <- line:
	default:
		q.l.failures.WithLabelValues("queue_full").Inc()
	}
	return len(p), nil
}

// Log writes r and counts it. It never blocks on the destination.
func (l *Logger) Log(r Record) {
	if l == nil {
		return
	}
	l.records.WithLabelValues(r.Kind, metricPrincipal(r)).Inc()
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	if r.Outcome == "" {
		r.Outcome = OutcomeOK
		if r.Status >= 400 || r.Error != "" {
			r.Outcome = OutcomeError
		}
	}
	q, cut := truncate(r.Query, l.cfg.MaxQueryBytes)
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs, slog.String("kind", r.Kind), slog.String("principal", r.Principal))
	add := func(key, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(key, v))
		}
	}
	add("tenant", r.Tenant)
	add("client", r.Client)
	add("role", r.Role)
	add("method", r.Method)
	add("path", r.Path)
	attrs = append(attrs, slog.String("query", q))
	if cut {
		attrs = append(attrs, slog.Bool("query_truncated", true))
	}
	if r.Status != 0 {
		attrs = append(attrs, slog.Int("status", r.Status))
	}
	attrs = append(attrs, slog.String("outcome", r.Outcome))
	add("error", r.Error)
	if r.RowsSet {
		attrs = append(attrs, slog.Int64("rows", r.Rows))
	}
	attrs = append(attrs, slog.Int64("bytes", r.Bytes),
		slog.Float64("duration_ms", float64(r.Duration.Microseconds())/1000))
	add("trace_id", r.TraceID)
	add("correlation_id", r.CorrelationID)
	if len(r.Details) > 0 {
		attrs = append(attrs, slog.Attr{Key: "details", Value: slog.GroupValue(r.Details...)})
	}
	rec := slog.NewRecord(r.Time, slog.LevelInfo, "audit", 0)
	rec.AddAttrs(attrs...)
	if err := l.out.Handler().Handle(context.Background(), rec); err != nil {
		l.failures.WithLabelValues("encode").Inc()
	}
}

// metricPrincipal is the record's principal as a metric label, which must
// stay bounded: key names come from the keys file; anything else is one
// of a few fixed values.
func metricPrincipal(r Record) string {
	switch {
	case r.keyed:
		return r.Principal
	case r.Kind == KindDLQReplay || r.Kind == KindExport:
		return principalCLI
	case r.Principal == PrincipalSystem:
		return PrincipalSystem
	}
	return PrincipalAnonymous
}

// truncatedMarker ends a query cut to the limit.
const truncatedMarker = "…[truncated]"

// truncate cuts s to at most max bytes, marker included, on a UTF-8
// boundary.
func truncate(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	n := max - len(truncatedMarker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + truncatedMarker, true
}
