package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/configs"
)

const secretA = "le_0123456789abcdef"

func TestParseKeys(t *testing.T) {
	sum := sha256.Sum256([]byte("le_hashed-secret-value"))
	good := `keys:
  - name: shipper-a
    key: "` + secretA + `"
    tenant: team-a
    scopes: [ingest]
    rate: {logs_per_second: 50000, requests_per_second: 500}
  - name: reader
    sha256: "` + hex.EncodeToString(sum[:]) + `"
    scopes: [query, admin]
`
	keys, err := ParseKeys([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Name != "shipper-a" || keys[0].Tenant != "team-a" || keys[0].Rate.LogsPerSecond != 50000 ||
		keys[0].Rate.RequestsPerSecond != 500 || !keys[0].Allows(ScopeIngest) || keys[0].Allows(ScopeQuery) {
		t.Fatalf("first key parsed as %+v", keys[0])
	}
	if keys[1].Tenant != DefaultTenant || !keys[1].Allows(ScopeIngest) {
		t.Fatalf("an admin key without a tenant parsed as %+v", keys[1])
	}
	ring := &keyring{entries: []*entry{{Key: keys[0]}, {Key: keys[1]}}}
	if e := ring.lookup("le_hashed-secret-value"); e == nil || e.Name != "reader" {
		t.Fatalf("the key of a sha256 entry was not found: %v", e)
	}
	if e := ring.lookup(secretA); e == nil || e.Name != "shipper-a" {
		t.Fatalf("the key of a key entry was not found: %v", e)
	}
	if e := ring.lookup(secretA + "x"); e != nil {
		t.Fatalf("a wrong key matched %q", e.Name)
	}

	// The same document as JSON.
	if keys, err := ParseKeys([]byte(`{"keys":[{"name":"j","key":"` + secretA + `","scopes":["query"]}]}`)); err != nil || len(keys) != 1 {
		t.Fatalf("JSON: %v %v", keys, err)
	}

	bad := []struct{ doc, want string }{
		{`keys: [{name: a, scopes: [ingest]}]`, "key or sha256 is required"},
		{`keys: [{name: a, key: short, scopes: [ingest]}]`, "at least 16"},
		{`keys: [{name: a, key: "` + secretA + `", sha256: "00", scopes: [ingest]}]`, "not both"},
		{`keys: [{name: a, sha256: "zz", scopes: [ingest]}]`, "64 hexadecimal"},
		{`keys: [{name: a, key: "` + secretA + `", scopes: []}]`, "at least one"},
		{`keys: [{name: a, key: "` + secretA + `", scopes: [write]}]`, `unknown scope "write"`},
		{`keys: [{name: "", key: "` + secretA + `", scopes: [ingest]}]`, "name must be"},
		{`keys: [{name: a, key: "` + secretA + `", tenant: "a b", scopes: [ingest]}]`, "tenant must be"},
		{`keys: [{name: a, key: "` + secretA + `", scopes: [ingest], rate: {logs_per_second: -1}}]`, "rate.logs_per_second"},
		{`keys: [{name: a, key: "` + secretA + `", scopes: [ingest], colour: red}]`, "colour"},
		{`keys: [{name: a, key: "` + secretA + `", scopes: [ingest]}, {name: a, key: "le_another-secret-1", scopes: [ingest]}]`, "used by another key"},
		{`keys: [{name: a, key: "` + secretA + `", scopes: [ingest]}, {name: b, key: "` + secretA + `", scopes: [ingest]}]`, "same secret"},
		{`keys: {name: a}`, "keys document"},
	}
	for _, c := range bad {
		_, err := ParseKeys([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.doc, err, c.want)
		}
	}
}

func TestCredential(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		header, value string
		want          string
		err           error
	}{
		{"Authorization", "Bearer " + secretA, secretA, nil},
		{"Authorization", "bearer  " + secretA + " ", secretA, nil},
		{"Authorization", basic("shipper:" + secretA), secretA, nil},
		{"Authorization", basic(secretA + ":"), secretA, nil},
		{"X-API-Key", secretA, secretA, nil},
		{"", "", "", errNoCredential},
		{"Authorization", "Bearer", "", errBadCredential},
		{"Authorization", "Bearer a b", "", errBadCredential},
		{"Authorization", "Basic !!!", "", errBadCredential},
		{"Authorization", basic("no-colon"), "", errBadCredential},
		{"Authorization", basic(":"), "", errBadCredential},
		{"Authorization", "Digest x", "", errBadCredential},
		{"X-API-Key", strings.Repeat("k", 2000), "", errBadCredential},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.header != "" {
			h.Set(c.header, c.value)
		}
		got, err := Credential(h)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("%s: %q: got %q, %v; want %q, %v", c.header, c.value, got, err, c.want, c.err)
		}
	}
}

func TestNeed(t *testing.T) {
	cases := []struct {
		role, path string
		want       Scope
	}{
		{"producer", "/healthz", ""}, {"gateway", "/readyz", ""}, {"consumer", "/actuator/health", ""}, {"gateway", "/", ""},
		{"gateway", "/ui/", ""}, {"gateway", "/ui/app.js", ""}, {"gateway", "/favicon.ico", ""}, {"producer", "/ui/app.js", ScopeIngest},
		{"producer", "/api/v1/logs", ScopeIngest}, {"producer", "/v1/logs", ScopeIngest}, {"producer", "/loki/api/v1/push", ScopeIngest},
		{"producer", "/_bulk", ScopeIngest}, {"producer", "/anything-new", ScopeIngest},
		{"gateway", "/api/v1/logs", ScopeQuery}, {"gateway", "/loki/api/v1/query_range", ScopeQuery}, {"gateway", "/api/v1/logs/tail", ScopeQuery},
		{"gateway", "/uix", ScopeQuery},
		{"gateway", "/config", ScopeAdmin}, {"producer", "/config", ScopeAdmin}, {"consumer", "/anything", ScopeAdmin},
	}
	for _, c := range cases {
		if got := Need(c.role, c.path); got != c.want {
			t.Errorf("%s %s: needs %q, want %q", c.role, c.path, got, c.want)
		}
	}
}

func TestBucketGoesIntoDebt(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBucket(2, now) // 2 logs/s, burst 2
	if ok, _ := b.take(now, 0); !ok {
		t.Fatal("a full bucket refused")
	}
	b.charge(now, 10) // a batch of 10: taken whole, 8 in debt
	ok, wait := b.take(now, 0)
	if ok || retryAfterSeconds(wait) != 5 {
		t.Fatalf("in debt by 8 at 2/s: ok=%v, retry after %ds; want refused for 5s (until one token is back)", ok, retryAfterSeconds(wait))
	}
	if ok, _ := b.take(now.Add(5*time.Second), 0); !ok {
		t.Fatal("still refused once the debt is paid")
	}
	unlimited := newBucket(0, now)
	unlimited.charge(now, 1e9)
	if ok, _ := unlimited.take(now, 1); !ok {
		t.Fatal("an unlimited bucket refused")
	}
}

// TestWarnsOfAReadablePlaintextKeysFile: plain-text keys in a file others
// may read are worth a warning; hashes are not.
func TestWarnsOfAReadablePlaintextKeysFile(t *testing.T) {
	for _, c := range []struct {
		doc  string
		mode os.FileMode
		warn bool
	}{
		{`keys: [{name: a, key: "` + secretA + `", scopes: [query]}]`, 0o644, true},
		{`keys: [{name: a, key: "` + secretA + `", scopes: [query]}]`, 0o600, false},
		{`keys: [{name: a, sha256: "` + strings.Repeat("ab", 32) + `", scopes: [query]}]`, 0o644, false},
	} {
		path := filepath.Join(t.TempDir(), "keys.yaml")
		if err := os.WriteFile(path, []byte(c.doc), c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, c.mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		var logs bytes.Buffer
		cfg := configs.DefaultAuth()
		cfg.KeysFile = path
		if _, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "chmod 600"); got != c.warn {
			t.Errorf("mode %o, %s: warned %v, want %v", c.mode, c.doc, got, c.warn)
		}
	}
}
