package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/ingest/body"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.opentelemetry.io/otel/trace"
)

// Publisher hands events to Kafka and returns once they are acknowledged.
type Publisher interface {
	Publish(ctx context.Context, events []logs.Event, letters []DeadLetter, correlationID string) error
}

// HandlerConfig bounds what the ingest API takes.
type HandlerConfig struct {
	Limits       event.Limits
	MaxBodyBytes int64
	// MaxBodyBytesInFlight bounds the memory of every ingest body being
	// read or handled at once (503 with Retry-After past it).
	MaxBodyBytesInFlight int64
	MaxBatchEvents       int
	// RetryAfter is the Retry-After of a 503 answer.
	RetryAfter time.Duration
	// MaxUnstored bounds the records accepted but not stored yet, when
	// Unstored is set: past it requests get 503, so that a broker that
	// keeps records in memory (the embedded one) stays bounded.
	MaxUnstored int64
	// Unstored counts the records accepted but not stored yet; nil when
	// the broker keeps them on disk. Set by the caller, not a flag.
	Unstored func() int64
	// TenantRetention, when set, is the retention of the tenants whose
	// retention differs from Limits.Retention (the keys file's). Set by
	// the caller, not a flag.
	TenantRetention func() map[string]time.Duration
}

// DefaultHandlerConfig holds the limits API.md documents.
func DefaultHandlerConfig() HandlerConfig {
	return HandlerConfig{Limits: event.DefaultLimits(), MaxBodyBytes: 10 << 20, MaxBodyBytesInFlight: 128 << 20,
		MaxBatchEvents: 10000, RetryAfter: time.Second, MaxUnstored: 100_000}
}

// RegisterFlags binds the limits to flags whose defaults are c's values.
func (c *HandlerConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest accepted request body, counted decompressed (413 beyond)")
	fs.Int64Var(&c.MaxBodyBytesInFlight, "max-body-bytes-in-flight", c.MaxBodyBytesInFlight,
		"memory all ingest request bodies being read or handled may hold at once (503 with Retry-After beyond); at least twice --max-body-bytes plus 128 KiB (a zstd body also holds its decoder's window)")
	fs.IntVar(&c.MaxBatchEvents, "max-batch-events", c.MaxBatchEvents, "most events in one batch request (413 beyond)")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After of a 503 answer when Kafka cannot take a request now")
	fs.Int64Var(&c.MaxUnstored, "max-unstored-records", c.MaxUnstored, "with the embedded broker (which keeps records in memory), records accepted but not stored yet at most; past it ingest answers 503")
	c.Limits.RegisterFlags(fs)
}

// Validate reports every setting that cannot work, naming its flag.
func (c *HandlerConfig) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{"max-body-bytes": c.MaxBodyBytes, "max-batch-events": int64(c.MaxBatchEvents), "max-unstored-records": c.MaxUnstored})
	p.Positive(map[string]time.Duration{"retry-after": c.RetryAfter})
	// A lone body of the largest size, compressed, must fit.
	if need := c.MaxBodyBytes + body.DecoderReserve(c.MaxBodyBytes); c.MaxBodyBytes >= 1 && c.MaxBodyBytesInFlight < need {
		p.Add("max-body-bytes-in-flight", "must be at least %d (twice --max-body-bytes plus 128 KiB: a body and its zstd decoder's window), not %d", need, c.MaxBodyBytesInFlight)
	}
	return errors.Join(p.Err(), c.Limits.Validate())
}

// Handler serves the producer's HTTP API.
type Handler struct {
	cfg     HandlerConfig
	pub     Publisher
	logger  *slog.Logger
	metrics *metrics.Producer
	now     func() time.Time
	bodies  *body.Reader
}

// NewHandler builds the ingest API over a publisher.
func NewHandler(cfg HandlerConfig, pub Publisher, logger *slog.Logger, reg prometheus.Registerer) *Handler {
	bodies := body.NewReader(body.Limits{MaxBytes: cfg.MaxBodyBytes, MaxInFlightBytes: cfg.MaxBodyBytesInFlight, RetryAfter: cfg.RetryAfter}, reg)
	return &Handler{cfg: cfg, pub: pub, logger: logger, metrics: metrics.NewProducer(reg), now: time.Now, bodies: bodies}
}

// Bodies reads request bodies for every ingest endpoint of the process,
// within one in-flight budget; other ingest protocols read theirs with it.
func (h *Handler) Bodies() *body.Reader { return h.bodies }

// Config is the configuration the handler runs with.
func (h *Handler) Config() HandlerConfig { return h.cfg }

// Register mounts the routes.
func (h *Handler) Register(e *echo.Echo) {
	e.POST("/api/v1/logs", h.postOne)
	e.POST("/api/v1/logs/batch", h.postBatch)
	e.POST("/api/v1/logs/jsonl", h.postJSONLines)
}

// apiError is the JSON body of every 4xx and 5xx answer.
type apiError struct {
	Error   string             `json:"error"`
	Details []event.FieldError `json:"details,omitempty"`
}

func (h *Handler) postOne(c echo.Context) error {
	body, herr := h.readBody(c)
	if herr != nil {
		return herr
	}
	cid := c.Response().Header().Get(echo.HeaderXCorrelationID)
	ev, err := event.Parse(body, h.defaults(c, cid), h.limits(c.Request().Context()))
	if err != nil {
		var inv event.Invalid
		errors.As(err, &inv)
		h.reject(inv)
		// inv says "invalid event: " itself.
		return c.JSON(http.StatusBadRequest, apiError{Error: inv.Error(), Details: inv})
	}
	h.metrics.Received.Inc()
	if answered, err := h.publish(c, []logs.Event{ev}, nil, cid); answered || err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{
		"message":       "Log event accepted for processing",
		"accepted":      1,
		"ids":           []string{ev.ID.String()},
		"correlationId": cid,
	})
}

type itemError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

func (h *Handler) postBatch(c echo.Context) error {
	body, herr := h.readBody(c)
	if herr != nil {
		return herr
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		h.metrics.Rejected.WithLabelValues("malformed").Inc()
		return c.JSON(http.StatusBadRequest, apiError{Error: "request body must be a JSON array of log events"})
	}
	cid := c.Response().Header().Get(echo.HeaderXCorrelationID)
	// One pass: each element is parsed as the array is checked.
	batch, err := event.ParseBatch(trimmed, h.defaults(c, cid), h.limits(c.Request().Context()), h.cfg.MaxBatchEvents)
	if err != nil {
		h.metrics.Rejected.WithLabelValues("malformed").Inc()
		return c.JSON(http.StatusBadRequest, apiError{Error: "malformed JSON array: " + err.Error()})
	}
	if batch.Len > h.cfg.MaxBatchEvents {
		return c.JSON(http.StatusRequestEntityTooLarge, apiError{
			Error: fmt.Sprintf("batch has %d events, more than the limit of %d; split it", batch.Len, h.cfg.MaxBatchEvents),
		})
	}
	events, repeated := withoutRepeatedIDs(batch)
	var letters []DeadLetter
	errs := []itemError{}
	for _, r := range repeated {
		// The store keeps one event per client id: the first stands, a
		// later one is refused (kept in the DLQ) instead of counted as
		// accepted and silently dropped.
		h.metrics.Rejected.WithLabelValues("id").Inc()
		raw, err := event.Encode(&r.ev)
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("invalid event: id: repeats the id of element %d of this batch; one event is stored per id, so this one was not accepted", r.first)
		errs = append(errs, itemError{Index: r.index, Error: msg})
		letters = append(letters, DeadLetter{Value: raw, Reason: ReasonValidation, Err: msg, Stage: "producer", CorrelationID: cid})
	}
	for _, r := range batch.Rejected {
		h.reject(r.Err)
		errs = append(errs, itemError{Index: r.Index, Error: r.Err.Error()})
		// Nothing sent is lost: an invalid event is kept in the DLQ
		// with its reason, where it can be inspected and replayed.
		letters = append(letters, DeadLetter{
			Value: r.Raw, Reason: ReasonValidation, Err: r.Err.Error(), Stage: "producer", CorrelationID: cid,
		})
	}
	slices.SortFunc(errs, func(a, b itemError) int { return a.Index - b.Index })
	h.metrics.Received.Add(float64(len(events)))
	if answered, err := h.publish(c, events, letters, cid); answered || err != nil {
		return err
	}
	if len(events) == 0 && batch.Len > 0 {
		return c.JSON(http.StatusBadRequest, map[string]any{
			"error": "every event of the batch is invalid", "accepted": 0, "rejected": len(errs), "errors": errs,
		})
	}
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID.String()
	}
	return c.JSON(http.StatusAccepted, map[string]any{
		"message":       "Batch of log events accepted for processing",
		"accepted":      len(events),
		"rejected":      len(errs),
		"errors":        errs,
		"ids":           ids,
		"correlationId": cid,
	})
}

// repeatedID is a batch element whose client id an earlier one has.
type repeatedID struct {
	index, first int
	ev           logs.Event
}

// withoutRepeatedIDs drops from the batch's events those whose client id
// an earlier element has, and says which they are, by element index.
func withoutRepeatedIDs(b event.Batch) ([]logs.Event, []repeatedID) {
	var seen map[uuid.UUID]int
	var repeated []repeatedID
	kept := b.Events[:0:0]
	// Events are the elements not rejected, in order.
	index, rejected := 0, 0
	for i, ev := range b.Events {
		for rejected < len(b.Rejected) && b.Rejected[rejected].Index == index {
			rejected++
			index++
		}
		if ev.ClientID {
			if seen == nil {
				seen = map[uuid.UUID]int{}
			}
			if first, dup := seen[ev.ID]; dup {
				if repeated == nil {
					kept = append(kept, b.Events[:i]...)
				}
				repeated = append(repeated, repeatedID{index: index, first: first, ev: ev})
				index++
				continue
			}
			seen[ev.ID] = index
		}
		if repeated != nil {
			kept = append(kept, ev)
		}
		index++
	}
	if repeated == nil {
		return b.Events, nil
	}
	return kept, repeated
}

// publish waits for Kafka; when it cannot take the events the client gets
// 503 with Retry-After, never an acceptance that could be lost. answered
// says the 503 is written: the caller must then write nothing more.
func (h *Handler) publish(c echo.Context, events []logs.Event, letters []DeadLetter, cid string) (answered bool, err error) {
	if u := h.publishWait(c.Request().Context(), events, letters, cid); u != nil {
		c.Response().Header().Set("Retry-After", u.RetryAfterSeconds())
		return true, c.JSON(http.StatusServiceUnavailable, apiError{Error: u.Message})
	}
	return false, nil
}

// Unavailable is the refusal of events Kafka cannot take now: the client
// is to retry after RetryAfter. Nothing of the request was accepted.
type Unavailable struct {
	Message    string
	RetryAfter time.Duration
}

func (u *Unavailable) Error() string { return u.Message }

// RetryAfterSeconds is the Retry-After header's value.
func (u *Unavailable) RetryAfterSeconds() string {
	return fmt.Sprint(int(u.RetryAfter.Seconds() + 0.5))
}

// limits are the validation limits of a request acting for ctx's tenant:
// its retention may differ.
func (h *Handler) limits(ctx context.Context) event.Limits {
	lim := h.cfg.Limits
	if h.cfg.TenantRetention != nil {
		if d, ok := h.cfg.TenantRetention()[logs.TenantFrom(ctx)]; ok {
			lim.Retention = d
		}
	}
	return lim
}

// publishWait hands the events and letters to Kafka, as ctx's tenant's,
// and waits for its acknowledgement; a non-nil answer means they were not
// accepted.
func (h *Handler) publishWait(ctx context.Context, events []logs.Event, letters []DeadLetter, cid string) *Unavailable {
	start := h.now()
	tenant := logs.TenantFrom(ctx)
	label := metrics.TenantLabel(ctx, tenant)
	for i := range events {
		events[i].Tenant = tenant
	}
	for i := range letters {
		letters[i].Tenant = tenant
	}
	if h.cfg.Unstored != nil {
		if n := h.cfg.Unstored(); n > h.cfg.MaxUnstored {
			h.metrics.TenantEvents.WithLabelValues(label, "failed").Add(float64(len(events)))
			h.metrics.Failed.Add(float64(len(events)))
			return &Unavailable{RetryAfter: h.cfg.RetryAfter, Message: fmt.Sprintf(
				"the store is behind: %d accepted records are not stored yet (--max-unstored-records %d); the log events were not accepted, retry later",
				n, h.cfg.MaxUnstored)}
		}
	}
	if err := h.pub.Publish(ctx, events, letters, cid); err != nil {
		h.metrics.TenantEvents.WithLabelValues(label, "failed").Add(float64(len(events)))
		h.metrics.Failed.Add(float64(len(events)))
		h.logger.Warn("kafka did not take events", "err", err, "events", len(events), "correlation_id", cid)
		return &Unavailable{RetryAfter: h.cfg.RetryAfter, Message: unavailableMessage(err)}
	}
	h.metrics.TenantEvents.WithLabelValues(label, "accepted").Add(float64(len(events)))
	h.metrics.TenantEvents.WithLabelValues(label, "rejected").Add(float64(len(letters)))
	h.metrics.Sent.Add(float64(len(events)))
	h.metrics.AcceptDuration.Observe(h.now().Sub(start).Seconds())
	return nil
}

// unavailableMessage tells the client why Kafka did not take its events.
// Kafka's retriable refusals (a leader moving, NOT_ENOUGH_REPLICAS while
// fewer replicas than the topic's min.insync.replicas are in sync) are
// retried by the client until the produce timeout, so they end as a
// timeout; the message names them as its likely causes.
func unavailableMessage(err error) string {
	var ke *kerr.Error
	switch {
	case errors.Is(err, ErrBufferFull):
		return "the producer is at its in-flight limit; the log events were not accepted, retry later"
	case errors.As(err, &ke):
		return fmt.Sprintf("Kafka refused the log events (%s: %s); they were not accepted, retry later (with the same ids to avoid duplicates)",
			ke.Message, ke.Description)
	default:
		return "Kafka did not acknowledge the log events in time (a broker is unreachable, a partition has no leader, " +
			"or fewer replicas than min.insync.replicas are in sync: NOT_ENOUGH_REPLICAS); they were not accepted, " +
			"retry later (with the same ids to avoid duplicates)"
	}
}

func (h *Handler) reject(inv event.Invalid) {
	reason := "invalid"
	if len(inv) > 0 {
		reason = inv[0].Field
	}
	h.metrics.Rejected.WithLabelValues(reason).Inc()
}

// readBody reads a JSON body (see body.Reader.Read). A non-nil
// *echo.HTTPError is the answer to give instead.
func (h *Handler) readBody(c echo.Context) ([]byte, *echo.HTTPError) {
	b, err := h.bodies.Read(c, echo.MIMEApplicationJSON)
	if err != nil {
		var he *echo.HTTPError
		if !errors.As(err, &he) {
			he = echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		return nil, he
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "request body is empty")
	}
	return b, nil
}

// defaults gives events without a timestamp the time of receipt, and
// without a traceId the W3C trace id of traceparent, else the client's
// X-Correlation-ID, else the id of the request's own trace.
func (h *Handler) defaults(c echo.Context, cid string) event.Defaults {
	req := c.Request()
	id := TraceIDFromTraceparent(req.Header.Get("traceparent"))
	if id == "" && req.Header.Get(echo.HeaderXCorrelationID) != "" {
		id = cid
	}
	if id == "" {
		if sc := trace.SpanContextFromContext(req.Context()); sc.HasTraceID() {
			id = sc.TraceID().String()
		}
	}
	if id == "" {
		id = cid
	}
	return event.Defaults{Now: h.now(), TraceID: id}
}

// TraceIDFromTraceparent returns the trace id of a valid W3C traceparent
// header ("00-<32 hex>-<16 hex>-<2 hex>"), or "".
func TraceIDFromTraceparent(tp string) string {
	parts := strings.Split(strings.TrimSpace(tp), "-")
	if len(parts) != 4 || len(parts[1]) != 32 || len(parts[2]) != 16 {
		return ""
	}
	id := strings.ToLower(parts[1])
	if strings.Trim(id, "0") == "" || strings.Trim(id, "0123456789abcdef") != "" {
		return ""
	}
	return id
}
