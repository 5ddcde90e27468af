package app_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/app/apptest"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

// httpsClient trusts roots and presents cert (when it has one).
func httpsClient(t *testing.T, roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, DisableKeepAlives: true}
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestTLSMutualAndReloaded: every listener serves HTTPS with the given
// certificate, asks clients for theirs with a client CA, and takes a
// renewed certificate without a restart.
func TestTLSMutualAndReloaded(t *testing.T) {
	t.Parallel()
	ca := apptest.NewCA(t, "first")
	certFile, keyFile, _ := ca.Issue("server-one")
	clientCA := apptest.NewCA(t, "clients")
	_, _, clientCert := clientCA.Issue("shipper")
	p := startPipeline(t, func(c *configs.Config) {
		c.TLS = configs.TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.File}
	})
	client := httpsClient(t, ca.Pool, &clientCert)
	for _, role := range []app.Role{app.RoleProducer, app.RoleConsumer, app.RoleGateway} {
		resp, err := client.Get("https://" + p.app.Addr(role) + "/healthz")
		if err != nil {
			t.Fatalf("%s over mutual TLS: %v", role, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS == nil || resp.ProtoMajor != 2 {
			t.Fatalf("%s: %d over %s, TLS %v; want 200 over HTTP/2 and TLS", role, resp.StatusCode, resp.Proto, resp.TLS != nil)
		}
	}
	// Ingest over TLS works end to end.
	resp, err := client.Post("https://"+p.app.Addr(app.RoleProducer)+"/api/v1/logs", "application/json",
		strings.NewReader(`{"level":"info","source":"tls","message":"over TLS"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("ingest over TLS: %d", resp.StatusCode)
	}
	p.waitRows(1)

	// Without a client certificate the handshake fails.
	if resp, err := httpsClient(t, ca.Pool, nil).Get("https://" + p.app.Addr(app.RoleGateway) + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %d", resp.StatusCode)
	}
	// Plain HTTP gets no answer from the API.
	if resp, err := http.Get("http://" + p.app.Addr(app.RoleGateway) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP was served on a TLS listener")
		}
	}

	// A renewed certificate (from another CA here, to tell them apart) is
	// served without a restart.
	next := apptest.NewCA(t, "second")
	newCert, newKey, _ := next.Issue("server-two")
	for src, dst := range map[string]string{newCert: certFile, newKey: keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		replaceFile(t, dst, string(b))
	}
	renewed := httpsClient(t, next.Pool, &clientCert)
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		resp, err := renewed.Get("https://" + p.app.Addr(app.RoleGateway) + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName == "server-two", "still the old certificate"
	})
}
