package configs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/configs"
)

func TestHTTPValidateNamesTheBadFlag(t *testing.T) {
	tests := []struct {
		flag   string
		mutate func(*configs.HTTP)
	}{
		{"shutdown-timeout", func(h *configs.HTTP) { h.ShutdownTimeout = 0 }},
		{"http-read-header-timeout", func(h *configs.HTTP) { h.ReadHeaderTimeout = 0 }},
		{"http-read-header-timeout", func(h *configs.HTTP) { h.ReadHeaderTimeout = h.ReadTimeout + time.Second }},
		{"http-read-timeout", func(h *configs.HTTP) { h.ReadTimeout = -time.Second }},
		{"http-write-timeout", func(h *configs.HTTP) { h.WriteTimeout = 0 }},
		{"http-write-timeout", func(h *configs.HTTP) { h.WriteTimeout = h.ReadTimeout }},
		{"http-idle-timeout", func(h *configs.HTTP) { h.IdleTimeout = 0 }},
		{"http-max-conns", func(h *configs.HTTP) { h.MaxConns = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			c := configs.Default()
			tc.mutate(&c.HTTP)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the bad setting")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "--"+tc.flag+": ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one error starting with --%s: ", msg, tc.flag)
			}
		})
	}
}

func TestHTTPDefaults(t *testing.T) {
	h := configs.DefaultHTTP()
	if err := h.Validate(); err != nil {
		t.Fatalf("DefaultHTTP().Validate() = %v", err)
	}
	// The write deadline runs from the end of the headers, so it must cover
	// a body read up to the read timeout plus the wait for Kafka or a query.
	d := configs.Default()
	if wait := max(d.Producer.Timeout, d.Gateway.QueryTimeout); h.WriteTimeout <= h.ReadTimeout+wait {
		t.Errorf("--http-write-timeout %s leaves no time to answer after --http-read-timeout %s and a %s wait", h.WriteTimeout, h.ReadTimeout, wait)
	}
	if h.ReadHeaderTimeout != 10*time.Second || h.ReadTimeout != time.Minute || h.WriteTimeout != 90*time.Second ||
		h.IdleTimeout != 2*time.Minute || h.MaxConns != 4096 {
		t.Errorf("defaults %+v differ from the documented ones", h)
	}
}
