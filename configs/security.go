package configs

import (
	"net"
	"strings"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/spf13/pflag"
)

// Environment variables that hold secrets themselves. They are not flags:
// a flag's value shows in `ps` and in /config, so a secret comes from a
// file (the *-file flags) or from one of these.
const (
	// EnvAuthKeys holds a keys document (the --auth-keys-file format),
	// added to the file's keys.
	EnvAuthKeys = EnvPrefix + "AUTH_KEYS"
	// EnvMetricsToken is the bearer token /metrics asks for.
	EnvMetricsToken = EnvPrefix + "METRICS_TOKEN"
	// EnvKafkaSASLPassword is the Kafka SASL password.
	EnvKafkaSASLPassword = EnvPrefix + "KAFKA_SASL_PASSWORD"
	// EnvRedisPassword is the Redis ACL password.
	EnvRedisPassword = EnvPrefix + "REDIS_PASSWORD"
	// EnvAPIKey is the key the load test and the benchmark send.
	EnvAPIKey = EnvPrefix + "API_KEY"
)

// Auth configures who may use the HTTP listeners.
type Auth struct {
	// KeysFile holds the API keys (YAML or JSON); reloaded on SIGHUP and
	// when it changes. Empty, and no EnvAuthKeys: the listeners are open.
	KeysFile string
	// Keys is a keys document from EnvAuthKeys; not a flag.
	Keys string
	// ReloadInterval is how often the keys file is checked for a change.
	ReloadInterval time.Duration
	// MetricsTokenFile holds the bearer token of /metrics.
	MetricsTokenFile string
	// MetricsToken is the token from EnvMetricsToken; not a flag.
	MetricsToken string
	// FailureLogsPerSecond bounds the log lines of refused requests, so
	// that a flood of bad credentials cannot flood the logs.
	FailureLogsPerSecond float64
	// CORSAllowedOrigins may call the API from a browser page of theirs.
	CORSAllowedOrigins []string
}

// Enabled reports whether API keys are configured: every API request then
// needs one.
func (a *Auth) Enabled() bool { return a.KeysFile != "" || strings.TrimSpace(a.Keys) != "" }

// DefaultAuth is open, with the checks that apply once keys are set.
func DefaultAuth() Auth {
	return Auth{ReloadInterval: 5 * time.Second, FailureLogsPerSecond: 10}
}

// RegisterFlags binds the authentication settings.
func (a *Auth) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&a.KeysFile, "auth-keys-file", a.KeysFile,
		"YAML or JSON file of API keys (name, key or sha256, tenant, scopes, rate); reloaded on SIGHUP and on change. Unset (and no "+EnvAuthKeys+"): the API is open and listeners without a host bind loopback")
	fs.DurationVar(&a.ReloadInterval, "auth-reload-interval", a.ReloadInterval, "how often the keys file is checked for a change (SIGHUP reloads at once)")
	fs.StringVar(&a.MetricsTokenFile, "metrics-token-file", a.MetricsTokenFile,
		"file holding a bearer token that /metrics then requires (or set "+EnvMetricsToken+"); unset: /metrics is open")
	fs.Float64Var(&a.FailureLogsPerSecond, "auth-failure-logs-per-second", a.FailureLogsPerSecond, "most log lines per second about refused credentials; the rest are counted in the next line")
	flagvalue.ListVar(fs, &a.CORSAllowedOrigins, "cors-allowed-origins", a.CORSAllowedOrigins,
		`origins (https://ui.example.com) whose pages may call the API from a browser, comma-separated; empty: no CORS headers (same origin only); "*" allows any`)
}

// Validate reports every setting that cannot work, naming its flag.
func (a *Auth) Validate() error {
	var p flagvalue.Problems
	p.Positive(map[string]time.Duration{"auth-reload-interval": a.ReloadInterval})
	if a.FailureLogsPerSecond <= 0 {
		p.Add("auth-failure-logs-per-second", "must be positive")
	}
	for _, o := range a.CORSAllowedOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			p.Add("cors-allowed-origins", "%q is not an origin: use scheme://host[:port] or *", o)
		}
	}
	return p.Err()
}

// TLS configures HTTPS on every HTTP listener.
type TLS struct {
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, makes TLS mutual: a client must present a
	// certificate signed by one of these CAs.
	ClientCAFile string
}

// Enabled reports whether the listeners serve HTTPS.
func (t *TLS) Enabled() bool { return t.CertFile != "" }

// RegisterFlags binds the TLS settings.
func (t *TLS) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&t.CertFile, "tls-cert-file", t.CertFile, "PEM certificate (chain) of every HTTP listener; set with --tls-key-file to serve HTTPS only; reloaded when the file changes")
	fs.StringVar(&t.KeyFile, "tls-key-file", t.KeyFile, "PEM private key of --tls-cert-file")
	fs.StringVar(&t.ClientCAFile, "tls-client-ca-file", t.ClientCAFile, "PEM CA certificates; set, every client must present a certificate they signed (mutual TLS)")
}

// Validate reports every setting that cannot work, naming its flag.
func (t *TLS) Validate() error {
	var p flagvalue.Problems
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.Add("tls-cert-file", "--tls-cert-file and --tls-key-file go together")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		p.Add("tls-client-ca-file", "needs --tls-cert-file and --tls-key-file")
	}
	return p.Err()
}

// Secrets reads the secrets kept in the environment into c. lookupEnv is
// os.LookupEnv outside tests.
func (c *Config) Secrets(lookupEnv func(string) (string, bool)) {
	get := func(name string) string { v, _ := lookupEnv(name); return v }
	c.Auth.Keys = get(EnvAuthKeys)
	c.Auth.MetricsToken = strings.TrimSpace(get(EnvMetricsToken))
	c.Kafka.Security.SASLPassword = get(EnvKafkaSASLPassword)
	c.Redis.Security.Password = get(EnvRedisPassword)
}

// IsLoopback reports whether a listen address's host is a loopback one.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
