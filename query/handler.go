package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler serves the gateway's query API.
type Handler struct {
	svc     *Service
	lim     Limits
	logger  *slog.Logger
	metrics *metrics.Query
	now     func() time.Time
}

// NewHandler builds the query API over a service.
func NewHandler(svc *Service, lim Limits, logger *slog.Logger, reg prometheus.Registerer) *Handler {
	return &Handler{svc: svc, lim: lim, logger: logger, metrics: metrics.NewQuery(reg), now: time.Now}
}

// Limits are the limits the handler runs with.
func (h *Handler) Limits() Limits { return h.lim }

// Register mounts the routes.
func (h *Handler) Register(e *echo.Echo) {
	e.GET("/api/v1/logs", h.search)
	e.POST("/api/v1/logs/query", h.searchBody)
	e.GET("/api/v1/logs/stats", h.stats)
	e.GET("/api/v1/logs/histogram", h.histogram)
}

func (h *Handler) search(c echo.Context) error {
	return h.runSearch(c, "search", searchParams(c.QueryParams()))
}

// searchParams reads a search from GET /api/v1/logs's query parameters.
func searchParams(p url.Values) rawSearch {
	return rawSearch{
		StartTime: p.Get("startTime"), EndTime: p.Get("endTime"),
		LogLevel: strings.Join(p["logLevel"], ","), Source: strings.Join(p["source"], ","),
		Keyword: p.Get("keyword"), TraceID: p.Get("traceId"),
		Page: p.Get("page"), Size: p.Get("size"), Cursor: p.Get("cursor"), Sort: p.Get("sort"),
		Meta: MetaParams(p),
	}
}

// flexString takes a JSON string, number or list of strings, so that both
// "logLevel":"ERROR,WARN" and "logLevel":["ERROR","WARN"] work.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*f = flexString(strings.Join(list, ","))
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*f = flexString(n.String())
		return nil
	}
	return errors.New("must be a string, a number or a list of strings")
}

type queryBody struct {
	StartTime flexString `json:"startTime"`
	EndTime   flexString `json:"endTime"`
	LogLevel  flexString `json:"logLevel"`
	Source    flexString `json:"source"`
	Keyword   flexString `json:"keyword"`
	TraceID   flexString `json:"traceId"`
	Page      flexString `json:"page"`
	Size      flexString `json:"size"`
	Cursor    flexString `json:"cursor"`
	Sort      flexString `json:"sort"`
	// Meta filters as {"userId":"42"}.
	Meta map[string]flexString `json:"meta"`
}

// maxQueryBody bounds the body of POST /api/v1/logs/query: a search fits
// in a few hundred bytes.
const maxQueryBody = 1 << 20

func (h *Handler) searchBody(c echo.Context) error {
	req := c.Request()
	if req.ContentLength > maxQueryBody {
		return tooLarge()
	}
	// One byte past the limit tells a body over it from one exactly at it.
	body, err := io.ReadAll(io.LimitReader(req.Body, maxQueryBody+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return echo.NewHTTPError(http.StatusRequestTimeout, "the request body did not arrive within the server's read timeout")
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "could not read request body")
	}
	if len(body) > maxQueryBody {
		return tooLarge()
	}
	raw, err := decodeQueryBody(body)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	return h.runSearch(c, "query", raw)
}

func tooLarge() error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the query body is over the limit of %d bytes", maxQueryBody))
}

// decodeQueryBody reads the JSON body of POST /api/v1/logs/query.
func decodeQueryBody(body []byte) (rawSearch, error) {
	var b queryBody
	if err := json.Unmarshal(body, &b); err != nil {
		return rawSearch{}, errors.New("malformed JSON query: " + err.Error())
	}
	if b.StartTime == "" {
		return rawSearch{}, paramErr("startTime", "is required")
	}
	if b.EndTime == "" {
		return rawSearch{}, paramErr("endTime", "is required")
	}
	return rawSearch{
		StartTime: string(b.StartTime), EndTime: string(b.EndTime), LogLevel: string(b.LogLevel),
		Source: string(b.Source), Keyword: string(b.Keyword), TraceID: string(b.TraceID),
		Page: string(b.Page), Size: string(b.Size), Cursor: string(b.Cursor), Sort: string(b.Sort),
		Meta: flexMap(b.Meta),
	}, nil
}

func flexMap(m map[string]flexString) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func (h *Handler) histogram(c echo.Context) error {
	start := h.now()
	p := c.QueryParams()
	q, err := parseHistogram(p.Get("startTime"), p.Get("endTime"), strings.Join(p["logLevel"], ","),
		strings.Join(p["source"], ","), p.Get("interval"), start, h.lim)
	if err != nil {
		return badParam(err)
	}
	body, status, err := h.svc.Histogram(requestContext(c), q)
	return h.answer(c, "histogram", start, body, status, err)
}

func (h *Handler) runSearch(c echo.Context, endpoint string, raw rawSearch) error {
	start := h.now()
	q, err := parseSearch(raw, start, h.lim)
	if err != nil {
		return badParam(err)
	}
	body, status, err := h.svc.Search(requestContext(c), q)
	return h.answer(c, endpoint, start, body, status, err)
}

func (h *Handler) stats(c echo.Context) error {
	start := h.now()
	p := c.QueryParams()
	q, err := parseStats(p.Get("startTime"), p.Get("endTime"), strings.Join(p["logLevel"], ","),
		strings.Join(p["source"], ","), p.Get("top"), start, h.lim)
	if err != nil {
		return badParam(err)
	}
	body, status, err := h.svc.Stats(requestContext(c), q)
	return h.answer(c, "stats", start, body, status, err)
}

// requestContext is the request's context, marked to skip the cache read
// when the client asks for a fresh answer (Cache-Control: no-cache, or
// max-age=0), so anyone can measure the store itself.
func requestContext(c echo.Context) context.Context {
	ctx := c.Request().Context()
	for _, v := range c.Request().Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-cache", "no-store", "max-age=0":
				return WithoutCacheRead(ctx)
			}
		}
	}
	return ctx
}

func (h *Handler) answer(c echo.Context, endpoint string, start time.Time, body []byte, status string, err error) error {
	h.metrics.Queries.WithLabelValues(endpoint).Inc()
	h.metrics.TenantQueries.WithLabelValues(metrics.TenantLabel(c.Request().Context(), metrics.TenantOther), endpoint).Inc()
	defer func() { h.metrics.Duration.WithLabelValues(endpoint).Observe(h.now().Sub(start).Seconds()) }()
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			c.Response().Header().Set("Retry-After", strconv.Itoa(5))
			return echo.NewHTTPError(http.StatusServiceUnavailable, "the log store is unavailable and no cached answer exists; retry later")
		}
		if errors.Is(err, ErrBusy) {
			c.Response().Header().Set("Retry-After", "1")
			return echo.NewHTTPError(http.StatusTooManyRequests, "too many queries are running; retry in a second")
		}
		if errors.Is(err, ErrRefused) {
			// PostgreSQL's own words stay in the log: they help an operator,
			// not a client, and tell an attacker about the schema.
			h.logger.Info("query refused by the store", "endpoint", endpoint, "err", err)
			return echo.NewHTTPError(http.StatusUnprocessableEntity,
				"the query is too expensive: it ran past the store's time limit or was refused; narrow the time window or add a level, source or traceId filter")
		}
		return err
	}
	c.Response().Header().Set("X-Cache", status)
	if endpoint == "search" || endpoint == "query" {
		countPage(c.Request().Context(), body)
	}
	return c.JSONBlob(http.StatusOK, body)
}

func badParam(err error) error {
	var pe *ParamError
	if errors.As(err, &pe) && pe.TooExpensive {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	}
	return echo.NewHTTPError(http.StatusBadRequest, err.Error())
}
