// Package elastic takes Elasticsearch's bulk API (POST /_bulk and
// /{index}/_bulk, NDJSON with index and create actions), as Filebeat,
// Fluent Bit, Vector, Logstash and the Elasticsearch clients send it, and
// answers in Elasticsearch's shapes, with the few endpoints shippers probe
// first (GET / with a version, HEAD /, /_license).
//
// Mapping, configurable: the first of --elastic-message-fields present is
// the message, of --elastic-time-fields the timestamp (RFC 3339 or epoch
// milliseconds), of --elastic-level-fields the level (INFO without one),
// of --elastic-source-fields the source (else the index name), of
// --elastic-trace-id-fields the traceId; a field name may be a dotted path
// into nested objects (log.level) or a flat key with dots. Every other
// field of the document is metadata, with its JSON type, and the index is
// metadata "_index". An action's _id that is a UUID is the event's id (a
// retry with it is stored once); another _id is metadata "_id".
package elastic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/spf13/pflag"
)

// Protocol names the protocol in metrics and dead letters.
const Protocol = "elastic"

// Prefix is a base path under which the whole API is served, GET / too;
// the producer's own GET / describes logengine.
const Prefix = "/elastic"

// Config names the document fields read for each event field.
type Config struct {
	MessageFields []string
	TimeFields    []string
	LevelFields   []string
	SourceFields  []string
	TraceIDFields []string
	// Version is the Elasticsearch version GET / reports: shippers check it.
	Version string
}

// DefaultConfig reads the fields of ECS (Filebeat, Elastic agents) and of
// the usual JSON loggers.
func DefaultConfig() Config {
	return Config{
		MessageFields: []string{"message", "msg", "log", "event.original"},
		TimeFields:    []string{"@timestamp", "timestamp", "time", "ts"},
		LevelFields:   []string{"log.level", "level", "severity", "loglevel"},
		SourceFields:  []string{"service.name", "app", "source", "container.name", "host.name", "hostname"},
		TraceIDFields: []string{"trace.id", "trace_id", "traceId"},
		Version:       "8.17.0",
	}
}

// RegisterFlags binds the field names to flags whose defaults are c's values.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	flagvalue.ListVar(fs, &c.MessageFields, "elastic-message-fields", c.MessageFields, "Elasticsearch bulk: document fields tried in order for an event's message")
	flagvalue.ListVar(fs, &c.TimeFields, "elastic-time-fields", c.TimeFields, "Elasticsearch bulk: document fields tried in order for an event's timestamp (RFC 3339 or epoch milliseconds)")
	flagvalue.ListVar(fs, &c.LevelFields, "elastic-level-fields", c.LevelFields, "Elasticsearch bulk: document fields tried in order for an event's level (INFO without one)")
	flagvalue.ListVar(fs, &c.SourceFields, "elastic-source-fields", c.SourceFields, "Elasticsearch bulk: document fields tried in order for an event's source (the index name without one)")
	flagvalue.ListVar(fs, &c.TraceIDFields, "elastic-trace-id-fields", c.TraceIDFields, "Elasticsearch bulk: document fields tried in order for an event's traceId")
	fs.StringVar(&c.Version, "elastic-version", c.Version, "Elasticsearch bulk: the Elasticsearch version reported to shippers, which check it")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *Config) Validate() error {
	var p flagvalue.Problems
	if len(c.MessageFields) == 0 {
		p.Add("elastic-message-fields", "must name at least one field")
	}
	if parts := strings.Split(c.Version, "."); len(parts) < 2 {
		p.Add("elastic-version", "must be a version such as 8.17.0, not %q", c.Version)
	}
	return p.Err()
}

// Intake is the shared ingest path (ingest.Handler).
type Intake interface {
	ReadBody(c echo.Context, mediaTypes ...string) ([]byte, string, *echo.HTTPError)
	AcceptRequest(c echo.Context, protocol string, drafts []event.Draft) (ingest.Outcome, error)
}

// Handler serves the bulk API.
type Handler struct {
	cfg    Config
	intake Intake
	now    func() time.Time
}

// NewHandler serves the bulk API through intake.
func NewHandler(cfg Config, intake Intake) *Handler {
	return &Handler{cfg: cfg, intake: intake, now: time.Now}
}

// Config is the configuration the handler runs with.
func (h *Handler) Config() Config { return h.cfg }

// Register mounts the routes, at the root and under Prefix.
func (h *Handler) Register(e *echo.Echo) {
	product := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			// The Elasticsearch clients refuse a server without it.
			c.Response().Header().Set("X-Elastic-Product", "Elasticsearch")
			return next(c)
		}
	}
	for _, p := range []string{"", Prefix} {
		g := e.Group(p, product)
		g.POST("/_bulk", h.bulk)
		g.PUT("/_bulk", h.bulk)
		g.POST("/:index/_bulk", h.bulk)
		g.PUT("/:index/_bulk", h.bulk)
		g.GET("/_license", h.license)
		g.HEAD("/", h.head)
	}
	// GET / at the root is the producer's own description.
	g := e.Group(Prefix, product)
	g.GET("", h.info)
	g.GET("/", h.info)
	g.HEAD("", h.head)
}

func (h *Handler) head(c echo.Context) error { return c.NoContent(http.StatusOK) }

func (h *Handler) info(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"name": "logengine", "cluster_name": "logengine", "cluster_uuid": "logengine",
		"version": map[string]any{
			"number": h.cfg.Version, "build_flavor": "default", "build_type": "docker",
			"lucene_version": "9.12.0", "minimum_wire_compatibility_version": "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	})
}

func (h *Handler) license(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"license": map[string]any{
		"status": "active", "uid": "logengine", "type": "basic", "mode": "basic",
	}})
}

// esError answers in Elasticsearch's error shape.
func esError(c echo.Context, status int, typ, reason string) error {
	return c.JSON(status, map[string]any{
		"error":  map[string]any{"type": typ, "reason": reason, "root_cause": []any{map[string]any{"type": typ, "reason": reason}}},
		"status": status,
	})
}

// item is one action of a bulk request.
type item struct {
	action string // index, create, update, delete…
	index  string
	draft  int    // index into the drafts, or -1
	err    string // why the action is refused before validation
}

func (h *Handler) bulk(c echo.Context) error {
	start := h.now()
	body, _, herr := h.intake.ReadBody(c, "application/x-ndjson", "application/json", "application/vnd.elasticsearch+x-ndjson",
		"application/vnd.elasticsearch+json", "text/plain")
	if herr != nil {
		return esError(c, herr.Code, "parse_exception", fmt.Sprint(herr.Message))
	}
	items, drafts, err := h.parse(body, c.Param("index"))
	if err != nil {
		return esError(c, http.StatusBadRequest, "illegal_argument_exception", err.Error())
	}
	out, err := h.intake.AcceptRequest(c, Protocol, drafts)
	if err != nil {
		var u *ingest.Unavailable
		if errors.As(err, &u) {
			// 429 is what the shippers retry with back-off.
			c.Response().Header().Set("Retry-After", u.RetryAfterSeconds())
			return esError(c, http.StatusTooManyRequests, "es_rejected_execution_exception", u.Message)
		}
		return esError(c, http.StatusRequestEntityTooLarge, "illegal_argument_exception", err.Error())
	}
	// The ids of the accepted drafts, and why the others were refused.
	refused := make(map[int]string, len(out.Rejected))
	for _, r := range out.Rejected {
		refused[r.Index] = r.Error
	}
	ids := make([]string, len(drafts))
	next := 0
	for i := range drafts {
		if _, bad := refused[i]; !bad {
			ids[i] = out.IDs[next]
			next++
		}
	}
	results := make([]map[string]any, len(items))
	hasErrors := false
	for i, it := range items {
		reason := it.err
		if reason == "" {
			reason = refused[it.draft]
		}
		var r map[string]any
		if reason != "" {
			hasErrors = true
			r = map[string]any{"_index": it.index, "_id": nil, "status": http.StatusBadRequest,
				"error": map[string]any{"type": "document_parsing_exception", "reason": reason}}
		} else {
			r = map[string]any{"_index": it.index, "_id": ids[it.draft], "_version": 1, "result": "created",
				"status": http.StatusCreated, "_seq_no": 0, "_primary_term": 1,
				"_shards": map[string]int{"total": 1, "successful": 1, "failed": 0}}
		}
		results[i] = map[string]any{it.action: r}
	}
	return c.JSON(http.StatusOK, map[string]any{"took": h.now().Sub(start).Milliseconds(), "errors": hasErrors, "items": results})
}

// parse reads the NDJSON of a bulk request into its items and the drafts
// of the documents to store. Only a body that is not NDJSON at all is an
// error; a bad item is refused alone.
func (h *Handler) parse(body []byte, defaultIndex string) ([]item, []event.Draft, error) {
	var (
		items  []item
		drafts []event.Draft
	)
	lines := bytes.Split(body, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		line := bytes.TrimSpace(lines[i])
		if len(line) == 0 {
			continue
		}
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			return nil, nil, fmt.Errorf("line %d: malformed action, expected {\"index\":{…}} or {\"create\":{…}}", i+1)
		}
		for name, meta := range action {
			it := item{action: name, index: meta.Index, draft: -1}
			if it.index == "" {
				it.index = defaultIndex
			}
			switch name {
			case "index", "create":
				i++
				if i >= len(lines) || len(bytes.TrimSpace(lines[i])) == 0 {
					return nil, nil, fmt.Errorf("line %d: the %s action has no document line", i, name)
				}
				d, err := h.Draft(bytes.TrimSpace(lines[i]), it.index)
				if err != nil {
					it.err = err.Error()
					break
				}
				if meta.ID != "" {
					if id, err := uuid.Parse(meta.ID); err == nil && id != uuid.Nil {
						// A client's retry with the same _id is stored once.
						d.ID = id.String()
					} else {
						d.Metadata.SetString("_id", meta.ID)
					}
				}
				it.draft = len(drafts)
				drafts = append(drafts, d)
			case "update":
				i++ // its document line
				it.err = "logs are immutable: update is not supported"
			case "delete":
				it.err = "logs are immutable: delete is not supported"
			default:
				return nil, nil, fmt.Errorf("line %d: unknown action %q; use index or create", i+1, name)
			}
			items = append(items, it)
		}
	}
	return items, drafts, nil
}

// Draft maps one document to a draft event.
func (h *Handler) Draft(doc []byte, index string) (event.Draft, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return event.Draft{}, errors.New("the document must be a JSON object")
	}
	d := event.Draft{Level: "INFO", Source: index}
	if v, ok := take(m, h.cfg.MessageFields); ok {
		d.Message = text(v)
	}
	if v, ok := take(m, h.cfg.LevelFields); ok {
		if l, known := event.LevelFromText(text(v)); known {
			d.Level = l.String()
		}
	}
	if v, ok := take(m, h.cfg.SourceFields); ok && strings.TrimSpace(text(v)) != "" {
		d.Source = text(v)
	}
	if v, ok := take(m, h.cfg.TraceIDFields); ok {
		d.TraceID = text(v)
	}
	for _, f := range h.cfg.TimeFields {
		v, ok := lookup(m, f)
		if !ok {
			continue
		}
		if t, ok := parseTime(v); ok {
			d.Timestamp = t
			remove(m, f)
		}
		break // an unreadable time stays in the metadata
	}
	if d.Source == "" {
		d.Source = "elasticsearch"
	}
	for k, v := range m {
		d.Metadata.Set(k, marshal(v))
	}
	if index != "" {
		d.Metadata.SetString("_index", index)
	}
	return d, nil
}

// take finds the first of names in m and removes it.
func take(m map[string]any, names []string) (any, bool) {
	for _, n := range names {
		if v, ok := lookup(m, n); ok && v != nil {
			remove(m, n)
			return v, true
		}
	}
	return nil, false
}

// lookup finds name as a flat key, else as a dotted path.
func lookup(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	head, rest, ok := strings.Cut(name, ".")
	if !ok {
		return nil, false
	}
	sub, isMap := m[head].(map[string]any)
	if !isMap {
		return nil, false
	}
	return lookup(sub, rest)
}

func remove(m map[string]any, name string) {
	if _, ok := m[name]; ok {
		delete(m, name)
		return
	}
	head, rest, _ := strings.Cut(name, ".")
	if sub, ok := m[head].(map[string]any); ok {
		remove(sub, rest)
		if len(sub) == 0 {
			delete(m, head)
		}
	}
}

// text is a string as is, anything else as its JSON text.
func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return string(marshal(v))
}

func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte("null")
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// parseTime reads RFC 3339 (with or without a zone: UTC) or epoch
// milliseconds.
func parseTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t, true
			}
		}
		if ms, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.UnixMilli(ms), true
		}
	case json.Number:
		if ms, err := x.Int64(); err == nil {
			return time.UnixMilli(ms), true
		}
		if f, err := x.Float64(); err == nil {
			return time.UnixMicro(int64(f * 1000)), true
		}
	}
	return time.Time{}, false
}
