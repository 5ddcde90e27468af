package cache_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/logengine/logengine/cache"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/prometheus/client_golang/prometheus"
)

// writeCerts writes a CA and a certificate it signed for 127.0.0.1 as PEM
// files in dir: ca.pem, cert.pem, key.pem.
func writeCerts(t *testing.T, dir string) {
	t.Helper()
	write := func(name, kind string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write("ca.pem", "CERTIFICATE", caDER)
	write("cert.pem", "CERTIFICATE", der)
	write("key.pem", "PRIVATE KEY", keyDER)
}

// startTLSRedis runs a redis-server of its own that takes TLS connections
// only, stopped when the test ends; it returns its address and the CA file.
func startTLSRedis(t *testing.T) (addr, caFile string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: the Redis TLS test runs one (.ci/services.sh installs it)")
	}
	dir := t.TempDir()
	writeCerts(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", "0", "--tls-port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "cert.pem"), "--tls-key-file", filepath.Join(dir, "key.pem"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return addr, filepath.Join(dir, "ca.pem")
}

// TestRedisOverTLS: the cache works against a Redis that takes TLS only,
// trusting the given CA; without TLS it reaches nothing.
func TestRedisOverTLS(t *testing.T) {
	addr, caFile := startTLSRedis(t)
	open := func(sec cache.Security) *cache.Cache {
		cfg := cache.DefaultConfig()
		cfg.Addr = addr
		cfg.Prefix = "logengine-tls-test:"
		cfg.Timeout = time.Second
		cfg.Security = sec
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Security.Check(); err != nil {
			t.Fatal(err)
		}
		c := cache.New(cfg, discard, prometheus.NewRegistry())
		t.Cleanup(c.Close)
		return c
	}
	ctx := context.Background()
	c := open(cache.Security{TLS: true, TLSCAFile: caFile})
	key := c.Key("search", "tls")
	c.Set(ctx, key, []byte("over TLS"), time.Minute)
	if v, ok := c.Get(ctx, "closed", key); !ok || string(v) != "over TLS" {
		t.Fatalf("over TLS: %q %v", v, ok)
	}
	if err := open(cache.Security{}).Ping(ctx); err == nil {
		t.Fatal("a plain connection reached a TLS-only Redis")
	}
	if err := open(cache.Security{TLS: true}).Ping(ctx); err == nil {
		t.Fatal("a certificate from an unknown CA was trusted")
	}
}
