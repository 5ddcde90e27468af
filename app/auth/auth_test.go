package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/store/logs"
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
	if keys[1].Tenant != logs.DefaultTenant || !keys[1].Allows(ScopeIngest) {
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
		{`tenants: {"a b": {retention: 7d}}`, `tenant "a b": name must be`},
		{`tenants: {team-a: {retention: soon}}`, `tenant "team-a": retention "soon"`},
		{`tenants: {team-a: {retention: -1h}}`, `tenant "team-a": retention "-1h"`},
		{`tenants: {team-a: {keep: 7d}}`, "keep"},
	}
	for _, c := range bad {
		_, err := ParseKeys([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.doc, err, c.want)
		}
	}
}

func TestParseDocumentTenants(t *testing.T) {
	doc, err := ParseDocument([]byte("tenants:\n  team-a: {retention: 30d}\n  team-b: {retention: 36h}\n  team-c: {retention: 0}\n  team-d: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"team-a": 30 * 24 * time.Hour, "team-b": 36 * time.Hour, "team-c": 0}
	if !maps.Equal(doc.Retention, want) {
		t.Errorf("retention %v, want %v (a tenant without one keeps the global retention)", doc.Retention, want)
	}
}

func manyTenants(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("t%d", i)
	}
	return strings.Join(names, "|")
}

// TestRequestTenants is the table of who may act for which tenants.
func TestRequestTenants(t *testing.T) {
	cases := []struct {
		header string
		admin  bool
		need   Scope
		want   []string
		status int
	}{
		{"", false, ScopeQuery, []string{"team-a"}, 0},
		{"team-a", false, ScopeIngest, []string{"team-a"}, 0},
		{"team-b", false, ScopeQuery, nil, 403},
		{"team-a|team-b", false, ScopeQuery, nil, 403},
		{"team-b", true, ScopeIngest, []string{"team-b"}, 0},
		{" team-b | team-a |team-b", true, ScopeQuery, []string{"team-a", "team-b"}, 0},
		{"team-a|team-b", true, ScopeIngest, nil, 400},
		{"team a", true, ScopeQuery, nil, 400},
		{"team-a|", true, ScopeQuery, nil, 400},
		{manyTenants(maxTenantsPerQuery + 1), true, ScopeQuery, nil, 400},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.header != "" {
			h.Set(TenantHeader, c.header)
		}
		got, err := requestTenants(h, "team-a", c.admin, c.need)
		status := 0
		if he, ok := err.(*echo.HTTPError); ok {
			status = he.Code
		} else if err != nil {
			t.Fatalf("%q: %v", c.header, err)
		}
		if status != c.status || !slices.Equal(got, c.want) {
			t.Errorf("%q admin=%v %s: %v %d, want %v %d", c.header, c.admin, c.need, got, status, c.want, c.status)
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

func TestTenantRetentionFollowsReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	write := func(doc string) {
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key := "keys: [{name: a, key: \"" + secretA + "\", tenant: team-a, scopes: [ingest]}]\n"
	write(key + "tenants: {team-a: {retention: 3d}}\n")
	a, err := New(configs.Auth{KeysFile: path}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]time.Duration
	a.OnTenantRetention(func(m map[string]time.Duration) { got = append(got, m) })
	write(key + "tenants: {team-a: {retention: 12h}, team-b: {retention: 0}}\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	write(key + "tenants: {team-a: {retention: never}}\n") // refused: the last good stays
	if err := a.Reload(); err == nil {
		t.Fatal("a bad retention was loaded")
	}
	want := []map[string]time.Duration{{"team-a": 72 * time.Hour}, {"team-a": 12 * time.Hour, "team-b": 0}}
	if len(got) != len(want) || !maps.Equal(got[0], want[0]) || !maps.Equal(got[1], want[1]) {
		t.Errorf("retention updates %v, want %v", got, want)
	}
	if l := a.keys.Load().tenantLabel([]string{"team-b"}); l != "team-b" {
		t.Errorf("a tenant the keys file names is labelled %q", l)
	}
	if l := a.keys.Load().tenantLabel([]string{"someone-else"}); l != metrics.TenantOther {
		t.Errorf("a tenant no key names is labelled %q, want %q", l, metrics.TenantOther)
	}
}
