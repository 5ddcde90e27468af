package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/app/auth"
	"github.com/logengine/logengine/store/logs"
	"go.opentelemetry.io/otel/trace"
)

// Kind is what a request on role's listener is audited as; "" is not
// audited. The rule follows the scope the request needs (auth.Need), so
// an endpoint added later is audited from its first day: what needs query
// is a query (a live tail its own kind), what needs admin is admin; ingest
// and the open paths (health, the index, the web UI's files) are not
// audited, nor is /metrics.
func Kind(role, path string) string {
	if path == "/metrics" || path == "/actuator/prometheus" {
		return ""
	}
	switch auth.Need(role, path) {
	case auth.ScopeAdmin:
		return KindAdmin
	case auth.ScopeQuery:
		if path == "/api/v1/logs/tail" || path == "/loki/api/v1/tail" {
			return KindTail
		}
		return KindQuery
	}
	return ""
}

// Middleware audits the requests of role's listener that Kind selects,
// refused ones (401, 403, 429) included: it must run outside the keys'
// check, and inside the correlation id and the trace. It answers an error
// the handler returned itself (as the outer middleware would) so that the
// record has the status sent. A live tail gets a record when its stream
// opens and another when it ends.
func (l *Logger) Middleware(role string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if l == nil {
			return next
		}
		return func(c echo.Context) error {
			req := c.Request()
			kind := Kind(role, req.URL.Path)
			if kind == "" || req.Method == http.MethodOptions { // a CORS preflight carries no query
				return next(c)
			}
			start := time.Now()
			ctx, results := logs.WithResults(req.Context())
			var body *teeBody
			if req.Body != nil && req.Body != http.NoBody {
				body = &teeBody{ReadCloser: req.Body, max: l.cfg.MaxQueryBytes}
				req.Body = body
			}
			c.SetRequest(req.WithContext(ctx))
			record := func() Record {
				r := l.requestRecord(c, role, kind, body)
				r.Duration = time.Since(start)
				return r
			}
			if kind == KindTail {
				c.Response().Before(func() {
					if s := c.Response().Status; s == http.StatusOK || s == http.StatusSwitchingProtocols {
						r := record()
						r.Details = []slog.Attr{slog.String("stream", "open")}
						l.Log(r)
					}
				})
			}
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			r := record()
			if n, ok := results.Count(); ok {
				r.Rows, r.RowsSet = n, true
			}
			if r.Status >= 400 {
				r.Error = errorText(err)
			}
			if kind == KindTail && (r.Status == http.StatusOK || r.Status == http.StatusSwitchingProtocols) {
				r.Details = []slog.Attr{slog.String("stream", "closed")}
			}
			l.Log(r)
			return nil
		}
	}
}

// requestRecord is what a request's record says of it.
func (l *Logger) requestRecord(c echo.Context, role, kind string, body *teeBody) Record {
	req := c.Request()
	r := Record{
		Kind: kind, Principal: PrincipalAnonymous, Client: clientHost(req.RemoteAddr), Role: role,
		Method: req.Method, Path: req.URL.Path, Status: c.Response().Status, Bytes: c.Response().Size,
		CorrelationID: c.Response().Header().Get(echo.HeaderXCorrelationID),
	}
	if p, ok := auth.FromContext(req.Context()); ok {
		r.Principal, r.Tenant, r.keyed = p.Name, p.Tenant, true
	}
	// The tenants the request acted for (an admin's X-Scope-OrgID), once
	// decided.
	if ts, ok := logs.TenantsSet(req.Context()); ok {
		r.Tenant = strings.Join(ts, "|")
	}
	if sc := trace.SpanContextFromContext(req.Context()); sc.HasTraceID() {
		r.TraceID = sc.TraceID().String()
	}
	var b []byte
	var cut bool
	var ctype string
	if body != nil {
		b, cut = body.buf, body.cut
		ctype = req.Header.Get(echo.HeaderContentType)
	}
	r.Query = Normalize(req.URL.RawQuery, ctype, b, cut)
	return r
}

// errorText is what the client was told, for a refused request.
func errorText(err error) string {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if s, ok := he.Message.(string); ok {
			return s
		}
		return http.StatusText(he.Code)
	}
	if err != nil {
		return "internal error"
	}
	return ""
}

func clientHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// teeBody keeps the first max bytes a handler reads of a request's body,
// so the record can say what was asked while the handler reads it as
// before.
type teeBody struct {
	io.ReadCloser
	max int
	buf []byte
	cut bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if room := t.max - len(t.buf); room > 0 {
		t.buf = append(t.buf, p[:min(n, room)]...)
		if n > room {
			t.cut = true
		}
	} else if n > 0 {
		t.cut = true
	}
	return n, err
}

// secretNames are parameters and body fields whose values are never
// recorded (a key or token put in a URL by a client that cannot send
// headers, say); the record shows the name with a hidden value.
var secretNames = []string{"api_key", "apikey", "api-key", "x-api-key", "key", "token", "access_token",
	"auth", "authorization", "password", "secret"}

const hidden = "xxxxx"

func isSecret(name string) bool { return slices.Contains(secretNames, strings.ToLower(name)) }

// Normalize is a request's query as a record keeps it: the URL's
// parameters sorted by name (each name's values in the order given), a
// form body's parameters merged in, a JSON body with its keys sorted after
// a space; secrets hidden. Values are written as sent, escaping only '%',
// '&' and control characters (and '=' in names), so that searching the
// records for a value finds it. A body cut at the size bound is kept as
// its text.
func Normalize(rawQuery, contentType string, body []byte, bodyCut bool) string {
	params, _ := url.ParseQuery(rawQuery) // what parses; a bad pair is skipped, as the handlers do
	mt, _, _ := mime.ParseMediaType(contentType)
	var tail string
	switch {
	case len(body) == 0:
	case mt == "application/x-www-form-urlencoded" && !bodyCut:
		form, _ := url.ParseQuery(string(body))
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
	case (mt == "application/json" || strings.HasSuffix(mt, "+json")) && !bodyCut:
		tail = canonicalJSON(body)
	default:
		tail = strings.ToValidUTF8(string(body), "\uFFFD")
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, k := range names {
		for _, v := range params[k] {
			if sb.Len() > 0 {
				sb.WriteByte('&')
			}
			escape(&sb, k, true)
			sb.WriteByte('=')
			if isSecret(k) {
				v = hidden
			}
			escape(&sb, v, false)
		}
	}
	if tail != "" {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(tail)
	}
	return sb.String()
}

func escape(sb *strings.Builder, s string, name bool) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c == '&' || c < 0x20 || c == 0x7f || (name && c == '=') {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
			continue
		}
		sb.WriteByte(c)
	}
}

// canonicalJSON is a JSON body with its object keys sorted and secret
// fields hidden; a body that is not JSON is kept as its text.
func canonicalJSON(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return strings.ToValidUTF8(string(body), "\uFFFD")
	}
	var sb bytes.Buffer
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(hideSecrets(v)); err != nil {
		return strings.ToValidUTF8(string(body), "\uFFFD")
	}
	return strings.TrimSuffix(sb.String(), "\n")
}

func hideSecrets(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if isSecret(k) {
				t[k] = hidden
			} else {
				t[k] = hideSecrets(x)
			}
		}
	case []any:
		for i, x := range t {
			t[i] = hideSecrets(x)
		}
	}
	return v
}
