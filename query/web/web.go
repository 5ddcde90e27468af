// Package web is the gateway's web UI: one page, its script and its style,
// embedded in the binary and served under /ui/ (and at / to a browser). The
// page uses only the public query API, so it needs nothing but the gateway.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed static
var static embed.FS

// asset is one embedded file with what its answer needs, computed once.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// UI serves the embedded page and its assets.
type UI struct {
	assets map[string]asset // by name under static/, e.g. "app.js"
}

// New reads the embedded files once; their ETags are their content hashes,
// so a browser revalidates cheaply and never keeps an old script after an
// upgrade.
func New() (*UI, error) {
	u := &UI{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		u.assets[strings.TrimPrefix(p, "static/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return u, err
}

// Register mounts the page at /ui/ and its assets under it.
func (u *UI) Register(e *echo.Echo) {
	e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/ui/") })
	e.GET("/ui/*", u.serveAsset)
}

// Page answers with the page itself, for GET / from a browser.
func (u *UI) Page(c echo.Context) error { return u.serve(c, "index.html") }

func (u *UI) serveAsset(c echo.Context) error {
	name := c.Param("*")
	if name == "" {
		name = "index.html"
	}
	return u.serve(c, name)
}

func (u *UI) serve(c echo.Context, name string) error {
	a, ok := u.assets[name]
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no such file in the web UI: "+name)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache") // revalidate: the ETag makes that a 304
	h.Set("X-Content-Type-Options", "nosniff")
	// Only the gateway itself: no script, style, font or request elsewhere.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(a.body))
	return nil
}

// WantsHTML reports whether a request's Accept header prefers an HTML page
// to JSON: a browser's does ("text/html,…,*/*;q=0.8"); curl's "*/*", an
// absent header and "application/json" do not. HTML must be named
// explicitly and rank above JSON.
func WantsHTML(r *http.Request) bool {
	html, json := -1.0, -1.0
	for _, field := range r.Header.Values("Accept") {
		for _, part := range strings.Split(field, ",") {
			mediaType, q := parseAcceptPart(part)
			switch mediaType {
			case "text/html", "application/xhtml+xml":
				html = max(html, q)
			case "application/json":
				json = max(json, q)
			}
		}
	}
	return html > 0 && html > json
}

// parseAcceptPart splits "text/html;q=0.9" into its media type and quality
// (1 when absent, 0 when unreadable).
func parseAcceptPart(part string) (string, float64) {
	fields := strings.Split(part, ";")
	mediaType := strings.ToLower(strings.TrimSpace(fields[0]))
	q := 1.0
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			parsed, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || parsed < 0 || parsed > 1 {
				parsed = 0
			}
			q = parsed
		}
	}
	return mediaType, q
}
