package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestWantsHTML(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},             // no header: an API client
		{[]string{"*/*"}, false}, // curl
		{[]string{"application/json"}, false},
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"}, true}, // Chromium
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, true},                       // Firefox
		{[]string{"text/html"}, true},
		{[]string{"TEXT/HTML; q=0.5"}, true},
		{[]string{"text/html;q=0"}, false},
		{[]string{"text/html, application/json"}, false}, // a tie goes to JSON, today's answer
		{[]string{"application/json;q=0.5, text/html"}, true},
		{[]string{"text/html;q=0.4, application/json;q=0.9"}, false},
		{[]string{"text/html;q=nonsense"}, false},
		{[]string{"application/json", "text/html"}, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, a := range tc.accept {
			r.Header.Add("Accept", a)
		}
		if got := WantsHTML(r); got != tc.want {
			t.Errorf("Accept %q: WantsHTML = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func serveUI(t *testing.T, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	ui, err := New()
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	ui.Register(e)
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestAssets(t *testing.T) {
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html", `<script src="/ui/app.js"`},
		{"/ui/index.html", "text/html", `<link rel="stylesheet" href="/ui/style.css">`},
		{"/ui/app.js", "text/javascript", "/api/v1/logs/histogram"},
		{"/ui/style.css", "text/css", "prefers-color-scheme: dark"},
	} {
		rec := serveUI(t, tc.path)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", tc.path, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.contentType)
		}
		if !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q does not keep the page to its own host", tc.path, csp)
		}
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", tc.path)
		}
		if again := serveUI(t, tc.path, "If-None-Match", etag); again.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", tc.path, again.Code)
		}
	}
}

func TestUnknownAssetIs404(t *testing.T) {
	if rec := serveUI(t, "/ui/nope.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /ui/nope.js = %d, want 404", rec.Code)
	}
}

func TestUIRedirectsToTrailingSlash(t *testing.T) {
	rec := serveUI(t, "/ui")
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui = %d to %q, want 301 to /ui/", rec.Code, rec.Header().Get("Location"))
	}
}
