package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a decision, the values of the metrics' outcome label.
const (
	OutcomeAllowed     = "allowed"      // a valid key with the scope, within its limits
	OutcomeOpen        = "open"         // no keys configured: everyone is let in
	OutcomeMissing     = "missing"      // 401: no credentials
	OutcomeInvalid     = "invalid"      // 401: unreadable or unknown credentials
	OutcomeForbidden   = "forbidden"    // 403: a valid key without the scope
	OutcomeRateLimited = "rate_limited" // 429: past the key's rate limit
)

// metricsKeyName labels the /metrics token's decisions.
const metricsKeyName = "metrics-token"

// entry is a key with its limiters, shared by every listener.
type entry struct {
	Key
	requests *bucket
	logs     *bucket
}

// keyring is one loaded set of keys; replaced whole on reload.
type keyring struct {
	entries []*entry
	// tenants are those the keys document names (and the default):
	// the values the tenant metric label may take.
	tenants map[string]bool
}

// tenantLabel is the tenant metric label of a request acting for tenants.
func (k *keyring) tenantLabel(tenants []string) string {
	switch {
	case len(tenants) > 1:
		return metrics.TenantMany
	case k != nil && k.tenants[tenants[0]]:
		return tenants[0]
	}
	return metrics.TenantOther
}

// lookup finds the key whose secret is s. Every key is compared, in
// constant time, so the answer's timing tells nothing about the keys.
func (k *keyring) lookup(s string) *entry {
	h := sha256.Sum256([]byte(s))
	var found *entry
	for _, e := range k.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found = e
		}
	}
	return found
}

// Principal is who a request was made by.
type Principal struct {
	Name string
	// Tenant is the key's tenant; the request may act for others (see
	// Tenants), which logs.TenantsFrom on its context returns.
	Tenant string
	Scopes []Scope
	entry  *entry
}

type principalKey struct{}

// FromContext is the request's principal; false when the listeners are open.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// ChargeLogs counts n logs against the request's key's logs_per_second;
// a key past its limit gets 429 on its next request. Without a key it
// does nothing.
func ChargeLogs(ctx context.Context, n int) {
	if p, ok := FromContext(ctx); ok && p.entry != nil {
		p.entry.logs.charge(time.Now(), float64(n))
	}
}

// Authorizer checks every request of every listener against the keys.
type Authorizer struct {
	cfg      configs.Auth
	logger   *slog.Logger
	enabled  bool
	keys     atomic.Pointer[keyring]
	envDoc   Document
	metrics  string // the /metrics bearer token; "" leaves it open
	now      func() time.Time
	failLogs *bucket
	dropped  atomic.Int64

	decisions *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	loaded    prometheus.Gauge

	mu          sync.Mutex // serialises reloads
	fileSum     fileState
	retention   atomic.Pointer[map[string]time.Duration]
	onRetention []func(map[string]time.Duration)

	// onReload hears of every reload the watch makes (the audit log).
	onReload func(trigger string, keys int, err error)
}

// OnReload makes f hear of every reload of the keys file after the start:
// trigger is "sighup" or "file_changed", keys the keys in use after it.
// Call it before Watch.
func (a *Authorizer) OnReload(f func(trigger string, keys int, err error)) { a.onReload = f }

// fileState tells a changed keys file from an unchanged one.
type fileState struct {
	size    int64
	modTime time.Time
	sum     [sha256.Size]byte
}

// New reads the keys (a bad keys file fails the start) and the /metrics
// token.
func New(cfg configs.Auth, logger *slog.Logger, reg prometheus.Registerer) (*Authorizer, error) {
	a := &Authorizer{cfg: cfg, logger: logger, enabled: cfg.Enabled(), now: time.Now}
	a.failLogs = newBucket(cfg.FailureLogsPerSecond, a.now())
	a.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "auth_decisions_total",
		Help: "Authentication and authorisation decisions by role, key name (never the key; \"-\" when none matched) and outcome: allowed, open, missing, invalid, forbidden, rate_limited.",
	}, []string{"role", "key", "outcome"})
	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "auth_keys_reloads_total", Help: "Loads of the API keys file by outcome (ok, error; on error the previous keys stay).",
	}, []string{"outcome"})
	a.loaded = prometheus.NewGauge(prometheus.GaugeOpts{Name: "auth_keys", Help: "API keys in use."})
	if reg != nil {
		for _, c := range []prometheus.Collector{a.decisions, a.reloads, a.loaded} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register auth metrics: %w", err)
			}
		}
	}
	if strings.TrimSpace(cfg.Keys) != "" {
		doc, err := ParseDocument([]byte(cfg.Keys))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", configs.EnvAuthKeys, err)
		}
		a.envDoc = doc
	}
	a.metrics = cfg.MetricsToken
	if cfg.MetricsTokenFile != "" {
		b, err := os.ReadFile(cfg.MetricsTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--metrics-token-file: %w", err)
		}
		a.metrics = strings.TrimSpace(string(b))
		if a.metrics == "" {
			return nil, fmt.Errorf("--metrics-token-file %s is empty", cfg.MetricsTokenFile)
		}
	}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Enabled reports whether keys are configured (the listeners are closed
// to requests without one).
func (a *Authorizer) Enabled() bool { return a.enabled }

// Reload reads the keys file again and swaps the keys in when it is
// valid; on an error the keys in use stay. A key that keeps its name and
// rate keeps its limiters' state.
func (a *Authorizer) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	keys := append([]Key(nil), a.envDoc.Keys...)
	retention := maps.Clone(a.envDoc.Retention)
	if a.cfg.KeysFile != "" {
		st, err := a.readFile()
		if err != nil {
			a.reloads.WithLabelValues("error").Inc()
			return err
		}
		doc, err := ParseDocument(st.doc)
		if err != nil {
			a.reloads.WithLabelValues("error").Inc()
			return fmt.Errorf("--auth-keys-file %s: %w", a.cfg.KeysFile, err)
		}
		fileKeys := doc.Keys
		for _, k := range fileKeys {
			for _, e := range a.envDoc.Keys {
				if e.Name == k.Name {
					a.reloads.WithLabelValues("error").Inc()
					return fmt.Errorf("--auth-keys-file %s: key %q is also in %s", a.cfg.KeysFile, k.Name, configs.EnvAuthKeys)
				}
			}
		}
		for t, d := range doc.Retention {
			if _, dup := a.envDoc.Retention[t]; dup {
				a.reloads.WithLabelValues("error").Inc()
				return fmt.Errorf("--auth-keys-file %s: tenant %q is also in %s", a.cfg.KeysFile, t, configs.EnvAuthKeys)
			}
			if retention == nil {
				retention = map[string]time.Duration{}
			}
			retention[t] = d
		}
		keys = append(keys, fileKeys...)
		a.fileSum = st.state
		if st.mode&0o077 != 0 && slices.ContainsFunc(fileKeys, func(k Key) bool { return k.plaintext }) {
			a.logger.Warn("the keys file holds keys in plain text and other users may read it: chmod 600 it, or write sha256 instead of key",
				"file", a.cfg.KeysFile, "mode", st.mode.String())
		}
		a.reloads.WithLabelValues("ok").Inc()
	}
	old := map[string]*entry{}
	if cur := a.keys.Load(); cur != nil {
		for _, e := range cur.entries {
			old[e.Name] = e
		}
	}
	now := a.now()
	ring := &keyring{entries: make([]*entry, len(keys)), tenants: map[string]bool{logs.DefaultTenant: true}}
	for t := range retention {
		ring.tenants[t] = true
	}
	for i, k := range keys {
		e := &entry{Key: k, requests: newBucket(k.Rate.RequestsPerSecond, now), logs: newBucket(k.Rate.LogsPerSecond, now)}
		if o, ok := old[k.Name]; ok && o.Rate == k.Rate {
			e.requests, e.logs = o.requests, o.logs
		}
		ring.entries[i] = e
		ring.tenants[k.Tenant] = true
	}
	a.keys.Store(ring)
	a.loaded.Set(float64(len(keys)))
	a.retention.Store(&retention)
	for _, fn := range a.onRetention {
		fn(retention)
	}
	return nil
}

// TenantRetention returns the tenants' retention overrides of the keys
// loaded last.
func (a *Authorizer) TenantRetention() map[string]time.Duration {
	if m := a.retention.Load(); m != nil {
		return *m
	}
	return nil
}

// OnTenantRetention calls fn with the tenants' retention overrides now and
// after every reload that succeeds. Call it before Watch.
func (a *Authorizer) OnTenantRetention(fn func(map[string]time.Duration)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onRetention = append(a.onRetention, fn)
	fn(a.TenantRetention())
}

type readKeys struct {
	doc   []byte
	state fileState
	mode  os.FileMode
}

func (a *Authorizer) readFile() (readKeys, error) {
	f, err := os.Open(a.cfg.KeysFile)
	if err != nil {
		return readKeys{}, fmt.Errorf("--auth-keys-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return readKeys{}, fmt.Errorf("--auth-keys-file: %w", err)
	}
	if fi.Size() > maxKeysBytes {
		return readKeys{}, fmt.Errorf("--auth-keys-file %s: %d bytes, more than %d", a.cfg.KeysFile, fi.Size(), maxKeysBytes)
	}
	doc := make([]byte, fi.Size())
	n, err := f.ReadAt(doc, 0)
	if err != nil && n != len(doc) {
		return readKeys{}, fmt.Errorf("--auth-keys-file: %w", err)
	}
	return readKeys{doc: doc, state: fileState{size: fi.Size(), modTime: fi.ModTime(), sum: sha256.Sum256(doc)}, mode: fi.Mode().Perm()}, nil
}

// changed reports whether the keys file differs from the one loaded. The
// size and time are checked first; the content settles a file rewritten
// within the file system's time resolution.
func (a *Authorizer) changed() bool {
	fi, err := os.Stat(a.cfg.KeysFile)
	if err != nil {
		return true // Reload reports it
	}
	a.mu.Lock()
	cur := a.fileSum
	a.mu.Unlock()
	if fi.Size() != cur.size || !fi.ModTime().Equal(cur.modTime) {
		return true
	}
	b, err := os.ReadFile(a.cfg.KeysFile)
	return err != nil || sha256.Sum256(b) != cur.sum
}

// Watch takes SIGHUP at once (so that one sent as soon as the process
// started reloads the keys rather than ending the process) and returns
// the loop that reloads the keys file on SIGHUP and when it changes,
// until ctx ends.
func (a *Authorizer) Watch() func(ctx context.Context) error {
	if a.cfg.KeysFile == "" {
		return func(ctx context.Context) error { <-ctx.Done(); return nil }
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return func(ctx context.Context) error {
		defer signal.Stop(hup)
		return a.watch(ctx, hup)
	}
}

func (a *Authorizer) watch(ctx context.Context, hup <-chan os.Signal) error {
	tick := time.NewTicker(a.cfg.ReloadInterval)
	defer tick.Stop()
	for {
		trigger := "sighup"
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		case <-tick.C:
			if !a.changed() {
				continue
			}
			trigger = "file_changed"
		}
		err := a.Reload()
		if a.onReload != nil {
			a.onReload(trigger, a.loadedCount(), err)
		}
		if err != nil {
			a.logger.Error("API keys not reloaded; the previous keys stay in use", "err", err)
			continue
		}
		a.logger.Info("API keys reloaded", "keys", int(a.loadedCount()))
	}
}

func (a *Authorizer) loadedCount() int { return len(a.keys.Load().entries) }

// Role-independent paths.
func isHealth(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/actuator/health":
		return true
	}
	return false
}

func isMetrics(path string) bool { return path == "/metrics" || path == "/actuator/prometheus" }

// Need is the scope a request on a role's listener needs; "" is none (the
// request is open whatever the keys). Everything not named open needs a
// scope, so a route added later is closed from its first day:
//   - open on every role: health, readiness and GET / (the index, or the
//     web UI's page); on the gateway also the web UI's files under /ui/
//     and /favicon.ico, which browsers ask for by themselves (they hold no
//     data: the page asks for a key when the API says 401);
//   - /config: admin;
//   - producer: ingest for everything else (every ingest protocol);
//   - gateway: query for everything else (/api/…, /loki/…);
//   - consumer (and any other role): admin for everything else.
//
// /metrics is decided by its own token (see Middleware).
func Need(role, path string) Scope {
	switch {
	case isHealth(path), path == "/":
		return ""
	case path == "/config":
		return ScopeAdmin
	}
	switch role {
	case "producer":
		return ScopeIngest
	case "gateway":
		if path == "/ui" || strings.HasPrefix(path, "/ui/") || path == "/favicon.ico" {
			return ""
		}
		return ScopeQuery
	}
	return ScopeAdmin
}

// Middleware authenticates and authorises every request of role's
// listener: 401 (with WWW-Authenticate) without a valid key, 403 without
// the scope, 429 (with Retry-After) past the key's rate limit.
func (a *Authorizer) Middleware(role string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			path := c.Request().URL.Path
			if isMetrics(path) {
				return a.checkMetrics(role, c, next)
			}
			need := Need(role, path)
			if need == "" {
				return next(c)
			}
			if !a.enabled {
				// Open: anyone may do anything, so a tenant header is
				// taken as an admin key's would be.
				tenants, err := requestTenants(c.Request().Header, logs.DefaultTenant, true, need)
				if err != nil {
					return err
				}
				a.decisions.WithLabelValues(role, "-", OutcomeOpen).Inc()
				a.setTenants(c, tenants)
				return next(c)
			}
			secret, err := Credential(c.Request().Header)
			if err != nil {
				outcome := OutcomeInvalid
				if errors.Is(err, errNoCredential) {
					outcome = OutcomeMissing
				}
				return a.unauthorized(role, c, outcome, err.Error())
			}
			e := a.keys.Load().lookup(secret)
			if e == nil {
				return a.unauthorized(role, c, OutcomeInvalid, "unknown API key")
			}
			// Known from here on, refused or not: the request's log line and
			// audit record name the key.
			p := Principal{Name: e.Name, Tenant: e.Tenant, Scopes: e.Scopes, entry: e}
			c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), principalKey{}, p)))
			if !e.Allows(need) {
				a.decisions.WithLabelValues(role, e.Name, OutcomeForbidden).Inc()
				a.logFailure(c, role, OutcomeForbidden, e.Name)
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="logengine", error="insufficient_scope", scope="`+string(need)+`"`)
				return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("API key %q lacks the %s scope this endpoint needs", e.Name, need))
			}
			now := a.now()
			ok, wait := e.requests.take(now, 1)
			what := "requests_per_second"
			if ok && need == ScopeIngest {
				// Logs are counted once a request's batch is decoded
				// (ChargeLogs); a key still in debt waits.
				ok, wait = e.logs.take(now, 0)
				what = "logs_per_second"
			}
			if !ok {
				a.decisions.WithLabelValues(role, e.Name, OutcomeRateLimited).Inc()
				c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
				return echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf("API key %q is past its rate limit (%s); retry after the Retry-After seconds", e.Name, what))
			}
			tenants, err := requestTenants(c.Request().Header, e.Tenant, e.Allows(ScopeAdmin), need)
			if err != nil {
				if he, ok := err.(*echo.HTTPError); ok && he.Code == http.StatusForbidden {
					a.decisions.WithLabelValues(role, e.Name, OutcomeForbidden).Inc()
					a.logFailure(c, role, OutcomeForbidden, e.Name)
				}
				return err
			}
			a.decisions.WithLabelValues(role, e.Name, OutcomeAllowed).Inc()
			a.setTenants(c, tenants)
			return next(c)
		}
	}
}

// TenantHeader names the tenant a request acts for; Loki and its shippers
// send it. A query may name several tenants, separated by '|'.
const TenantHeader = "X-Scope-OrgID"

// requestTenants decides the tenants a request acts for: the key's own,
// or those X-Scope-OrgID names when the key is an admin's (or the server
// runs open). A key that is not an admin's may send its own tenant in the
// header and no other (403). A write acts for exactly one tenant (400 for
// a list); a read may name several. A name that cannot be a tenant is a
// 400.
func requestTenants(h http.Header, own string, admin bool, need Scope) ([]string, error) {
	raw := strings.TrimSpace(h.Get(TenantHeader))
	if raw == "" {
		return []string{own}, nil
	}
	var tenants []string
	for _, t := range strings.Split(raw, "|") {
		t = strings.TrimSpace(t)
		if !logs.ValidTenant(t) {
			return nil, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s: tenant %q must be %s", TenantHeader, truncate(t), logs.TenantRule))
		}
		if !slices.Contains(tenants, t) {
			tenants = append(tenants, t)
		}
	}
	slices.Sort(tenants)
	if len(tenants) > maxTenantsPerQuery {
		return nil, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s names %d tenants; at most %d", TenantHeader, len(tenants), maxTenantsPerQuery))
	}
	if need != ScopeQuery && len(tenants) > 1 {
		return nil, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s names %d tenants; a write belongs to one", TenantHeader, len(tenants)))
	}
	if !admin && (len(tenants) > 1 || tenants[0] != own) {
		return nil, echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("this API key's tenant is %q: acting for %s %q needs the admin scope", own, TenantHeader, raw))
	}
	return tenants, nil
}

// maxTenantsPerQuery bounds a cross-tenant query's list.
const maxTenantsPerQuery = 64

// setTenants puts on the request the tenants it acts for and their
// metric label.
func (a *Authorizer) setTenants(c echo.Context, tenants []string) {
	ctx := logs.WithTenants(c.Request().Context(), tenants)
	ctx = metrics.WithTenantLabel(ctx, a.keys.Load().tenantLabel(tenants))
	c.SetRequest(c.Request().WithContext(ctx))
}

// checkMetrics lets a scrape through with the /metrics token or an admin
// key, when a token is set; without one /metrics is open.
func (a *Authorizer) checkMetrics(role string, c echo.Context, next echo.HandlerFunc) error {
	if a.metrics == "" {
		return next(c)
	}
	secret, err := Credential(c.Request().Header)
	if err != nil {
		outcome := OutcomeInvalid
		if errors.Is(err, errNoCredential) {
			outcome = OutcomeMissing
		}
		return a.unauthorized(role, c, outcome, err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(a.metrics)) == 1 {
		a.decisions.WithLabelValues(role, metricsKeyName, OutcomeAllowed).Inc()
		return next(c)
	}
	if e := a.keys.Load().lookup(secret); e != nil && e.Allows(ScopeAdmin) {
		a.decisions.WithLabelValues(role, e.Name, OutcomeAllowed).Inc()
		return next(c)
	}
	return a.unauthorized(role, c, OutcomeInvalid, "not the metrics token")
}

func (a *Authorizer) unauthorized(role string, c echo.Context, outcome, reason string) error {
	a.decisions.WithLabelValues(role, "-", outcome).Inc()
	a.logFailure(c, role, outcome, "")
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="logengine"`)
	msg := "an API key is required: send Authorization: Bearer <key> (or X-API-Key)"
	if outcome == OutcomeInvalid {
		msg = "the API key is not valid: " + reason
	}
	return echo.NewHTTPError(http.StatusUnauthorized, msg)
}

// logFailure logs a refused request with the client's address, at most
// --auth-failure-logs-per-second lines; the lines left out are counted in
// the next one.
func (a *Authorizer) logFailure(c echo.Context, role, outcome, key string) {
	if ok, _ := a.failLogs.take(a.now(), 1); !ok {
		a.dropped.Add(1)
		return
	}
	attrs := []any{"role", role, "outcome", outcome, "client", c.Request().RemoteAddr,
		"method", c.Request().Method, "path", c.Request().URL.Path}
	if key != "" {
		attrs = append(attrs, "key", key)
	}
	if n := a.dropped.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	a.logger.Warn("request refused", attrs...)
}
