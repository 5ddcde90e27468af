// Package loki takes Loki's push API (POST /loki/api/v1/push): JSON, and
// snappy-compressed protobuf as Promtail, Alloy, Fluent Bit and Vector
// send it. The protobuf is read from the documented message format
// (logproto.PushRequest); no Loki code is used.
//
// Mapping, configurable: the first of --loki-source-labels that a stream
// has is the source; the first of --loki-level-labels among the entry's
// structured metadata and the stream's labels is the level (read as
// event.LevelFromText reads it; INFO otherwise); the first of
// --loki-trace-id-keys in the structured metadata is the traceId; every
// label and every structured metadata pair is metadata (structured
// metadata wins over a label of the same name); the line is the message.
package loki

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/spf13/pflag"
)

// Protocol names the protocol in metrics and dead letters.
const Protocol = "loki"

// Path is Loki's push endpoint.
const Path = "/loki/api/v1/push"

// Config is the mapping of streams to events.
type Config struct {
	// SourceLabels are tried in order for the source.
	SourceLabels []string
	// LevelLabels are tried in order, in the entry's structured metadata
	// and then the stream's labels, for the level.
	LevelLabels []string
	// TraceIDKeys are tried in order in the structured metadata, then the
	// labels, for the traceId.
	TraceIDKeys []string
	// DefaultSource is the source of a stream with none of SourceLabels.
	DefaultSource string
}

// DefaultConfig reads the labels Promtail, Alloy and Grafana use.
func DefaultConfig() Config {
	return Config{
		SourceLabels:  []string{"service_name", "app", "application", "job", "container", "service"},
		LevelLabels:   []string{"level", "detected_level", "severity", "lvl", "loglevel"},
		TraceIDKeys:   []string{"trace_id", "traceId", "traceID"},
		DefaultSource: "unknown_service",
	}
}

// RegisterFlags binds the mapping to flags whose defaults are c's values.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	flagvalue.ListVar(fs, &c.SourceLabels, "loki-source-labels", c.SourceLabels, "Loki push: the stream labels tried in order for an event's source")
	flagvalue.ListVar(fs, &c.LevelLabels, "loki-level-labels", c.LevelLabels, "Loki push: the structured metadata keys and stream labels tried in order for an event's level (INFO without one)")
	flagvalue.ListVar(fs, &c.TraceIDKeys, "loki-trace-id-keys", c.TraceIDKeys, "Loki push: the structured metadata keys and stream labels tried in order for an event's traceId")
	fs.StringVar(&c.DefaultSource, "loki-default-source", c.DefaultSource, "Loki push: the source of a stream without any of --loki-source-labels")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.DefaultSource) == "" {
		return errors.New("--loki-default-source must not be blank")
	}
	return nil
}

// Intake is the shared ingest path (ingest.Handler).
type Intake interface {
	ReadBody(c echo.Context, mediaTypes ...string) ([]byte, string, *echo.HTTPError)
	AcceptRequest(c echo.Context, protocol string, drafts []event.Draft) (ingest.Outcome, error)
	MaxBodyBytes() int64
}

// Handler serves Loki's push endpoint.
type Handler struct {
	cfg    Config
	intake Intake
}

// NewHandler serves Loki push through intake.
func NewHandler(cfg Config, intake Intake) *Handler { return &Handler{cfg: cfg, intake: intake} }

// Register mounts the route.
func (h *Handler) Register(e *echo.Echo) { e.POST(Path, h.push) }

// Config is the mapping the handler runs with.
func (h *Handler) Config() Config { return h.cfg }

// Stream is one stream of a push request.
type Stream struct {
	Labels  []Label
	Entries []Entry
}

// Label is a name and its value.
type Label struct{ Name, Value string }

// Entry is one log line.
type Entry struct {
	Time     time.Time
	Line     string
	Metadata []Label // structured metadata
}

func (h *Handler) push(c echo.Context) error {
	body, mt, herr := h.intake.ReadBody(c, "application/json", "application/x-protobuf")
	if herr != nil {
		return c.String(herr.Code, fmt.Sprint(herr.Message))
	}
	var (
		streams []Stream
		err     error
	)
	if mt == "application/json" {
		streams, err = DecodeJSON(body)
	} else {
		streams, err = DecodeProtobuf(body, h.intake.MaxBodyBytes())
	}
	if err != nil {
		var big *tooLarge
		if errors.As(err, &big) {
			return c.String(http.StatusRequestEntityTooLarge, err.Error())
		}
		return c.String(http.StatusBadRequest, "cannot decode the push request: "+err.Error())
	}
	out, err := h.intake.AcceptRequest(c, Protocol, h.Drafts(streams))
	if err != nil {
		var u *ingest.Unavailable
		if errors.As(err, &u) {
			// Promtail and Alloy retry 5xx with back-off.
			c.Response().Header().Set("Retry-After", u.RetryAfterSeconds())
			return c.String(http.StatusServiceUnavailable, u.Message)
		}
		return c.String(http.StatusRequestEntityTooLarge, err.Error())
	}
	if len(out.Rejected) > 0 {
		// As Loki does: the valid entries are stored, the request answers
		// 400 naming the others (kept in the DLQ), and is not retried.
		var b strings.Builder
		fmt.Fprintf(&b, "%d of %d entries were refused (kept in the dead-letter queue):", len(out.Rejected), len(out.Rejected)+out.Accepted)
		for _, r := range out.Rejected[:min(5, len(out.Rejected))] {
			fmt.Fprintf(&b, "\nentry %d: %s", r.Index, r.Error)
		}
		return c.String(http.StatusBadRequest, b.String())
	}
	return c.NoContent(http.StatusNoContent)
}

// Drafts maps the streams' entries to draft events.
func (h *Handler) Drafts(streams []Stream) []event.Draft {
	n := 0
	for _, s := range streams {
		n += len(s.Entries)
	}
	drafts := make([]event.Draft, 0, n)
	for _, s := range streams {
		source := h.cfg.DefaultSource
		if v, ok := first(h.cfg.SourceLabels, s.Labels); ok {
			source = v
		}
		for _, e := range s.Entries {
			d := event.Draft{Source: source, Message: e.Line, Timestamp: e.Time, Level: "INFO"}
			lvl, ok := first(h.cfg.LevelLabels, e.Metadata)
			if !ok {
				lvl, ok = first(h.cfg.LevelLabels, s.Labels)
			}
			if ok {
				if l, known := event.LevelFromText(lvl); known {
					d.Level = l.String()
				}
			}
			if id, ok := first(h.cfg.TraceIDKeys, e.Metadata); ok {
				d.TraceID = id
			} else if id, ok := first(h.cfg.TraceIDKeys, s.Labels); ok {
				d.TraceID = id
			}
			for _, l := range s.Labels {
				d.Metadata.SetString(l.Name, l.Value)
			}
			for _, l := range e.Metadata {
				d.Metadata.SetString(l.Name, l.Value)
			}
			drafts = append(drafts, d)
		}
	}
	return drafts
}

// first is the value of the first of names that labels has, non-blank.
func first(names []string, labels []Label) (string, bool) {
	for _, n := range names {
		for _, l := range labels {
			if l.Name == n && strings.TrimSpace(l.Value) != "" {
				return l.Value, true
			}
		}
	}
	return "", false
}
