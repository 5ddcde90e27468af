package configs

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// HTTP holds the listeners, their limits and the shutdown grace period.
type HTTP struct {
	ProducerAddr    string
	ConsumerAddr    string
	GatewayAddr     string
	ShutdownTimeout time.Duration
	// Pprof serves Go profiles under /debug/pprof/ on a listener of its
	// own at PprofAddr, which must be a loopback address: profiles reveal
	// internals and cost CPU, so they are for someone on the machine.
	Pprof     bool
	PprofAddr string

	// ReadHeaderTimeout bounds the wait for a request's headers, so an idle
	// or slow client cannot hold a connection before saying anything.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a body
	// that stalls half way is cut off instead of holding a connection.
	ReadTimeout time.Duration
	// WriteTimeout runs from the end of the headers to the end of the
	// answer, so it covers the body's upload, the handler (a producer
	// waits for Kafka, the gateway for its query) and the answer.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection between requests.
	IdleTimeout time.Duration
	// MaxConns caps the open connections of each listener; beyond it new
	// connections wait to be accepted.
	MaxConns int
}

// DefaultHTTP is the listeners' configuration with nothing set.
func DefaultHTTP() HTTP {
	return HTTP{
		ProducerAddr:      ":8081",
		ConsumerAddr:      ":8082",
		GatewayAddr:       ":8080",
		PprofAddr:         "127.0.0.1:6060",
		ShutdownTimeout:   30 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		// 10 MiB (the default --max-body-bytes) in 60 s is about 1.4 Mbit/s.
		ReadTimeout: 60 * time.Second,
		// Above the read timeout plus the 10 s a request may wait for Kafka
		// (--produce-timeout) or a query (--query-timeout).
		WriteTimeout: 90 * time.Second,
		IdleTimeout:  120 * time.Second,
		MaxConns:     4096,
	}
}

// RegisterFlags binds the listeners' settings to flags whose defaults are h's values.
func (h *HTTP) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&h.ProducerAddr, "producer-addr", h.ProducerAddr, "listen address of the producer role (ingest API); without a host it binds every interface when API keys are set, loopback when not")
	fs.StringVar(&h.ConsumerAddr, "consumer-addr", h.ConsumerAddr, "listen address of the consumer role (health and metrics); without a host it binds every interface when API keys are set, loopback when not")
	fs.StringVar(&h.GatewayAddr, "gateway-addr", h.GatewayAddr, "listen address of the gateway role (query API); without a host it binds every interface when API keys are set, loopback when not")
	fs.BoolVar(&h.Pprof, "pprof", h.Pprof, "serve Go profiles under /debug/pprof/ on --pprof-addr (for diagnosis; off by default)")
	fs.StringVar(&h.PprofAddr, "pprof-addr", h.PprofAddr, "loopback listen address of the profiles with --pprof (never on the API listeners)")
	fs.DurationVar(&h.ShutdownTimeout, "shutdown-timeout", h.ShutdownTimeout, "on SIGINT/SIGTERM, the longest wait for ingest requests in progress and, with the embedded broker, for the consumers to store what it holds")
	fs.DurationVar(&h.ReadHeaderTimeout, "http-read-header-timeout", h.ReadHeaderTimeout, "longest wait for a request's headers (then the connection is closed)")
	fs.DurationVar(&h.ReadTimeout, "http-read-timeout", h.ReadTimeout, "longest time to read a whole request, body included (then the connection is closed); leave time for a --max-body-bytes body on a slow link")
	fs.DurationVar(&h.WriteTimeout, "http-write-timeout", h.WriteTimeout, "longest time from the end of a request's headers to the end of its answer (body, handler, answer); must exceed --http-read-timeout, keep it above that plus --produce-timeout and --query-timeout")
	fs.DurationVar(&h.IdleTimeout, "http-idle-timeout", h.IdleTimeout, "how long an idle keep-alive connection stays open for its next request")
	fs.IntVar(&h.MaxConns, "http-max-conns", h.MaxConns, "most open connections per listener; further connections wait until one closes")
}

// Validate reports every listener setting that cannot work, naming its flag.
func (h *HTTP) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	durations := []struct {
		flag string
		v    time.Duration
	}{
		{"shutdown-timeout", h.ShutdownTimeout},
		{"http-read-header-timeout", h.ReadHeaderTimeout},
		{"http-read-timeout", h.ReadTimeout},
		{"http-write-timeout", h.WriteTimeout},
		{"http-idle-timeout", h.IdleTimeout},
	}
	for _, d := range durations {
		if d.v <= 0 {
			bad(d.flag, "must be positive")
		}
	}
	// The headers are part of the request: a longer header timeout would
	// never apply.
	if h.ReadHeaderTimeout > 0 && h.ReadTimeout > 0 && h.ReadHeaderTimeout > h.ReadTimeout {
		bad("http-read-header-timeout", "must not exceed --http-read-timeout (%s), not %s", h.ReadTimeout, h.ReadHeaderTimeout)
	}
	// The write deadline starts once the headers are read, so it must leave
	// time to answer a body that arrived just within the read timeout.
	if h.ReadTimeout > 0 && h.WriteTimeout > 0 && h.WriteTimeout <= h.ReadTimeout {
		bad("http-write-timeout", "must exceed --http-read-timeout (%s), not %s", h.ReadTimeout, h.WriteTimeout)
	}
	if h.Pprof && !IsLoopback(h.PprofAddr) {
		bad("pprof-addr", "must be a loopback address (127.0.0.1:6060, [::1]:6060, localhost:6060), not %q", h.PprofAddr)
	}
	if h.MaxConns < 1 {
		bad("http-max-conns", "must be at least 1")
	}
	return errors.Join(errs...)
}
