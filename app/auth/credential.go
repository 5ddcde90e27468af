package auth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
)

// HeaderAPIKey carries a key for clients that cannot set Authorization.
const HeaderAPIKey = "X-API-Key"

// maxCredentialBytes bounds what is hashed per request.
const maxCredentialBytes = 1024

var (
	errNoCredential  = errors.New("no API key")
	errBadCredential = errors.New("malformed credentials")
)

// Credential is the API key a request presents, from (in this order)
// "Authorization: Bearer <key>", "Authorization: Basic" with the key as
// password (or as user name when the password is empty: some shippers
// only let one set a user), or "X-API-Key: <key>". errNoCredential means
// none was sent; errBadCredential one that cannot be read.
func Credential(h http.Header) (string, error) {
	if auth := h.Get("Authorization"); auth != "" {
		return parseAuthorization(auth)
	}
	if k := strings.TrimSpace(h.Get(HeaderAPIKey)); k != "" {
		if len(k) > maxCredentialBytes {
			return "", errBadCredential
		}
		return k, nil
	}
	return "", errNoCredential
}

// parseAuthorization reads a Bearer or Basic Authorization header value.
func parseAuthorization(v string) (string, error) {
	if len(v) > 2*maxCredentialBytes {
		return "", errBadCredential
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	rest = strings.TrimSpace(rest)
	if !ok || rest == "" {
		return "", errBadCredential
	}
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if len(rest) > maxCredentialBytes || strings.ContainsAny(rest, " \t") {
			return "", errBadCredential
		}
		return rest, nil
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", errBadCredential
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return "", errBadCredential
		}
		if pass == "" {
			pass = user
		}
		if pass == "" || len(pass) > maxCredentialBytes {
			return "", errBadCredential
		}
		return pass, nil
	}
	return "", errBadCredential
}

// Transport sends key as a bearer token with every request of a client
// of logengine (the load test, the benchmark); an empty key sends none.
func Transport(base http.RoundTripper, key string) http.RoundTripper {
	if key == "" {
		return base
	}
	return bearer{base: base, value: "Bearer " + key}
}

type bearer struct {
	base  http.RoundTripper
	value string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change its request
	r.Header.Set("Authorization", b.value)
	return b.base.RoundTrip(r)
}
