package query

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/store/block"
)

// TailHandler serves GET /api/v1/logs/tail: the logs arriving from now on
// that match the search filters, as Server-Sent Events.
type TailHandler struct {
	tail *Tail
	lim  Limits
	now  func() time.Time
}

// NewTailHandler serves the live tail of t.
func NewTailHandler(t *Tail, lim Limits) *TailHandler {
	return &TailHandler{tail: t, lim: lim, now: time.Now}
}

// Register mounts the route.
func (h *TailHandler) Register(e *echo.Echo) {
	e.GET("/api/v1/logs/tail", h.sse)
}

// TailFilter reads the search filters of a tail request (logLevel,
// source, keyword, traceId, meta.<key>) exactly as a search reads them.
func TailFilter(p map[string][]string, now time.Time, lim Limits) (block.Filter, error) {
	get := func(k string) string {
		if v := p[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	q, err := parseSearch(rawSearch{
		LogLevel: strings.Join(p["logLevel"], ","), Source: strings.Join(p["source"], ","),
		Keyword: get("keyword"), TraceID: get("traceId"), Meta: MetaParams(p),
	}, now, lim)
	if err != nil {
		return block.Filter{}, err
	}
	f := block.SearchFilter(q)
	f.Start, f.End = time.Time{}, time.Time{} // a tail has no window
	return f, nil
}

// SubscribeError turns a refused subscription into its HTTP answer.
func SubscribeError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, ErrTailFull):
		c.Response().Header().Set("Retry-After", "5")
		return echo.NewHTTPError(http.StatusTooManyRequests, err.Error())
	case errors.Is(err, ErrTailStarting):
		c.Response().Header().Set("Retry-After", "1")
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	default:
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	}
}

// KeepStreaming lifts the server's read timeout from a long-lived answer
// (it would end the request) and returns how to bound each write instead.
func KeepStreaming(c echo.Context, writeTimeout time.Duration) (beforeWrite func()) {
	rc := http.NewResponseController(c.Response())
	_ = rc.SetReadDeadline(time.Time{})
	return func() { _ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }
}

func (h *TailHandler) sse(c echo.Context) error {
	f, err := TailFilter(c.QueryParams(), h.now(), h.lim)
	if err != nil {
		return badParam(err)
	}
	m := block.NewEventMatcher(f)
	sub, err := h.tail.Subscribe(c.Request().Context(), "sse", m.Match)
	if err != nil {
		return SubscribeError(c, err)
	}
	defer sub.Close()
	cfg := h.tail.Config()
	beforeWrite := KeepStreaming(c, cfg.WriteTimeout)
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // proxies must not hold events back
	beforeWrite()
	w.WriteHeader(http.StatusOK)
	w.Flush()

	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	var buf bytes.Buffer
	write := func() error {
		beforeWrite()
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		if err == nil {
			w.Flush()
		}
		return err
	}
	for {
		select {
		case <-c.Request().Context().Done():
			return nil
		case <-sub.Done():
			buf.WriteString("event: dropped\ndata: ")
			reason, _ := Marshal(map[string]string{"reason": sub.Reason()})
			buf.Write(reason)
			buf.WriteString("\n\n")
			_ = write()
			return nil
		case <-ping.C:
			buf.WriteString(": ping\n\n")
			if err := write(); err != nil {
				return nil
			}
		case it := <-sub.Events():
			if err := appendSSE(&buf, sub, it); err != nil {
				return err
			}
			// Send what else is waiting in the same write.
		more:
			for buf.Len() < 64<<10 {
				select {
				case it = <-sub.Events():
					if err := appendSSE(&buf, sub, it); err != nil {
						return err
					}
				default:
					break more
				}
			}
			if buf.Len() == 0 {
				continue // only events from before the subscription
			}
			if err := write(); err != nil {
				return nil
			}
		}
	}
}

// appendSSE writes one log as an SSE event; its JSON is one line, as JSON
// escapes every newline inside strings.
func appendSSE(buf *bytes.Buffer, sub *Subscription, it TailItem) error {
	e, ok := sub.Event(it)
	if !ok {
		return nil
	}
	j := NewLogJSON(*e)
	if !sub.showTenant {
		j.Tenant = ""
	}
	b, err := Marshal(j)
	if err != nil {
		return err
	}
	buf.WriteString("event: log\ndata: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	return nil
}
