package auth

import (
	"net/http"
	"testing"
)

// FuzzParseKeys: any keys document is parsed or refused, never a panic,
// and a parsed key is one the middleware can use.
func FuzzParseKeys(f *testing.F) {
	for _, seed := range []string{
		"keys:\n  - name: a\n    key: \"" + secretA + "\"\n    tenant: t\n    scopes: [ingest]\n    rate: {logs_per_second: 5, requests_per_second: 1}\n",
		`{"keys":[{"name":"b","sha256":"` + "0000000000000000000000000000000000000000000000000000000000000000" + `","scopes":["query","admin"]}]}`,
		"keys: ~", "", "keys: [1, 2]", "keys:\n  - &a {name: x}\n  - *a\n", "\x00\xff", "keys: [{rate: {logs_per_second: .nan}}]",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, err := ParseKeys(doc)
		if err != nil {
			return
		}
		for _, k := range keys {
			if k.Name == "" || k.Tenant == "" || len(k.Scopes) == 0 || k.Rate.LogsPerSecond < 0 || k.Rate.RequestsPerSecond < 0 {
				t.Fatalf("accepted an unusable key: %+v", k)
			}
		}
	})
}

// FuzzCredential: any Authorization or X-API-Key header is read or
// refused, never a panic, and a key read from it is bounded.
func FuzzCredential(f *testing.F) {
	for _, seed := range []string{"Bearer " + secretA, "Basic dTpw", "Basic " + "Og==", "bearer", "Basic ====", "Negotiate x", " "} {
		f.Add(seed, "")
		f.Add("", seed)
	}
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		h := http.Header{}
		if authorization != "" {
			h.Set("Authorization", authorization)
		}
		if apiKey != "" {
			h.Set(HeaderAPIKey, apiKey)
		}
		got, err := Credential(h)
		if err == nil && (got == "" || len(got) > maxCredentialBytes) {
			t.Fatalf("read %q from %q / %q", got, authorization, apiKey)
		}
	})
}
