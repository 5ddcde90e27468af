package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/logengine/logengine/app/audit"
	"github.com/logengine/logengine/app/auth"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/query/web"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/netutil"
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
	ln     net.Listener // capped at --http-max-conns
	http   *http.Server
	health []component
}

// serverConfig is what one role's listener is built from.
type serverConfig struct {
	role    Role
	version string
	http    configs.HTTP
	logger  *slog.Logger
	reg     *prometheus.Registry
	tracer  trace.TracerProvider
	ready   *atomic.Bool
	health  []component
	// config serves the running configuration.
	config echo.HandlerFunc
	// routes mounts the role's own API, if it has one.
	routes func(*echo.Echo)
	// page, if set, answers GET / for a client that asks for HTML (a
	// browser); every other client gets the JSON index.
	page echo.HandlerFunc
	// auth decides who may call what; cors lets browser pages of other
	// origins call the API.
	auth *auth.Authorizer
	cors []string
	// audit records the queries and admin requests; nil records none.
	audit *audit.Logger
}

// serve opens a role's listener with the routes every role has, plus the
// role's own. The server starts with the loops and stops in reverse order.
func (a *App) serve(role Role, addr string, health []component, routes func(*echo.Echo), page echo.HandlerFunc) (started, error) {
	ln, err := listen(a.bindAddr(role, addr))
	if err != nil {
		return started{}, err
	}
	s, err := newServer(serverConfig{
		role: role, version: a.version, http: a.cfg.HTTP, logger: a.logger, reg: a.reg,
		tracer: a.tracer(), ready: &a.ready, health: health, config: a.configHandler, routes: routes, page: page,
		auth: a.auth, cors: a.cfg.Auth.CORSAllowedOrigins, audit: a.audit,
	}, ln)
	if err != nil {
		_ = ln.Close()
		return started{}, err
	}
	if a.tls != nil {
		// Outermost, so that net/http sees *tls.Conn (HTTP/2, r.TLS).
		s.ln = tls.NewListener(s.ln, a.tls.serverConfig())
	}
	a.servers[role] = s
	run := func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- s.http.Serve(s.ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	stop := func(ctx context.Context) {
		// In-flight requests finish (a producer request waits for Kafka).
		if err := s.http.Shutdown(ctx); err != nil {
			a.logger.Warn("http shutdown", "role", role, "err", err)
		}
	}
	return started{runs: []func(context.Context) error{run}, stops: []func(context.Context){stop}}, nil
}

// newServer builds a role's routes and its http.Server over ln; serving
// starts with s.http.Serve(s.ln).
func newServer(cfg serverConfig, ln net.Listener) (*server, error) {
	logger := cfg.logger.With("role", cfg.role)
	panics := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "http_panics_total", Help: "Handler panics recovered and answered 500, by role.",
		ConstLabels: prometheus.Labels{"role": string(cfg.role)},
	})
	if err := cfg.reg.Register(panics); err != nil {
		return nil, fmt.Errorf("register http_panics_total: %w", err)
	}
	s := &server{role: cfg.role, health: cfg.health}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.JSONSerializer = jsonSerializer{}
	e.HTTPErrorHandler = errorHandler(logger)
	// Outermost first: the correlation id exists before anything logs, and
	// a recovered panic is observed as the 500 it became.
	// The audit sits inside the trace and outside the keys' check, so that
	// refused requests are recorded too.
	e.Use(correlationIDs(), observe(cfg.role, logger, cfg.tracer, metrics.NewHTTP(cfg.reg)),
		cfg.audit.Middleware(string(cfg.role)), recoverPanics(logger, panics))
	// No answer is to be sniffed into another type (a JSON body holding
	// log text rendered as HTML, say).
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set(echo.HeaderXContentTypeOptions, "nosniff")
			return next(c)
		}
	})
	if len(cfg.cors) > 0 {
		// Before the keys: a browser's preflight carries none.
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  cfg.cors,
			AllowHeaders:  []string{echo.HeaderAuthorization, auth.HeaderAPIKey, echo.HeaderContentType, echo.HeaderContentEncoding, "Cache-Control", echo.HeaderXCorrelationID},
			ExposeHeaders: []string{echo.HeaderXCorrelationID, "Retry-After", "X-Cache", echo.HeaderWWWAuthenticate},
			MaxAge:        600,
		}))
	}
	if cfg.auth != nil {
		e.Use(cfg.auth.Middleware(string(cfg.role)))
	}
	e.GET("/healthz", s.healthHandler)
	e.GET("/actuator/health", s.healthHandler)
	e.GET("/readyz", s.readyz(cfg.ready))
	if cfg.config != nil {
		e.GET("/config", cfg.config)
	}
	prom := echo.WrapHandler(promhttp.HandlerFor(cfg.reg, promhttp.HandlerOpts{}))
	e.GET("/metrics", prom)
	e.GET("/actuator/prometheus", prom)
	if cfg.routes != nil {
		cfg.routes(e)
	}
	var endpoints []string
	e.GET("/", index(cfg.role, cfg.version, &endpoints, cfg.page))
	endpoints = routeList(e) // every route is registered now, the index too
	s.ln = netutil.LimitListener(ln, cfg.http.MaxConns)
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: cfg.http.ReadHeaderTimeout,
		ReadTimeout:       cfg.http.ReadTimeout,
		WriteTimeout:      cfg.http.WriteTimeout,
		IdleTimeout:       cfg.http.IdleTimeout,
		// What net/http reports itself (accept errors, panics outside the
		// handlers) goes to the process's log, not to stderr.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// maxCorrelationIDBytes bounds a client's X-Correlation-ID, which goes into
// every log line of its request.
const maxCorrelationIDBytes = 128

// correlationIDs takes the client's X-Correlation-ID or generates one, and
// echoes it in the answer, where handlers and logs read it.
func correlationIDs() echo.MiddlewareFunc {
	return middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		TargetHeader: echo.HeaderXCorrelationID,
		Generator:    newCorrelationID,
		// The middleware takes any non-empty header as it is; a blank or
		// oversized one is replaced, a padded one trimmed.
		RequestIDHandler: func(c echo.Context, id string) {
			cid := strings.TrimSpace(id)
			if cid == "" || len(cid) > maxCorrelationIDBytes {
				cid = newCorrelationID()
			}
			if cid != id {
				c.Response().Header().Set(echo.HeaderXCorrelationID, cid)
			}
		},
	})
}

func newCorrelationID() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

// correlationID is the request's id, as the answer carries it.
func correlationID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXCorrelationID)
}

// observe gives every request a span, a log line and metrics.
func observe(role Role, logger *slog.Logger, tp trace.TracerProvider, m *metrics.HTTP) echo.MiddlewareFunc {
	tracer := tp.Tracer("logengine/http")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			req := c.Request()
			cid := correlationID(c)
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
				attrs := []any{"method", req.Method, "path", req.URL.Path, "status", status,
					"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "correlation_id", cid,
					"trace_id", span.SpanContext().TraceID().String()}
				// Who made it: the API key's name, never the key.
				if p, ok := auth.FromContext(c.Request().Context()); ok {
					attrs = append(attrs, "key", p.Name)
				}
				logger.Info("http request", attrs...)
			}
			return nil
		}
	}
}

// recovered is a handler's panic, already logged with its stack.
type recovered struct{ err error }

func (r recovered) Error() string { return "panic: " + r.err.Error() }
func (r recovered) Unwrap() error { return r.err }

// recoverPanics turns a handler's panic into a 500 for its request alone:
// the panic and its stack go to one log line with the correlation id, and
// http_panics_total counts it.
func recoverPanics(logger *slog.Logger, panics prometheus.Counter) echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		StackSize:       8 << 10,
		DisableStackAll: true, // the panicking goroutine's stack is the one that explains it
		// Hand the error back to observe, which records the 500.
		DisableErrorHandler: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			panics.Inc()
			logger.Error("http handler panicked", "method", c.Request().Method, "path", c.Request().URL.Path,
				"correlation_id", correlationID(c), "panic", err.Error(), "stack", string(stack))
			return recovered{err}
		},
	})
}

// errorHandler answers every error as JSON {"error": "..."}. A 500 says no
// more than "internal error" to the client; its cause goes to the log, and
// every 5xx carries the correlation id that finds it there.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		req := c.Request()
		cid := correlationID(c)
		if c.Response().Committed {
			logger.Warn("http error after the answer began", "method", req.Method, "path", req.URL.Path,
				"correlation_id", cid, "err", err)
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
		if code == http.StatusInternalServerError && !errors.As(err, new(recovered)) {
			logger.Error("http internal error", "method", req.Method, "path", req.URL.Path,
				"correlation_id", cid, "err", err)
		}
		if req.Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		body := map[string]string{"error": msg}
		if code >= 500 {
			body["correlationId"] = cid
		}
		_ = c.JSON(code, body)
	}
}

// jsonSerializer is echo's JSON without HTML escaping, so an answer such as
// "meta.<key>" reads as written instead of "meta.\u003ckey\u003e".
type jsonSerializer struct{ echo.DefaultJSONSerializer }

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

// index answers GET / with the role's description and endpoints; the list
// is read from the router once every route is registered, so it cannot
// miss one. With a page, a browser (Accept: text/html) gets the page
// instead, and the answer varies by Accept so caches keep both.
func index(role Role, version string, endpoints *[]string, page echo.HandlerFunc) echo.HandlerFunc {
	description := map[Role]string{
		RoleProducer: "Validates log events and writes them to Kafka",
		RoleConsumer: "Reads log events from Kafka in batches and stores them in PostgreSQL",
		RoleGateway:  "Searches logs and serves statistics, with a Redis cache",
	}[role]
	return func(c echo.Context) error {
		if page != nil {
			c.Response().Header().Add("Vary", "Accept")
			if web.WantsHTML(c.Request()) {
				return page(c)
			}
		}
		return c.JSON(http.StatusOK, map[string]any{
			"service": "logengine-" + string(role), "status": "running", "version": version,
			"description": description, "endpoints": *endpoints,
		})
	}
}

// routeList is every "METHOD /path" e serves, ordered by path.
func routeList(e *echo.Echo) []string {
	routes := slices.DeleteFunc(e.Routes(), func(r *echo.Route) bool { return r.Method == echo.RouteNotFound })
	slices.SortFunc(routes, func(a, b *echo.Route) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Method, b.Method))
	})
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.Method + " " + r.Path
	}
	return out
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
