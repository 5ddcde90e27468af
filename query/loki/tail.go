package loki

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/store/logs"
)

// tailWS serves /loki/api/v1/tail: a websocket of the logs arriving from
// now on that match a log query, in Loki's tail message shape, fed by the
// gateway's one Kafka reader. A client too slow for its buffer is closed
// with a reason, never buffered without bound.
func (h *Handler) tailWS(c echo.Context) error {
	p := c.QueryParams()
	l, err := ParseLog(p.Get("query"))
	if err != nil {
		return fail(c, err)
	}
	if p.Get("start") != "" {
		// Loki sends logs since start first; this tail starts now.
		if _, err := parseTime("start", p.Get("start"), time.Time{}); err != nil {
			return err
		}
	}
	base, empty := h.en.pushdown(l)
	match := func(e *logs.Event) bool {
		if empty || (len(base.Levels) > 0 && !containsLevel(base.Levels, e.Level)) {
			return false
		}
		stream := StreamLabels(e)
		if !selects(l.Selector, stream) {
			return false
		}
		_, ok := process(l.Pipeline, e.Message, stream)
		return ok
	}
	sub, err := h.tail.Subscribe(c.Request().Context(), "loki", match)
	if err != nil {
		return query.SubscribeError(c, err)
	}
	defer sub.Close()
	cfg := h.tail.Config()
	// The server's read and write timeouts would end the connection; the
	// websocket bounds each write itself.
	query.KeepStreaming(c, cfg.WriteTimeout)
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // Accept answered the client already
	}
	defer conn.CloseNow()
	ctx := conn.CloseRead(c.Request().Context()) // reads the client's control frames
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	write := func(msg []byte) error {
		wctx, cancel := context.WithTimeout(ctx, cfg.WriteTimeout)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, msg)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			reason := sub.Reason()
			if len(reason) > 120 { // a close frame's reason is short
				reason = reason[:120]
			}
			_ = conn.Close(websocket.StatusTryAgainLater, reason)
			return nil
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, cfg.WriteTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return nil
			}
		case it := <-sub.Events():
			var batch []*logs.Event
			// Send what else is waiting in the same message.
		more:
			for len(batch) < 100 {
				if e, ok := sub.Event(it); ok {
					batch = append(batch, e)
				}
				select {
				case it = <-sub.Events():
				default:
					break more
				}
			}
			if len(batch) == 0 {
				continue // only events from before the subscription
			}
			msg, err := tailMessage(l, batch)
			if err != nil {
				return err
			}
			if err := write(msg); err != nil {
				return nil
			}
		}
	}
}

func containsLevel(ls []logs.Level, l logs.Level) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// tailMessage is one Loki tail message: the events grouped into streams.
func tailMessage(l *LogExpr, events []*logs.Event) ([]byte, error) {
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][2]string       `json:"values"`
	}
	var streams []*stream
	byKey := map[string]*stream{}
	for _, e := range events {
		ls, ok := process(l.Pipeline, e.Message, StreamLabels(e))
		if !ok {
			continue
		}
		s, found := byKey[ls.Key()]
		if !found {
			s = &stream{Stream: ls.Map()}
			byKey[ls.Key()] = s
			streams = append(streams, s)
		}
		s.Values = append(s.Values, [2]string{strconv.FormatInt(e.Timestamp.UnixNano(), 10), e.Message})
	}
	return query.Marshal(map[string]any{"streams": streams, "dropped_entries": nil})
}
