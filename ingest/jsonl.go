package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// ProtocolJSONLines names JSON lines in metrics and dead letters.
const ProtocolJSONLines = "jsonl"

// postJSONLines takes newline-delimited native events, for shippers that
// emit NDJSON over HTTP: each non-blank line is one event of the native
// API, checked as POST /api/v1/logs checks it; it answers as the batch
// endpoint does, with the index of a bad line counted from 0 among the
// non-blank lines.
func (h *Handler) postJSONLines(c echo.Context) error {
	body, _, herr := h.ReadBody(c, "application/x-ndjson", "application/jsonl", "application/jsonlines",
		"application/x-jsonlines", "application/json", "text/plain")
	if herr != nil {
		return herr
	}
	cid := CorrelationID(c)
	def, lim := h.defaults(c, cid), h.limits(c.Request().Context())
	var (
		events  []logs.Event
		letters []DeadLetter
		errs    = []itemError{}
		n       int
	)
	for line := range bytes.Lines(body) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		i := n
		n++
		if n > h.cfg.MaxBatchEvents {
			continue // counted, to say how many there are
		}
		ev, err := event.Parse(line, def, lim)
		if err != nil {
			var inv event.Invalid
			errors.As(err, &inv)
			h.reject(inv)
			errs = append(errs, itemError{Index: i, Error: err.Error()})
			letters = append(letters, DeadLetter{
				Value: line, Reason: ReasonValidation, Err: ProtocolJSONLines + ": " + err.Error(), Stage: "producer", CorrelationID: cid,
			})
			continue
		}
		events = append(events, ev)
	}
	if n > h.cfg.MaxBatchEvents {
		return c.JSON(http.StatusRequestEntityTooLarge, apiError{
			Error: fmt.Sprintf("the request has %d lines, more than the limit of %d (--max-batch-events); split it", n, h.cfg.MaxBatchEvents),
		})
	}
	h.metrics.Received.Add(float64(len(events)))
	if u := h.publishWait(c.Request().Context(), events, letters, cid); u != nil {
		h.metrics.ProtocolEvents.WithLabelValues(ProtocolJSONLines, "failed").Add(float64(n))
		c.Response().Header().Set("Retry-After", u.RetryAfterSeconds())
		return c.JSON(http.StatusServiceUnavailable, apiError{Error: u.Message})
	}
	h.metrics.ProtocolEvents.WithLabelValues(ProtocolJSONLines, "accepted").Add(float64(len(events)))
	h.metrics.ProtocolEvents.WithLabelValues(ProtocolJSONLines, "rejected").Add(float64(len(errs)))
	if len(events) == 0 {
		return c.JSON(http.StatusBadRequest, map[string]any{
			"error": "no line is a valid event", "accepted": 0, "rejected": len(errs), "errors": errs,
		})
	}
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID.String()
	}
	return c.JSON(http.StatusAccepted, map[string]any{
		"message": "Log events accepted for processing", "accepted": len(events), "rejected": len(errs),
		"errors": errs, "ids": ids, "correlationId": cid,
	})
}
