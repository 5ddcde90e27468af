package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/logengine/logengine/configs"
)

// certificates serves the TLS configuration of every listener, read again
// from the files when one of them changes (a renewed certificate takes
// effect with the next handshake, without a restart). A file that fails
// to load leaves the previous configuration in use.
type certificates struct {
	cfg    configs.TLS
	logger *slog.Logger

	mu      sync.Mutex
	current *tls.Config
	stamps  []fileStamp
	failed  []fileStamp // the files' state that last failed, logged once
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

func newCertificates(cfg configs.TLS, logger *slog.Logger) (*certificates, error) {
	c := &certificates{cfg: cfg, logger: logger}
	stamps := c.stamp()
	conf, err := c.load()
	if err != nil {
		return nil, err
	}
	c.current, c.stamps = conf, stamps
	return c, nil
}

func (c *certificates) files() []string {
	files := []string{c.cfg.CertFile, c.cfg.KeyFile}
	if c.cfg.ClientCAFile != "" {
		files = append(files, c.cfg.ClientCAFile)
	}
	return files
}

func (c *certificates) stamp() []fileStamp {
	var out []fileStamp
	for _, f := range c.files() {
		var s fileStamp
		if fi, err := os.Stat(f); err == nil {
			s = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
		}
		out = append(out, s)
	}
	return out
}

func (c *certificates) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if c.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(c.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("--tls-client-ca-file: no PEM certificate in " + c.cfg.ClientCAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].size != b[i].size || !a[i].modTime.Equal(b[i].modTime) {
			return false
		}
	}
	return true
}

// config is tls.Config.GetConfigForClient: the configuration of this
// handshake, reloaded first if a file changed.
func (c *certificates) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	stamps := c.stamp()
	c.mu.Lock()
	defer c.mu.Unlock()
	if sameStamps(stamps, c.stamps) || sameStamps(stamps, c.failed) {
		return c.current, nil
	}
	conf, err := c.load()
	if err != nil {
		// A certificate and its key are often written one after the
		// other: until both are there, the previous pair serves.
		c.failed = stamps
		c.logger.Error("TLS files not reloaded; the previous certificate stays in use", "err", err)
		return c.current, nil
	}
	c.current, c.stamps, c.failed = conf, stamps, nil
	c.logger.Info("TLS certificate reloaded", "cert", c.cfg.CertFile)
	return conf, nil
}

// serverConfig is the listeners' TLS configuration.
func (c *certificates) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: c.config}
}
