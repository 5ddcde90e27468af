package configs

import (
	"errors"
	"time"

	"github.com/spf13/pflag"
)

// HTTP holds the listeners, their limits and the shutdown grace period.
type HTTP struct {
	ProducerAddr    string
	ConsumerAddr    string
	GatewayAddr     string
	ShutdownTimeout time.Duration
	// Pprof serves Go profiles under /debug/pprof/ on every listener.
	Pprof bool
}

// DefaultHTTP is the listeners' configuration with nothing set.
func DefaultHTTP() HTTP {
	return HTTP{
		ProducerAddr:    ":8081",
		ConsumerAddr:    ":8082",
		GatewayAddr:     ":8080",
		ShutdownTimeout: 20 * time.Second,
	}
}

// RegisterFlags binds the listeners' settings to flags whose defaults are h's values.
func (h *HTTP) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&h.ProducerAddr, "producer-addr", h.ProducerAddr, "listen address of the producer role (ingest API)")
	fs.StringVar(&h.ConsumerAddr, "consumer-addr", h.ConsumerAddr, "listen address of the consumer role (health and metrics)")
	fs.StringVar(&h.GatewayAddr, "gateway-addr", h.GatewayAddr, "listen address of the gateway role (query API)")
	fs.BoolVar(&h.Pprof, "pprof", h.Pprof, "serve Go profiles under /debug/pprof/ on every listener (for diagnosis; off by default)")
	fs.DurationVar(&h.ShutdownTimeout, "shutdown-timeout", h.ShutdownTimeout, "grace period to drain requests and flush batches on shutdown")
}

// Validate reports every listener setting that cannot work, naming its flag.
func (h *HTTP) Validate() error {
	var errs []error
	if h.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout: must be positive"))
	}
	return errors.Join(errs...)
}
