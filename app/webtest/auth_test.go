package webtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/app/apptest"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

// TestWebUIAsksForAnAPIKey: on a gateway with API keys, the page's files
// load without one, the API answers 401, the page asks for a key once,
// and with it shows the logs.
func TestWebUIAsksForAnAPIKey(t *testing.T) {
	const ingestKey, queryKey = "le_web-ingest-0123456789", "le_web-query-0123456789"
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	doc := fmt.Sprintf("keys:\n  - {name: shipper, key: %q, scopes: [ingest]}\n  - {name: browser, key: %q, scopes: [query]}\n", ingestKey, queryKey)
	if err := os.WriteFile(keys, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := apptest.Config(t)
	cfg.Auth.KeysFile = keys
	a := apptest.Start(t, cfg, &apptest.LockedBuffer{})
	gateway, producer := "http://"+a.Addr(app.RoleGateway), "http://"+a.Addr(app.RoleProducer)

	now := time.Now().UTC()
	body := fmt.Sprintf(`[{"timestamp":%q,"level":"INFO","source":"web","message":"behind a key"}]`, now.Add(-time.Minute).Format(time.RFC3339))
	req, _ := http.NewRequest(http.MethodPost, producer+"/api/v1/logs/batch", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", ingestKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest: %d", resp.StatusCode)
	}
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		var page struct{ TotalElements int }
		getJSON(t, gateway+"/api/v1/logs", &page, "Cache-Control", "no-cache", "X-API-Key", queryKey)
		return page.TotalElements == 1, "the log is not searchable yet"
	})

	b := openBrowser(t)
	var prompts atomic.Int32
	handled := make(chan error, 4)
	chromedp.Listen(b.ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); !ok {
			return
		}
		prompts.Add(1)
		// Answered from another goroutine: the listener must not block.
		go func() {
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			defer cancel()
			handled <- chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true, PromptText: queryKey})
				return err
			}))
		}()
	})
	b.do(chromedp.Navigate(gateway + "/ui/"))
	b.waitResults("with the key given", []string{"behind a key"}, "1 log")
	if err := <-handled; err != nil {
		t.Fatalf("answering the prompt: %v", err)
	}
	if n := prompts.Load(); n != 1 {
		t.Errorf("the page asked for a key %d times, want once", n)
	}
	waitFor(b, "the key kept for the tab", `sessionStorage.getItem('logengine.apiKey')`, queryKey)
	// The page's answers carry the security headers.
	hdr := getJSONHeaders(t, gateway+"/ui/")
	for name, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
	} {
		if got := hdr.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

func getJSONHeaders(t *testing.T, u string) http.Header {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return resp.Header
}
