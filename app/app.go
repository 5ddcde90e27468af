package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/app/audit"
	"github.com/logengine/logengine/app/auth"
	"github.com/logengine/logengine/cache"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/elastic"
	lokipush "github.com/logengine/logengine/ingest/loki"
	"github.com/logengine/logengine/ingest/otlp"
	"github.com/logengine/logengine/ingest/syslog"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/query/loki"
	"github.com/logengine/logengine/query/web"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// App owns the configuration and every component built from it.
type App struct {
	cfg     configs.Config
	version string
	logger  *slog.Logger
	reg     *prometheus.Registry
	roles   []Role
	ready   atomic.Bool

	kafka    ingest.KafkaConfig
	broker   *ingest.EmbeddedBroker
	store    *store.Store
	replicas *store.Replicas // the gateway's reads
	cache    *cache.Cache
	producer *ingest.Producer // also the consumer's DLQ writer
	handler  *ingest.Handler
	lokiPush *lokipush.Handler
	elastic  *elastic.Handler
	syslog   *syslog.Server
	consumer *ingest.Consumer
	query    *query.Service
	// queryHandler is the gateway's API.
	queryHandler *query.Handler
	tail         *query.Tail
	loki         *loki.Engine

	tp           *sdktrace.TracerProvider
	spanExporter sdktrace.SpanExporter // tests only

	servers map[Role]*server
	// auth checks every listener's requests against the API keys.
	auth      *auth.Authorizer
	audit     *audit.Logger // nil with --audit-log=off
	pprofAddr string
	// tls serves every HTTP listener's certificate; nil serves plain HTTP.
	tls *certificates

	started chan struct{}
}

// Option adjusts an App for tests.
type Option func(*App)

// WithSpanExporter records every span into exp (an in-memory exporter in
// tests) instead of the configured OTLP endpoint.
func WithSpanExporter(exp sdktrace.SpanExporter) Option {
	return func(a *App) { a.spanExporter = exp }
}

// New validates the configuration and prepares an App; nothing starts yet.
func New(cfg configs.Config, version string, logger *slog.Logger, opts ...Option) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	roles, err := ParseRoles(cfg.Roles)
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg: cfg, version: version, logger: logger, reg: metrics.NewRegistry(), roles: roles,
		servers: map[Role]*server{}, started: make(chan struct{}),
	}
	for _, o := range opts {
		o(a)
	}
	az, err := auth.New(cfg.Auth, logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.auth = az
	if cfg.TLS.Enabled() {
		c, err := newCertificates(cfg.TLS, logger)
		if err != nil {
			return nil, err
		}
		a.tls = c
	}
	needsKafka := slices.Contains(roles, RoleProducer) || slices.Contains(roles, RoleConsumer)
	if needsKafka && !cfg.Kafka.Configured() && !(slices.Contains(roles, RoleProducer) && slices.Contains(roles, RoleConsumer)) {
		return nil, fmt.Errorf("--kafka-brokers is required for role %s: set --kafka-brokers=host:9092 (or %s), "+
			"or --kafka-brokers=%s to start an in-memory broker in this process", cfg.Roles, configs.EnvName("kafka-brokers"), ingest.EmbeddedBrokers)
	}
	// Last: it opens the audit file, which nothing would close after a
	// later error.
	if a.audit, err = newAuditLog(cfg, logger, a.reg, az); err != nil {
		return nil, err
	}
	return a, nil
}

// Registry is the process's metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// SyslogAddr is where the producer takes syslog, "" when it does not.
func (a *App) SyslogAddr() string {
	if a.syslog == nil {
		return ""
	}
	return a.syslog.Addr()
}

// Started is closed once every module started and the listeners are open.
func (a *App) Started() <-chan struct{} { return a.started }

// Addr is the bound address of a role's listener, once started.
func (a *App) Addr(r Role) string {
	if s, ok := a.servers[r]; ok {
		return s.ln.Addr().String()
	}
	return ""
}

// KafkaBrokers are the brokers in use (the embedded one's address included).
func (a *App) KafkaBrokers() []string { return a.kafka.Brokers }

// started is what a module leaves behind: the loops that run until the
// process stops (any one failing stops it) and what releases its
// resources, called in reverse start order at shutdown.
type started struct {
	runs  []func(ctx context.Context) error
	stops []func(ctx context.Context)
}

func (s *started) add(o started) {
	s.runs = append(s.runs, o.runs...)
	s.stops = append(s.stops, o.stops...)
}

func stopping(f func(ctx context.Context)) started { return started{stops: []func(context.Context){f}} }

// Run starts the modules, serves until ctx ends or a module fails, then
// shuts down within the configured grace period.
func (a *App) Run(ctx context.Context) (err error) {
	// The audit log is written until every listener has stopped.
	all := stopping(a.audit.Start())
	defer func() {
		// Shutdown deadlines come from a fresh context, not the cancelled one.
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
		defer cancel()
		a.ready.Store(false)
		for i := len(all.stops) - 1; i >= 0; i-- {
			all.stops[i](sctx)
		}
	}()
	roleNames := make([]string, len(a.roles))
	for i, r := range a.roles {
		roleNames[i] = string(r)
	}
	tp, err := newTracerProvider(ctx, a.cfg.Tracing.OTLPEndpoint, a.cfg.Tracing.SampleRatio,
		"logengine-"+strings.Join(roleNames, "-"), a.spanExporter)
	if err != nil {
		return err
	}
	a.tp = tp
	all.add(stopping(func(ctx context.Context) {
		if err := tp.Shutdown(ctx); err != nil {
			a.logger.Warn("trace export on shutdown", "err", err)
		}
	}))
	if !a.auth.Enabled() {
		a.logger.Warn("no API keys (--auth-keys-file or " + configs.EnvAuthKeys + "): every API endpoint is open to whoever reaches it")
	}
	for _, m := range startOrder(a.roles) {
		st, err := a.init(ctx, m)
		all.add(st) // what did start is stopped even when the module failed
		if err != nil {
			return fmt.Errorf("start %s: %w", m, err)
		}
	}
	if a.cfg.HTTP.Pprof {
		st, err := a.servePprof()
		all.add(st)
		if err != nil {
			return fmt.Errorf("start profiles: %w", err)
		}
	}
	all.runs = append(all.runs, a.auth.Watch(), a.audit.Watch())
	// The loops outlive ctx: on a signal the process first drains (ingest
	// stops, the consumer stores what the embedded broker holds), then
	// stops them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(all.runs))
	for _, run := range all.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil && runCtx.Err() == nil {
				errc <- err
			}
			cancel() // any module stopping stops the process
		}()
	}
	a.ready.Store(true)
	close(a.started)
	a.logStarted()
	select {
	case <-ctx.Done():
	case <-runCtx.Done(): // a module stopped on its own
	}
	a.ready.Store(false)
	a.logger.Info("shutting down")
	if runCtx.Err() == nil {
		a.drain()
	}
	cancel()
	// The loops see runCtx end; wait for them to finish their work (the
	// consumer stores and commits its batch) before components close.
	wg.Wait()
	select {
	case err = <-errc:
	default:
	}
	return err
}

// drain runs on a signal, before the loops stop, within --shutdown-timeout:
// ingest stops accepting (503) and waits for the requests in progress,
// then, with the embedded broker, the process waits until the consumers
// stored everything it holds, since what is left there is lost when the
// process ends. A Kafka cluster keeps what is not stored; there is no wait.
func (a *App) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	if a.handler != nil {
		if err := a.handler.Bodies().Drain(ctx); err != nil {
			a.logger.Warn("ingest did not finish its requests before --shutdown-timeout", "err", err)
		} else {
			a.logger.Info("ingest stopped: new requests get 503; the requests in progress finished")
		}
	}
	if a.broker == nil {
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var logged time.Time
	for {
		n, err := a.broker.Unstored(ctx, a.kafka.Topic, a.cfg.Consumer.Group)
		switch {
		case err == nil && n == 0:
			a.logger.Info("embedded broker drained: every accepted log is stored",
				"duration_ms", float64(time.Since(start).Microseconds())/1000)
			return
		case ctx.Err() != nil:
			a.logger.Error("shutdown timeout: accepted logs the embedded broker holds are not stored and are lost; raise --shutdown-timeout or use a Kafka cluster",
				"unstored_records", n, "err", err, "shutdown_timeout", a.cfg.HTTP.ShutdownTimeout.String())
			return
		case time.Since(logged) >= time.Second:
			logged = time.Now()
			a.logger.Info("draining the embedded broker into PostgreSQL before stopping", "unstored_records", n, "err", err,
				"elapsed_ms", float64(time.Since(start).Microseconds())/1000)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// logStarted ends the start-up log with where each role listens, as URLs
// a person can open or curl.
func (a *App) logStarted() {
	a.logger.Info("logengine started", "roles", a.roles, "version", a.version)
	for _, r := range a.roles {
		if s, ok := a.servers[r]; ok {
			scheme := "http://"
			if a.tls != nil {
				scheme = "https://"
			}
			a.logger.Info(string(r)+" listening", "role", r, "url", scheme+clickable(s.ln.Addr().String()))
		}
	}
	if a.broker != nil {
		a.logger.Info("embedded Kafka broker listening", "brokers", strings.Join(a.broker.Addrs(), ","))
	}
}

// clickable turns a wildcard listen address into one a browser can open.
func clickable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func (a *App) init(ctx context.Context, m module) (started, error) {
	switch m {
	case modKafka:
		return a.initKafka(ctx)
	case modStore:
		return a.initStore(ctx)
	case modCache:
		return a.initCache()
	case modProducer:
		return a.initProducer()
	case modConsumer:
		return a.initConsumer()
	case modGateway:
		return a.initGateway()
	case modAll:
		return started{}, nil
	}
	return started{}, fmt.Errorf("unknown module %q", m)
}

func (a *App) initKafka(ctx context.Context) (started, error) {
	a.kafka = a.cfg.Kafka
	var st started
	if a.kafka.Embedded() {
		b, err := ingest.StartEmbeddedBroker(a.kafka.EmbeddedAddr)
		if err != nil {
			return st, err
		}
		a.broker = b
		st = stopping(func(context.Context) { b.Close() })
		var last atomic.Int64
		metrics.RegisterEmbeddedUnstored(a.reg, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if n, err := b.Unstored(ctx, a.kafka.Topic, a.cfg.Consumer.Group); err == nil {
				last.Store(n)
			}
			return float64(last.Load())
		})
		a.kafka.Brokers = b.Addrs()
		a.logger.Warn("using the embedded in-memory Kafka broker: accepted logs not yet stored are lost if this process is killed "+
			"(SIGINT/SIGTERM store them first); set --kafka-brokers to use a Kafka cluster", "addr", b.Addrs())
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return st, ingest.EnsureTopics(tctx, a.kafka, a.logger)
}

func (a *App) initStore(ctx context.Context) (started, error) {
	s, err := store.Open(ctx, a.cfg.Postgres, a.logger, a.reg)
	if err != nil {
		return started{}, err
	}
	a.store = s
	return stopping(func(context.Context) { s.Close() }), nil
}

func (a *App) initCache() (started, error) {
	if a.cfg.Redis.Addr == "" {
		a.logger.Info("no --redis-addr: the query cache is off")
		return started{}, nil
	}
	if err := a.cfg.Redis.Security.Check(); err != nil {
		return started{}, err
	}
	c := cache.New(a.cfg.Redis, a.logger, a.reg)
	a.cache = c
	return stopping(func(context.Context) { c.Close() }), nil
}

// kafkaProducer is built once and shared by the producer and consumer
// roles; the first to ask stops it.
func (a *App) kafkaProducer() (*ingest.Producer, started, error) {
	if a.producer != nil {
		return a.producer, started{}, nil
	}
	pc := a.cfg.Producer
	pc.Tracer = a.tracer()
	p, err := ingest.NewProducer(pc, a.kafka, a.logger, a.reg)
	if err != nil {
		return nil, started{}, err
	}
	a.producer = p
	return p, stopping(p.Close), nil
}

func (a *App) initProducer() (started, error) {
	p, st, err := a.kafkaProducer()
	if err != nil {
		return st, err
	}
	hc := a.cfg.Ingest
	// An event older than the store keeps would be deleted at once.
	hc.Limits.Retention = a.cfg.Postgres.Maintenance.Retention
	hc.TenantRetention = a.auth.TenantRetention
	if a.broker != nil {
		// The embedded broker keeps records in memory: what the consumer
		// has not stored yet is bounded. The consumer module starts after
		// this one, before any request is served.
		hc.Unstored = func() int64 {
			if c := a.consumer; c != nil {
				return c.Unstored()
			}
			return 0
		}
	}
	h := ingest.NewHandler(hc, chargingPublisher{p}, a.logger.With("role", RoleProducer), a.reg)
	a.handler = h
	health := []component{{name: "kafka", required: true, check: p.Healthy}}
	if a.cfg.Syslog.Addr != "" {
		sl, err := syslog.Listen(a.cfg.Syslog, h, a.logger.With("role", RoleProducer), a.reg)
		if err != nil {
			return st, err
		}
		a.syslog = sl
		// Stopped before the Kafka producer (stops run in reverse), so the
		// messages in hand are still published.
		st.runs = append(st.runs, sl.Run)
		st.stops = append(st.stops, sl.Shutdown)
		a.logger.Info("syslog listening (TCP and UDP)", "addr", sl.Addr())
	}
	srv, err := a.serve(RoleProducer, a.cfg.HTTP.ProducerAddr, health, func(e *echo.Echo) {
		h.Register(e)
		// The shippers' protocols, each through the same path as the native API.
		otlp.NewHandler(h).Register(e)
		a.lokiPush = lokipush.NewHandler(a.cfg.LokiPush, h)
		a.lokiPush.Register(e)
		a.elastic = elastic.NewHandler(a.cfg.Elastic, h)
		a.elastic.Register(e)
	}, nil)
	st.add(srv)
	return st, err
}

func (a *App) initConsumer() (started, error) {
	p, st, err := a.kafkaProducer()
	if err != nil {
		return st, err
	}
	cc := a.cfg.Consumer
	cc.IsDataError = store.IsDataError
	cc.ShutdownTimeout = a.cfg.HTTP.ShutdownTimeout
	cc.Invalidate = a.cache.Invalidate // a nil cache does nothing
	cc.Tracer = a.tracer()
	cc.DeleteStored = a.broker != nil
	c, err := ingest.NewConsumer(cc, a.kafka, a.store, p, a.logger.With("role", RoleConsumer), a.reg)
	if err != nil {
		return st, err
	}
	a.consumer = c
	// The keys file's per-tenant retention, now and after each reload.
	a.auth.OnTenantRetention(a.store.SetTenantRetention)
	// Consumers keep the partitions; the store's lock lets one at a time.
	st.runs = append(st.runs, c.Run, a.store.RunMaintenance, a.store.RunMerger)
	health := []component{
		{name: "kafka", required: true, check: c.Ping},
		{name: "postgres", required: true, check: func(ctx context.Context) error {
			if err := a.store.Ping(ctx); err != nil {
				return err
			}
			if !c.Healthy() {
				return errors.New("batch writes are failing")
			}
			return nil
		}},
	}
	srv, err := a.serve(RoleConsumer, a.cfg.HTTP.ConsumerAddr, health, nil, nil)
	st.add(srv)
	return st, err
}

func (a *App) initGateway() (started, error) {
	var c query.Cache = a.cache
	if a.cache == nil {
		c = (*cache.Cache)(nil) // a nil cache always misses
	}
	sc := a.cfg.Gateway
	sc.IsQueryError = store.IsQueryError
	sc.Tracer = a.tracer()
	// Reads go to the replicas when there are any; it closes after the
	// server stopped (stops run in reverse).
	r, err := store.NewReplicas(a.cfg.Replicas, a.store, a.logger.With("role", RoleGateway), a.reg)
	if err != nil {
		return started{}, err
	}
	a.replicas = r
	rst := stopping(func(context.Context) { r.Close() })
	if len(a.cfg.Replicas.URLs) > 0 {
		rst.runs = append(rst.runs, r.Run)
	}
	a.query = query.NewService(sc, r, c, a.logger.With("role", RoleGateway), a.reg)
	h := query.NewHandler(a.query, a.cfg.QueryLimits, a.logger.With("role", RoleGateway), a.reg)
	a.queryHandler = h
	// Live tail reads Kafka directly when this process knows the brokers:
	// the Kafka module ran (another role needs it), or they were given.
	var src query.TailSource
	switch {
	case len(a.kafka.Brokers) > 0:
		src = ingest.NewTailReader(a.kafka, a.logger.With("role", RoleGateway), a.reg)
	case a.cfg.Kafka.Configured() && !a.cfg.Kafka.Embedded():
		src = ingest.NewTailReader(a.cfg.Kafka, a.logger.With("role", RoleGateway), a.reg)
	}
	a.tail = query.NewTail(a.cfg.Tail, src, a.logger.With("role", RoleGateway), a.reg)
	th := query.NewTailHandler(a.tail, a.cfg.QueryLimits)
	a.loki = loki.NewEngine(a.cfg.Loki, a.query, a.cfg.QueryLimits)
	lh := loki.NewHandler(a.loki, a.tail)
	health := []component{
		{name: "postgres", required: true, check: a.store.Ping, details: func() map[string]any {
			return map[string]any{"breaker": a.query.BreakerState()}
		}},
		{name: "redis", required: false, check: a.cache.Ping},
	}
	if len(a.cfg.Replicas.URLs) > 0 {
		health = append(health, replicasHealth(r))
	}
	ui, err := web.New()
	if err != nil {
		return rst, fmt.Errorf("web UI: %w", err)
	}
	routes := func(e *echo.Echo) {
		h.Register(e)
		th.Register(e)
		lh.Register(e)
		ui.Register(e)
	}
	st, err := a.serve(RoleGateway, a.cfg.HTTP.GatewayAddr, health, routes, ui.Page)
	// The tail's loop ends its streams when the process stops, before
	// the server waits for open requests to finish.
	st.runs = append(st.runs, a.tail.Run)
	rst.add(st)
	return rst, err
}

// chargingPublisher counts the logs of each request against its API key's
// logs_per_second, whichever ingest protocol decoded them; invalid events
// (sent to the DLQ) count too.
type chargingPublisher struct{ ingest.Publisher }

func (p chargingPublisher) Publish(ctx context.Context, events []logs.Event, letters []ingest.DeadLetter, cid string) error {
	auth.ChargeLogs(ctx, len(events)+len(letters))
	return p.Publisher.Publish(ctx, events, letters, cid)
}

// listen opens a role's listener now, so a port conflict fails the start.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
