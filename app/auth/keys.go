// Package auth decides who may use logengine's HTTP listeners: API keys
// with scopes and per-key rate limits, read from a keys file (reloaded
// without a restart) and the environment.
package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/store/logs"
	"go.yaml.in/yaml/v3"
)

// Scope is what a key may do.
type Scope string

const (
	// ScopeIngest sends logs to the producer.
	ScopeIngest Scope = "ingest"
	// ScopeQuery reads logs from the gateway.
	ScopeQuery Scope = "query"
	// ScopeAdmin reads the running configuration and may do what the
	// other scopes do.
	ScopeAdmin Scope = "admin"
)

var knownScopes = []Scope{ScopeIngest, ScopeQuery, ScopeAdmin}

// Rate is a key's limits; zero is unlimited.
type Rate struct {
	LogsPerSecond     float64 `yaml:"logs_per_second" json:"logs_per_second"`
	RequestsPerSecond float64 `yaml:"requests_per_second" json:"requests_per_second"`
}

// Key is one API key, without its secret: what a request made with it
// may do and is known by.
type Key struct {
	Name string
	// Tenant owns the logs the key writes and is the only one it reads;
	// an admin key may act for others (X-Scope-OrgID).
	Tenant string
	Scopes []Scope
	Rate   Rate
	// hash is the SHA-256 of the secret.
	hash [sha256.Size]byte
	// plaintext: the document holds the secret itself, not its hash.
	plaintext bool
}

// Allows reports whether the key grants scope; admin grants every scope.
func (k *Key) Allows(s Scope) bool {
	return slices.Contains(k.Scopes, s) || slices.Contains(k.Scopes, ScopeAdmin)
}

// maxKeysBytes bounds a keys document: it is read whole into memory.
const maxKeysBytes = 4 << 20

// minSecretBytes keeps a key long enough not to be guessed.
const minSecretBytes = 16

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// fileKey is one entry of the keys file as written.
type fileKey struct {
	Name   string   `yaml:"name"`
	Key    string   `yaml:"key"`
	SHA256 string   `yaml:"sha256"`
	Tenant string   `yaml:"tenant"`
	Scopes []string `yaml:"scopes"`
	Rate   *Rate    `yaml:"rate"`
}

// fileTenant is one entry of the keys file's tenants section.
type fileTenant struct {
	Retention string `yaml:"retention"`
}

type file struct {
	Keys    []fileKey             `yaml:"keys"`
	Tenants map[string]fileTenant `yaml:"tenants"`
}

// Document is a parsed keys document: the keys, and the tenants whose
// retention differs from --retention.
type Document struct {
	Keys      []Key
	Retention map[string]time.Duration
}

// ParseKeys reads a keys document, YAML or JSON (JSON is YAML):
//
//	keys:
//	  - name: shipper-a
//	    key: "le_3b6f…"        # or sha256: "<hex of the key's SHA-256>"
//	    tenant: team-a
//	    scopes: [ingest]       # ingest | query | admin
//	    rate: {logs_per_second: 50000, requests_per_second: 500}
//	tenants:                   # optional: per-tenant settings
//	  team-a: {retention: 30d} # 0 keeps the tenant's logs forever
//
// Every problem is reported, naming the entry; an unknown field is one.
func ParseKeys(doc []byte) ([]Key, error) {
	d, err := ParseDocument(doc)
	return d.Keys, err
}

// ParseDocument reads a keys document with its tenants section; see
// ParseKeys.
func ParseDocument(doc []byte) (Document, error) {
	if len(doc) > maxKeysBytes {
		return Document{}, fmt.Errorf("keys document is %d bytes, more than %d", len(doc), maxKeysBytes)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Document{}, fmt.Errorf("keys document: %w", err)
	}
	var errs []error
	keys := make([]Key, 0, len(f.Keys))
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	for i, fk := range f.Keys {
		bad := func(format string, args ...any) {
			label := fmt.Sprintf("key %d", i+1)
			if fk.Name != "" {
				label += fmt.Sprintf(" (%q)", truncate(fk.Name))
			}
			errs = append(errs, fmt.Errorf("%s: %s", label, fmt.Sprintf(format, args...)))
		}
		k := Key{Name: fk.Name, Tenant: fk.Tenant}
		switch {
		case !namePattern.MatchString(fk.Name):
			bad("name must be 1-64 letters, digits, '_', '.', '@' or '-'")
		case names[fk.Name]:
			bad("name is used by another key")
		}
		names[fk.Name] = true
		if k.Tenant == "" {
			k.Tenant = logs.DefaultTenant
		} else if !logs.ValidTenant(k.Tenant) {
			bad("tenant must be %s", logs.TenantRule)
		}
		switch {
		case fk.Key != "" && fk.SHA256 != "":
			bad("give key or sha256, not both")
		case fk.Key != "":
			if len(fk.Key) < minSecretBytes {
				bad("key must be at least %d characters", minSecretBytes)
			}
			if strings.ContainsAny(fk.Key, " \t\r\n:") {
				bad("key must not contain spaces or ':'")
			}
			k.hash = sha256.Sum256([]byte(fk.Key))
			k.plaintext = true
		case fk.SHA256 != "":
			h, err := hex.DecodeString(fk.SHA256)
			if err != nil || len(h) != sha256.Size {
				bad("sha256 must be 64 hexadecimal digits")
			}
			copy(k.hash[:], h)
		default:
			bad("key or sha256 is required")
		}
		if other, dup := hashes[k.hash]; dup && k.hash != ([sha256.Size]byte{}) {
			bad("has the same secret as key %q", other)
		}
		hashes[k.hash] = k.Name
		if len(fk.Scopes) == 0 {
			bad("scopes must name at least one of ingest, query, admin")
		}
		for _, s := range fk.Scopes {
			if !slices.Contains(knownScopes, Scope(s)) {
				bad("unknown scope %q (ingest, query or admin)", truncate(s))
				continue
			}
			if !slices.Contains(k.Scopes, Scope(s)) {
				k.Scopes = append(k.Scopes, Scope(s))
			}
		}
		if fk.Rate != nil {
			k.Rate = *fk.Rate
			for name, v := range map[string]float64{"logs_per_second": k.Rate.LogsPerSecond, "requests_per_second": k.Rate.RequestsPerSecond} {
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					bad("rate.%s must be a finite number, 0 (unlimited) or more", name)
				}
			}
		}
		keys = append(keys, k)
	}
	retention := map[string]time.Duration{}
	for _, name := range slices.Sorted(maps.Keys(f.Tenants)) {
		if !logs.ValidTenant(name) {
			errs = append(errs, fmt.Errorf("tenant %q: name must be %s", truncate(name), logs.TenantRule))
			continue
		}
		if r := f.Tenants[name].Retention; r != "" {
			d, err := flagvalue.ParseDays(r)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("tenant %q: retention %q must be a duration such as 30d or 36h, 0 to keep everything", name, truncate(r)))
				continue
			}
			retention[name] = d
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Document{}, err
	}
	return Document{Keys: keys, Retention: retention}, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
