package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// bindAddr is where a role's listener binds. An address without a host
// means every interface only when API keys protect the API: an open
// server binds loopback unless told otherwise, so that a laptop's
// logengine is not everyone's on the network.
func (a *App) bindAddr(role Role, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || a.auth.Enabled() {
		return addr
	}
	if host == "" {
		a.logger.Warn("no API keys (--auth-keys-file): the API is open to anyone who can reach it, so the "+string(role)+
			" listens on loopback only; set API keys, or give the address a host (0.0.0.0"+":"+port+") to listen on every interface",
			"role", role, "addr", net.JoinHostPort("127.0.0.1", port))
		return net.JoinHostPort("127.0.0.1", port)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		a.logger.Warn("no API keys (--auth-keys-file): the API is open to anyone who can reach "+addr, "role", role)
	}
	return addr
}

// servePprof serves Go's profiles on their own loopback listener (never
// on an API listener, whatever its keys).
func (a *App) servePprof() (started, error) {
	ln, err := listen(a.cfg.HTTP.PprofAddr)
	if err != nil {
		return started{}, err
	}
	a.pprofAddr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn)}
	a.logger.Info("profiles listening", "url", "http://"+a.pprofAddr+"/debug/pprof/")
	run := func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-ctx.Done():
			return nil
		}
	}
	stop := func(ctx context.Context) { _ = srv.Shutdown(ctx) }
	return started{runs: []func(context.Context) error{run}, stops: []func(context.Context){stop}}, nil
}

// PprofAddr is where profiles are served, once started with --pprof.
func (a *App) PprofAddr() string { return a.pprofAddr }
