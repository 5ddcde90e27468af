package cache_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRedisACLUserFromPasswordFile: the cache authenticates as an ACL
// user with the password read from a file, and a wrong password gets it
// nothing.
func TestRedisACLUserFromPasswordFile(t *testing.T) {
	r := newRedis(t)
	ctx := context.Background()
	user, pass := "logengine-test-"+uuid.NewString()[:8], uuid.NewString()
	// The user may touch its test's keys only: whatever the cache stores
	// proves it went through this user.
	if err := r.cl.Do(ctx, r.cl.B().AclSetuser().Username(user).Rule("reset", "on", ">"+pass, "~"+r.prefix+"*", "+@all").Build()).Error(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { r.cl.Do(context.Background(), r.cl.B().AclDeluser().Username(user).Build()) })
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not-"+pass), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(passwordFile string) *cache.Cache {
		cfg := cache.DefaultConfig()
		cfg.Addr = redisAddr
		cfg.Prefix = r.prefix
		cfg.Timeout = time.Second
		cfg.Security = cache.Security{User: user, PasswordFile: passwordFile}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		c := cache.New(cfg, discard, prometheus.NewRegistry())
		t.Cleanup(c.Close)
		return c
	}
	c := open(good)
	key := c.Key("search", "acl")
	c.Set(ctx, key, []byte("answer"), time.Minute)
	if v, ok := c.Get(ctx, "closed", key); !ok || string(v) != "answer" {
		t.Fatalf("as the ACL user: %q %v", v, ok)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping as the ACL user: %v", err)
	}
	wrong := open(bad)
	if err := wrong.Ping(ctx); err == nil {
		t.Fatal("a wrong password reached Redis")
	}
}

func TestRedisSecurityValidate(t *testing.T) {
	cfg := cache.DefaultConfig()
	cfg.Security = cache.Security{TLSCAFile: "ca.pem"}
	if err := cfg.Validate(); err == nil {
		t.Fatal("a CA file without --redis-tls was accepted")
	}
}
