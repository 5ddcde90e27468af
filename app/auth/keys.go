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
	"math"
	"regexp"
	"slices"
	"strings"

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
	// Tenant is parsed and validated, and carried on the request, but not
	// enforced yet: every key reads and writes the same logs.
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

// DefaultTenant is the tenant of a key that names none.
const DefaultTenant = "default"

// maxKeysBytes bounds a keys document: it is read whole into memory.
const maxKeysBytes = 4 << 20

// minSecretBytes keeps a key long enough not to be guessed.
const minSecretBytes = 16

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// fileKey is one entry of the keys file as written.
type fileKey struct {
	Name   string   `yaml:"name"`
	Key    string   `yaml:"key"`
	SHA256 string   `yaml:"sha256"`
	Tenant string   `yaml:"tenant"`
	Scopes []string `yaml:"scopes"`
	Rate   *Rate    `yaml:"rate"`
}

type file struct {
	Keys []fileKey `yaml:"keys"`
}

// ParseKeys reads a keys document, YAML or JSON (JSON is YAML):
//
//	keys:
//	  - name: shipper-a
//	    key: "le_3b6f…"        # or sha256: "<hex of the key's SHA-256>"
//	    tenant: team-a
//	    scopes: [ingest]       # ingest | query | admin
//	    rate: {logs_per_second: 50000, requests_per_second: 500}
//
// Every problem is reported, naming the entry; an unknown field is one.
func ParseKeys(doc []byte) ([]Key, error) {
	if len(doc) > maxKeysBytes {
		return nil, fmt.Errorf("keys document is %d bytes, more than %d", len(doc), maxKeysBytes)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("keys document: %w", err)
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
			k.Tenant = DefaultTenant
		} else if !tenantPattern.MatchString(k.Tenant) {
			bad("tenant must be 1-64 letters, digits, '_', '.' or '-'")
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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
