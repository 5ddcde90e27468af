// Package storetest gives tests a private PostgreSQL database on the real
// server. It does not import package store, so store's own tests can use it.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable holding the server URL tests use.
const EnvURL = "LOGENGINE_TEST_POSTGRES_URL"

// DefaultURL is the server tests use when EnvURL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// NewURL creates a fresh, uniquely named database (logengine_test_<random
// hex>) on the server given by env LOGENGINE_TEST_POSTGRES_URL or
// DefaultURL, registers t.Cleanup to drop it (DROP DATABASE ... WITH
// (FORCE)), and returns its URL. It fails the test, never skips it, when
// PostgreSQL is unreachable. The server URL must be in URL form.
func NewURL(t testing.TB) string {
	t.Helper()
	server := os.Getenv(EnvURL)
	if server == "" {
		server = DefaultURL
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storetest: %s must be a postgres:// URL, got %q", EnvURL, server)
	}

	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "logengine_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()

	admin := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := admin("CREATE DATABASE " + ident); err != nil {
		t.Fatalf("storetest: cannot create a test database on PostgreSQL at %s (set %s to another server): %v",
			u.Host, EnvURL, err)
	}
	t.Cleanup(func() {
		if err := admin("DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)"); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}
