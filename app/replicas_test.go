package app

import (
	"strings"
	"testing"

	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/store"
	"github.com/spf13/pflag"
)

// TestReplicaURLsRedacted: the password of every replica URL, not only
// the first, is hidden in the running configuration.
func TestReplicaURLsRedacted(t *testing.T) {
	cfg := configs.Default()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	list := "postgres://reader:s3cret@db-r1:5432/logengine?sslmode=require," +
		"postgres://reader@db-r2:5432/logengine?password=0ther&sslmode=require," +
		"postgresql://reader:th1rd@db-r3/logengine"
	if err := fs.Set("postgres-read-url", list); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := store.NewReplicas(cfg.Replicas, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a := &App{cfg: cfg, replicas: r}
	got := a.runningConfig()
	line := ""
	for l := range strings.SplitSeq(got, "\n") {
		if strings.HasPrefix(l, "postgres-read-url:") {
			line = l
		}
	}
	want := `postgres-read-url: "postgres://reader:xxxxx@db-r1:5432/logengine?sslmode=require,` +
		`postgres://reader@db-r2:5432/logengine?password=xxxxx&sslmode=require,postgresql://reader:xxxxx@db-r3/logengine"`
	if line != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	for _, secret := range []string{"s3cret", "0ther", "th1rd"} {
		if strings.Contains(got, secret) {
			t.Errorf("the running configuration shows the password %q", secret)
		}
	}
}

// TestReplicaURLErrorsHideThePassword: a replica URL that cannot work is
// refused by name and position, without its password.
func TestReplicaURLErrorsHideThePassword(t *testing.T) {
	for _, u := range []string{
		"postgres://reader:s3cret@db-r1:5432/logengine?sslmode=bogus",
		"host=db-r1 user=reader password=s3cret",
		"postgres://reader:s3cret@db-r1:5432,db-r2:5432/logengine",
	} {
		cfg := configs.Default()
		cfg.Replicas.URLs = []string{"postgres://reader@db-r0/logengine", u}
		err := cfg.Validate()
		if err == nil {
			t.Fatalf("%s: accepted", u)
		}
		if !strings.Contains(err.Error(), "postgres-read-url") || !strings.Contains(err.Error(), "URL 2") {
			t.Errorf("%s: the error names neither the flag nor the URL: %v", u, err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the password shows: %v", err)
		}
	}
}
