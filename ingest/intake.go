package ingest

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// The ingest protocols (ingest/otlp, ingest/loki, ingest/elastic,
// ingest/syslog, and JSON lines here) decode their own formats into
// event.Drafts and hand them to Accept: from there on every event takes the
// native API's path, with its validation and repair, limits, DLQ and
// metrics, and is accepted only once Kafka acknowledged it.

// ItemError is why one item of a request was refused (and sent to the DLQ).
type ItemError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// Outcome is what became of a request's drafts: Accepted went to Kafka,
// Rejected to the DLQ, each with its reason, in the order of the drafts.
type Outcome struct {
	Accepted int
	Rejected []ItemError
	// IDs are the ids of the accepted events, in order.
	IDs []string
}

// Accept validates the drafts, publishes the valid ones to the log topic
// and the others to the DLQ, and returns once Kafka acknowledged all of
// them. An *Unavailable error means none was accepted: the client is to
// retry. protocol labels the metrics and the dead letters.
func (h *Handler) Accept(ctx context.Context, protocol string, drafts []event.Draft, cid string) (Outcome, error) {
	if len(drafts) > h.cfg.MaxBatchEvents {
		return Outcome{}, &TooLarge{Message: fmt.Sprintf(
			"the request has %d log events, more than the limit of %d (--max-batch-events); send smaller batches", len(drafts), h.cfg.MaxBatchEvents)}
	}
	def := event.Defaults{Now: h.now()}
	limits := h.limits(ctx)
	events := make([]logs.Event, 0, len(drafts))
	var (
		letters []DeadLetter
		out     Outcome
	)
	for i := range drafts {
		ev, raw, err := event.ParseDraft(&drafts[i], def, limits)
		if err != nil {
			inv, _ := err.(event.Invalid)
			h.reject(inv)
			out.Rejected = append(out.Rejected, ItemError{Index: i, Error: err.Error()})
			letters = append(letters, DeadLetter{
				Value: raw, Reason: ReasonValidation, Err: protocol + ": " + err.Error(), Stage: "producer", CorrelationID: cid,
			})
			continue
		}
		events = append(events, ev)
	}
	h.metrics.Received.Add(float64(len(events)))
	if u := h.publishWait(ctx, events, letters, cid); u != nil {
		h.metrics.ProtocolEvents.WithLabelValues(protocol, "failed").Add(float64(len(drafts)))
		return Outcome{}, u
	}
	h.metrics.ProtocolEvents.WithLabelValues(protocol, "accepted").Add(float64(len(events)))
	h.metrics.ProtocolEvents.WithLabelValues(protocol, "rejected").Add(float64(len(out.Rejected)))
	out.Accepted = len(events)
	out.IDs = make([]string, len(events))
	for i := range events {
		out.IDs[i] = events[i].ID.String()
	}
	return out, nil
}

// AcceptRequest is Accept for an HTTP request, with its correlation id.
func (h *Handler) AcceptRequest(c echo.Context, protocol string, drafts []event.Draft) (Outcome, error) {
	return h.Accept(c.Request().Context(), protocol, drafts, CorrelationID(c))
}

// CorrelationID is the request's correlation id, as the server set it.
func CorrelationID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXCorrelationID)
}

// TooLarge refuses a request with more events than a batch may have.
type TooLarge struct{ Message string }

func (t *TooLarge) Error() string { return t.Message }

// ReadBody reads a request body with the native API's reader (the same
// limits, decompression, in-flight budget and answers), for a protocol
// that takes the given media types; it returns the body and its media type.
func (h *Handler) ReadBody(c echo.Context, mediaTypes ...string) ([]byte, string, *echo.HTTPError) {
	b, err := h.bodies.Read(c, mediaTypes...)
	if err != nil {
		var he *echo.HTTPError
		if !errors.As(err, &he) {
			he = echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		return nil, "", he
	}
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if strings.HasSuffix(mt, "+json") {
		mt = echo.MIMEApplicationJSON
	}
	return b, strings.ToLower(mt), nil
}

// MaxBodyBytes is the largest body a request may have, decompressed; a
// protocol that decompresses a body itself applies it too.
func (h *Handler) MaxBodyBytes() int64 { return h.cfg.MaxBodyBytes }

// MaxBatchEvents is the most events one request may have.
func (h *Handler) MaxBatchEvents() int { return h.cfg.MaxBatchEvents }
