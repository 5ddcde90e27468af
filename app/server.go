package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/metrics"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// component is one dependency a role reports in its health.
type component struct {
	name string
	// required: while it is down the role is DOWN (503); an optional one
	// (Redis) is reported but keeps the role UP.
	required bool
	check    func(ctx context.Context) error
	details  func() map[string]any
}

type server struct {
	role   Role
	ln     net.Listener
	http   *http.Server
	health []component
}

// serve opens a role's listener with the routes every role has, plus the
// role's own. The server starts with the loops and stops in reverse order.
func (a *App) serve(role Role, addr string, health []component, routes func(*echo.Echo)) error {
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler
	s := &server{role: role, ln: ln, health: health}
	e.Use(a.middleware(role, metrics.NewHTTP(a.reg)))
	e.GET("/", a.root(role))
	e.GET("/healthz", s.healthHandler)
	e.GET("/actuator/health", s.healthHandler)
	e.GET("/readyz", s.readyz(&a.ready))
	e.GET("/config", a.configHandler)
	prom := echo.WrapHandler(promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	e.GET("/metrics", prom)
	e.GET("/actuator/prometheus", prom)
	if a.cfg.HTTP.Pprof {
		// Off by default: profiles reveal internals and cost CPU.
		e.GET("/debug/pprof/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
		e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
		e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
		e.GET("/debug/pprof/:name", func(c echo.Context) error {
			pprof.Handler(c.Param("name")).ServeHTTP(c.Response(), c.Request())
			return nil
		})
	}
	if routes != nil {
		routes(e)
	}
	s.http = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	a.servers[role] = s
	a.runs = append(a.runs, func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- s.http.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	})
	a.onStop(func(ctx context.Context) {
		// In-flight requests finish (a producer request waits for Kafka).
		if err := s.http.Shutdown(ctx); err != nil {
			a.logger.Warn("http shutdown", "role", role, "err", err)
		}
	})
	return nil
}

// middleware gives every request a correlation id, a log line and metrics.
func (a *App) middleware(role Role, m *metrics.HTTP) echo.MiddlewareFunc {
	logger := a.logger.With("role", role)
	tracer := a.tracer().Tracer("logengine/http")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			req := c.Request()
			cid := strings.TrimSpace(req.Header.Get(echo.HeaderXCorrelationID))
			if cid == "" || len(cid) > 128 {
				cid = strings.ReplaceAll(uuid.NewString(), "-", "")
			}
			c.Response().Header().Set(echo.HeaderXCorrelationID, cid)
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			// A W3C traceparent from the client continues its trace.
			ctx := propagation.TraceContext{}.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			ctx, span := tracer.Start(ctx, req.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("http.route", route),
					attribute.String("logengine.role", string(role)), attribute.String("correlation_id", cid)))
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			span.End()
			m.Requests.WithLabelValues(string(role), route, strconv.Itoa(status)).Inc()
			m.Duration.WithLabelValues(string(role), route).Observe(time.Since(start).Seconds())
			if route != "/metrics" && route != "/healthz" && route != "/readyz" && route != "/actuator/prometheus" {
				logger.Info("http request", "method", req.Method, "path", req.URL.Path, "status", status,
					"duration_ms", float64(time.Since(start).Microseconds())/1000, "correlation_id", cid,
					"trace_id", span.SpanContext().TraceID().String())
			}
			return nil
		}
	}
}

// errorHandler answers every error as JSON {"error": "..."}.
func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		if s, ok := he.Message.(string); ok {
			msg = s
		} else {
			msg = http.StatusText(code)
		}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}

func (a *App) root(role Role) echo.HandlerFunc {
	endpoints := map[Role][]string{
		RoleProducer: {"POST /api/v1/logs", "POST /api/v1/logs/batch"},
		RoleConsumer: {},
		RoleGateway:  {"GET /api/v1/logs", "POST /api/v1/logs/query", "GET /api/v1/logs/stats"},
	}[role]
	endpoints = append(endpoints, "GET /healthz", "GET /readyz", "GET /metrics", "GET /actuator/health", "GET /actuator/prometheus")
	description := map[Role]string{
		RoleProducer: "Validates log events and writes them to Kafka",
		RoleConsumer: "Reads log events from Kafka in batches and stores them in PostgreSQL",
		RoleGateway:  "Searches logs and serves statistics, with a Redis cache",
	}[role]
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{
			"service": "logengine-" + string(role), "status": "running", "version": a.version,
			"description": description, "endpoints": endpoints,
		})
	}
}

// readyz is 503 while the process starts or stops, and while a required
// dependency of the role fails, so a load balancer sends traffic elsewhere.
func (s *server) readyz(ready *atomic.Bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !ready.Load() {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "NOT_READY", "reason": "starting or shutting down"})
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		for _, comp := range s.health {
			if !comp.required {
				continue
			}
			if err := comp.check(ctx); err != nil {
				return c.JSON(http.StatusServiceUnavailable, map[string]string{
					"status": "NOT_READY", "reason": comp.name + ": " + err.Error(),
				})
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "READY"})
	}
}

type componentHealth struct {
	Status  string         `json:"status"`
	Details map[string]any `json:"details,omitempty"`
}

// healthHandler checks every component at once, each bounded by a timeout.
func (s *server) healthHandler(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	out := make(map[string]componentHealth, len(s.health))
	var mu sync.Mutex
	var wg sync.WaitGroup
	up := true
	for _, comp := range s.health {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := componentHealth{Status: "UP", Details: map[string]any{}}
			if comp.details != nil {
				h.Details = comp.details()
			}
			if err := comp.check(ctx); err != nil {
				h.Status = "DOWN"
				h.Details["error"] = err.Error()
			}
			h.Details["required"] = comp.required
			mu.Lock()
			defer mu.Unlock()
			out[comp.name] = h
			if h.Status == "DOWN" && comp.required {
				up = false
			}
		}()
	}
	wg.Wait()
	status, code := "UP", http.StatusOK
	if !up {
		status, code = "DOWN", http.StatusServiceUnavailable
	}
	return c.JSON(code, map[string]any{"status": status, "role": s.role, "components": out})
}
