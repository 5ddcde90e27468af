package app

import (
	"strings"
	"testing"

	"github.com/logengine/logengine/configs"
)

// TestRedactURL: no password of a PostgreSQL URL or connection string
// reaches /config, in any of the forms pgx reads.
func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://postgres:s3cret@db:5432/logengine?sslmode=verify-full", "postgres://postgres:xxxxx@db:5432/logengine?sslmode=verify-full"},
		{"postgres://postgres@db/logengine?password=s3cret&sslmode=require", "postgres://postgres@db/logengine?password=xxxxx&sslmode=require"},
		{"host=db user=postgres password=s3cret sslmode=require", "host=db user=postgres password=xxxxx sslmode=require"},
		{"host=db password='s3 cret' sslmode=require", "host=db password=xxxxx sslmode=require"},
		{"postgres://postgres@127.0.0.1:5432/logengine?sslmode=disable", "postgres://postgres@127.0.0.1:5432/logengine?sslmode=disable"},
		{"127.0.0.1:6379", "127.0.0.1:6379"},
		{"postgres://%zz:s3cret@db", "postgres://xxxxx@db"},
	}
	for _, c := range cases {
		got := redactURL(c.in)
		if got != c.want {
			t.Errorf("redactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "s3 cret") {
			t.Errorf("redactURL(%q) still holds the password: %q", c.in, got)
		}
	}
}

// TestPostgresErrorsHideThePassword: neither a URL pgx cannot parse nor one
// it cannot connect to prints its password in the error.
func TestPostgresErrorsHideThePassword(t *testing.T) {
	for _, u := range []string{
		"postgres://logengine:s3cret@127.0.0.1:1/logengine?sslmode=disable&connect_timeout=2",
		"postgres://logengine:s3cret@127.0.0.1:1/logengine?sslmode=bogus",
		"host=127.0.0.1 port=1 user=logengine password=s3cret dbname=logengine sslmode=disable connect_timeout=2",
	} {
		cfg := configs.Default()
		cfg.Postgres.URL = u
		var out strings.Builder
		err := Migrate(t.Context(), cfg, &out)
		if err == nil {
			t.Fatalf("%s: connected to a closed port", u)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(out.String(), "s3cret") {
			t.Errorf("the password shows: %v\n%s", err, out.String())
		}
	}
}
