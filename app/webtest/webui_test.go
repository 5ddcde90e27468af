package webtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"
	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/app/apptest"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, apptest.LeakOptions()...)
}

// chromium finds the browser; a machine without one fails the test, as
// .ci/services.sh installs Debian's chromium package.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: the web UI tests need it (Debian: apt-get install chromium; `make test` runs .ci/services.sh, which installs it as root)")
	return ""
}

// sample is one known log and the bucket (tens of minutes after the base)
// it falls in.
type sample struct {
	bucket                 int
	level, source, message string
	trace                  string
	meta                   map[string]any
}

// samples are spread over five buckets ten minutes apart, so the histogram
// has exactly five bars that are not empty, whatever interval it picks.
var samples = []sample{
	{0, "INFO", "auth-service", "User login succeeded for alice", "trace-aaa", map[string]any{"userId": "42", "region": "eu"}},
	{0, "ERROR", "auth-service", "User login failed for bob: bad password", "trace-bbb", map[string]any{"userId": "7", "region": "us"}},
	{0, "INFO", "api-gateway", "GET /orders 200 in 12ms", "trace-aaa", map[string]any{"status": 200}},
	{1, "INFO", "payment-service", "Payment processed for order o-1", "trace-aaa", map[string]any{"orderId": "o-1", "userId": "42"}},
	{1, "WARN", "db-service", "Connection pool near its limit (90%)", "trace-ccc", map[string]any{"pool": "primary"}},
	{2, "ERROR", "payment-service", "Payment declined: card expired", "trace-bbb", map[string]any{"orderId": "o-2", "userId": "7"}},
	{2, "DEBUG", "api-gateway", "Cache warmed in 340ms", "trace-ddd", nil},
	{3, "FATAL", "db-service", "Out of memory: killing worker 3", "trace-eee", map[string]any{"pool": "replica"}},
	{3, "INFO", "auth-service", "Token refreshed for alice", "trace-aaa", map[string]any{"userId": "42"}},
	{4, "WARN", "api-gateway", "Slow request: GET /reports took 2.3s", "trace-fff", map[string]any{"status": 200}},
	{4, "INFO", "payment-service", "Refund issued for order o-1", "trace-aaa", map[string]any{"orderId": "o-1", "userId": "42"}},
	{4, "ERROR", "auth-service", "User login failed for carol: account locked", "trace-ggg", map[string]any{"userId": "99", "region": "eu"}},
}

// messages are the messages of the samples that keep match, newest first,
// as the page lists them.
func messages(keep func(sample) bool) []string {
	var out []string
	for i := len(samples) - 1; i >= 0; i-- {
		if keep(samples[i]) {
			out = append(out, samples[i].message)
		}
	}
	return out
}

// fixture is a pipeline holding the samples.
type fixture struct {
	gateway, producer string
	start, end        time.Time // the window that holds every sample
}

func loadSamples(t *testing.T, mutate func(*configs.Config)) fixture {
	t.Helper()
	cfg := apptest.Config(t)
	if mutate != nil {
		mutate(&cfg)
	}
	a := apptest.Start(t, cfg, &apptest.LockedBuffer{})
	f := fixture{gateway: "http://" + a.Addr(app.RoleGateway), producer: "http://" + a.Addr(app.RoleProducer)}
	base := time.Now().UTC().Truncate(time.Minute).Add(-55 * time.Minute)
	f.start, f.end = base.Add(-5*time.Minute), base.Add(50*time.Minute)
	batch := make([]map[string]any, len(samples))
	for i, s := range samples {
		// A second apart within a bucket, so the order is known.
		ts := base.Add(time.Duration(s.bucket)*10*time.Minute + time.Duration(i)*time.Second)
		batch[i] = map[string]any{"timestamp": ts.Format(time.RFC3339), "level": s.level, "source": s.source,
			"message": s.message, "traceId": s.trace, "metadata": s.meta}
	}
	if status, body := post(t, f.producer+"/api/v1/logs/batch", batch); status != http.StatusAccepted {
		t.Fatalf("batch: %d %s", status, body)
	}
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		var page struct{ TotalElements int }
		getJSON(t, f.gateway+"/api/v1/logs?"+f.window().Encode(), &page, "Cache-Control", "no-cache")
		return page.TotalElements == len(samples), fmt.Sprintf("%d of %d logs searchable", page.TotalElements, len(samples))
	})
	return f
}

func (f fixture) window() url.Values {
	return url.Values{"startTime": {f.start.Format(time.RFC3339)}, "endTime": {f.end.Format(time.RFC3339)}}
}

func post(t *testing.T, u string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func getJSON(t *testing.T, u string, into any, headers ...string) http.Header {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %v: %.200s", u, resp.StatusCode, err, raw)
	}
	return resp.Header
}

// browser is one Chromium tab, with every request it made and every
// problem its console reported.
type browser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	problems []string
}

func openBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.WindowSize(1280, 800),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("lang", "en-US"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.problems = append(b.problems, fmt.Sprintf("console.%s(%s)", ev.Type, strings.Join(args, ", ")))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, text))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				b.problems = append(b.problems, fmt.Sprintf("browser log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

// do runs actions, each step bounded so that a broken page fails the test
// instead of hanging it.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v\nproblems so far: %q", err, b.problemList())
	}
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it yields want.
func waitFor[T any](b *browser, what, expr string, want T) {
	b.t.Helper()
	resiliencetest.Eventually(b.t, 20*time.Second, func() (bool, string) {
		got := eval[T](b, expr)
		return equal(got, want), fmt.Sprintf("%s: %v, want %v", what, got, want)
	})
}

func equal[T any](a, b T) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

const (
	jsMessages = `[...document.querySelectorAll('#results li .msg')].map(e => e.textContent)`
	jsLevels   = `[...document.querySelectorAll('#results li .level')].map(e => e.textContent)`
	jsTotal    = `document.getElementById('total').textContent`
	jsIdle     = `!document.body.classList.contains('busy')`
)

// waitResults waits for a search to settle with exactly these rows and
// the total the page shows for them.
func (b *browser) waitResults(what string, want []string, total string) {
	b.t.Helper()
	waitFor(b, what+": idle", jsIdle, true)
	waitFor(b, what+": rows", jsMessages, want)
	waitFor(b, what+": total", jsTotal, total)
}

// exactly is the total the page shows for an exact count.
func exactly(rows []string) string {
	if len(rows) == 1 {
		return "1 log"
	}
	return fmt.Sprintf("%d logs", len(rows))
}

func (b *browser) screenshot(name string, width, height int64, mobile bool) {
	b.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulatePortrait)
	}
	b.do(chromedp.EmulateViewport(width, height, opts...))
	waitFor(b, "layout after resize", `window.innerWidth`, width)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(b.t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %dx%d: %s", width, height, path)
}

func (b *browser) problemList() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.problems)
}

func (b *browser) requestList() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests)
}

// tailMissing reports whether the gateway has no live tail endpoint: then
// the page's attempt at it is a 404 that the browser logs, and the page
// polls instead.
func tailMissing(t *testing.T, gateway string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway+"/api/v1/logs/tail", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false // a stream that has sent no headers yet: it exists
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNotFound
}

func TestGatewayServesThePageToBrowsersAndJSONToTheRest(t *testing.T) {
	cfg := apptest.Config(t)
	a := apptest.Start(t, cfg, &apptest.LockedBuffer{})
	gateway := "http://" + a.Addr(app.RoleGateway)
	for _, tc := range []struct {
		path, accept, contentType string
	}{
		{"/", "", "application/json"},
		{"/", "*/*", "application/json"}, // curl
		{"/", "application/json", "application/json"},
		{"/", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"},
		{"/ui/", "", "text/html"},
		{"/ui/app.js", "", "text/javascript"},
	} {
		req, _ := http.NewRequest(http.MethodGet, gateway+tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) {
			t.Errorf("GET %s (Accept %q): %d %s, want 200 %s", tc.path, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), tc.contentType)
		}
		if tc.path == "/" {
			if !slices.Contains(resp.Header.Values("Vary"), "Accept") {
				t.Errorf("GET / (Accept %q): no Vary: Accept", tc.accept)
			}
			if tc.contentType == "application/json" {
				var index struct {
					Service   string
					Endpoints []string
				}
				if err := json.Unmarshal(raw, &index); err != nil || index.Service != "logengine-gateway" || !slices.Contains(index.Endpoints, "GET /ui/*") {
					t.Errorf("GET / (Accept %q): %s", tc.accept, raw)
				}
			}
		}
	}
}

// countLimit makes the page show an estimated total: a keyword, trace or
// metadata search counts at most this many rows.
const countLimit = 4

func TestWebUIInChromium(t *testing.T) {
	f := loadSamples(t, func(c *configs.Config) { c.QueryLimits.CountLimit = countLimit })
	b := openBrowser(t)
	all := messages(func(sample) bool { return true })
	everything := exactly(all)
	overLimit := fmt.Sprintf("more than %d logs", countLimit)

	// The whole window, as a bookmarked URL holds it.
	b.do(chromedp.Navigate(f.gateway + "/?" + f.window().Encode()))
	b.waitResults("every log", all, everything)

	// The histogram has the API's buckets, five of them holding logs.
	var hist struct{ Buckets []struct{ Total int } }
	getJSON(t, f.gateway+"/api/v1/logs/histogram?"+f.window().Encode(), &hist)
	waitFor(b, "histogram bars", `document.querySelectorAll('#histogram g.bucket').length`, len(hist.Buckets))
	waitFor(b, "histogram bars holding logs", `document.querySelectorAll('#histogram g.bucket:not([data-total="0"])').length`, 5)
	waitFor(b, "stats by level", `[...document.querySelectorAll('#stats-levels .stat')].map(e => e.textContent).join(' ')`,
		"DEBUG1 INFO5 WARN2 ERROR3 FATAL1")
	waitFor(b, "cache status", `document.getElementById('cache-status').textContent`, "cache: search MISS · histogram MISS · stats MISS")
	b.screenshot("webui-1280x800.png", 1280, 800, false)
	b.screenshot("webui-390x844.png", 390, 844, true)
	b.do(chromedp.EmulateViewport(1280, 800))

	// By level: a chip on, then off again.
	b.do(chromedp.Click(chromedp.CSS(`#levels button[data-level="ERROR"]`)))
	errors := messages(func(s sample) bool { return s.level == "ERROR" })
	b.waitResults("level ERROR", errors, exactly(errors))
	waitFor(b, "levels shown", jsLevels, []string{"ERROR", "ERROR", "ERROR"})
	waitFor(b, "URL", `new URLSearchParams(location.search).get('logLevel')`, "ERROR")
	b.do(chromedp.Click(chromedp.CSS(`#levels button[data-level="ERROR"]`)))
	b.waitResults("no level", all, everything)

	// By source, from the list the rollups give, with counts.
	b.do(chromedp.Click(chromedp.CSS(`#sources summary`)))
	waitFor(b, "source choices", `[...document.querySelectorAll('#source-list label')].map(e => e.textContent).join(' ')`,
		"auth-service4 api-gateway3 payment-service3 db-service2")
	b.do(chromedp.Click(chromedp.CSS(`#source-list input[value="auth-service"]`)))
	auth := messages(func(s sample) bool { return s.source == "auth-service" })
	b.waitResults("source auth-service", auth, exactly(auth))
	b.do(chromedp.Click(chromedp.CSS(`#source-list input[value="auth-service"]`)))
	b.waitResults("every source", all, everything)
	b.do(chromedp.Click(chromedp.CSS(`#sources summary`)))

	// By keyword, run with Enter after "/" focused the field; the keyword
	// is marked in each row.
	b.do(chromedp.Click(chromedp.CSS(`#total`)), chromedp.KeyEvent("/"))
	waitFor(b, "focus after /", `document.activeElement.id`, "keyword")
	b.do(chromedp.KeyEvent("LOGIN" + kb.Enter))
	logins := messages(func(s sample) bool { return strings.Contains(strings.ToLower(s.message), "login") })
	b.waitResults("keyword", logins, exactly(logins))
	waitFor(b, "marks", `[...document.querySelectorAll('#results mark')].map(e => e.textContent)`, []string{"login", "login", "login"})

	// Nothing matches: the page says so, with the window it searched.
	b.do(chromedp.SendKeys(chromedp.ID("keyword"), "-nowhere"+kb.Enter))
	b.waitResults("no match", []string{}, "0 logs")
	waitFor(b, "empty state", `document.getElementById('status').textContent.startsWith('No logs match in ') && document.getElementById('status').textContent.includes('(55 min)')`, true)

	// Esc clears the field; by metadata instead, past the count limit.
	b.do(chromedp.SendKeys(chromedp.ID("keyword"), kb.Escape))
	waitFor(b, "keyword cleared", `document.getElementById('keyword').value`, "")
	b.do(chromedp.SendKeys(chromedp.ID("meta"), "userId=42"+kb.Enter))
	user42 := messages(func(s sample) bool { return s.meta["userId"] == "42" })
	b.waitResults("meta.userId=42", user42, exactly(user42))

	// A row opens to its metadata; "same trace" finds the rest of its trace.
	b.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('#results li')].find(li => li.textContent.includes('Payment processed')).querySelector('.line')`)))
	waitFor(b, "details", `JSON.parse(document.querySelector('#results .detail pre').textContent).metadata.orderId`, "o-1")
	b.do(chromedp.Click(chromedp.CSS(`#results .detail .same-trace`)))
	b.waitResults("same trace", messages(func(s sample) bool { return s.trace == "trace-aaa" }), overLimit)
	waitFor(b, "trace field", `document.getElementById('traceId').value`, "trace-aaa")

	// Back returns to the metadata search.
	b.do(chromedp.NavigateBack())
	b.waitResults("back", user42, exactly(user42))
	waitFor(b, "meta field", `document.getElementById('meta').value`, "userId=42")

	// Same source around a log's time: ±5 min holds only that one.
	b.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('#results li')].find(li => li.textContent.includes('Token refreshed')).querySelector('.line')`)))
	b.do(chromedp.Click(chromedp.CSS(`#results .detail .same-source`)))
	b.waitResults("same source ±5 min", []string{"Token refreshed for alice"}, "1 log")

	// Pages of five follow the cursor until every log is listed.
	b.do(chromedp.Navigate(f.gateway + "/ui/?size=5&" + f.window().Encode()))
	b.waitResults("paged by five", all, everything)
	waitFor(b, "end of results", `document.getElementById('more').textContent`, "End of results")

	// Dragging across the first half of the chart zooms into it.
	box := eval[[]float64](b, `(() => { const r = document.getElementById('histogram').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
	y := box[1] + box[3]/2
	b.do(
		chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, box[0]+box[2]*0.02, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, box[0]+box[2]*0.3, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, box[0]+box[2]*0.5, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, box[0]+box[2]*0.5, y, chromedp.ButtonLeft),
	)
	early := messages(func(s sample) bool { return s.bucket <= 2 })
	b.waitResults("zoomed", early, exactly(early))

	// A keyword over 7 days is refused (422): the page says why and narrows
	// the window in one click.
	b.do(chromedp.Navigate(f.gateway + "/ui/?range=7d&keyword=login"))
	waitFor(b, "idle", jsIdle, true)
	waitFor(b, "refusal explained", `document.getElementById('banner').textContent.includes('narrow the time range')`, true)
	b.do(chromedp.Click(chromedp.CSS(`#banner button`)))
	b.waitResults("narrowed to 24 h", logins, exactly(logins))
	waitFor(b, "banner gone", `document.getElementById('banner').hidden`, true)

	// Live tail: a log sent now shows at the top.
	b.do(chromedp.Navigate(f.gateway + "/ui/"))
	b.waitResults("the last hour", all, everything)
	b.do(chromedp.Click(chromedp.ID("tail")))
	waitFor(b, "tail running", `/polling$|streaming$/.test(document.getElementById('tail-status').textContent)`, true)
	first := sendTagged(t, f, "Live tail check")
	sent := time.Now()
	waitFor(b, "tailed log at the top", `document.querySelector('#results li .msg').textContent`, first)
	t.Logf("the tailed log showed %v after it was accepted (%s)", time.Since(sent).Round(10*time.Millisecond),
		eval[string](b, `document.getElementById('tail-status').textContent`))
	waitFor(b, "total counts it", jsTotal, fmt.Sprintf("%d logs", len(samples)+1))

	// Paused, the tail holds what arrives until resumed.
	b.do(chromedp.Click(chromedp.ID("pause")))
	second := sendTagged(t, f, "Held while paused")
	waitFor(b, "held", `document.getElementById('pause').textContent`, "Resume (1 new)")
	waitFor(b, "not shown while paused", `document.querySelector('#results li .msg').textContent`, first)
	b.do(chromedp.Click(chromedp.ID("pause")))
	waitFor(b, "shown on resume", `document.querySelector('#results li .msg').textContent`, second)

	// Dark when the system is dark.
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	}))
	waitFor(b, "dark background", `getComputedStyle(document.body).backgroundColor`, "rgb(20, 23, 28)")
	b.screenshot("webui-dark-1280x800.png", 1280, 800, false)

	// Nothing went to another host, and the console stayed clean.
	host := strings.TrimPrefix(f.gateway, "http://")
	for _, r := range b.requestList() {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != host) {
			t.Errorf("the page requested %s: only %s may be asked", r, host)
		}
	}
	missing := tailMissing(t, f.gateway)
	for _, p := range b.problemList() {
		if strings.Contains(p, "(network)") && strings.Contains(p, "status of 422") && strings.Contains(p, "keyword=login") {
			continue // the browser's own line for the refusal asked for above
		}
		if missing && strings.Contains(p, "(network)") && strings.Contains(p, "status of 404") && strings.Contains(p, "/api/v1/logs/tail?") {
			continue // no tail endpoint on this gateway: the page fell back to polling
		}
		t.Errorf("console: %s", p)
	}
}

// sendTagged sends one log now with a message no other test sends.
func sendTagged(t *testing.T, f fixture, prefix string) string {
	t.Helper()
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	msg := prefix + " " + hex.EncodeToString(tag[:])
	if status, body := post(t, f.producer+"/api/v1/logs", map[string]any{"level": "WARN", "source": "tail-service", "message": msg}); status != http.StatusAccepted {
		t.Fatalf("send: %d %s", status, body)
	}
	return msg
}

// TestWebUIMarksStaleAnswers cuts PostgreSQL away from the gateway: the
// page then shows the last good answers, and says they are stale.
func TestWebUIMarksStaleAnswers(t *testing.T) {
	var proxy *resiliencetest.Proxy
	f := loadSamples(t, func(c *configs.Config) {
		u, err := url.Parse(c.Postgres.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy = resiliencetest.NewProxy(t, u.Host)
		u.Host = proxy.Addr()
		c.Postgres.URL = u.String()
		// The hot answers expire at once, so the next page load asks the store.
		c.Gateway.CacheTTL = time.Millisecond
	})
	defer proxy.Restore() // the pipeline stops cleanly after the test
	b := openBrowser(t)
	all := messages(func(sample) bool { return true })
	page := f.gateway + "/ui/?" + f.window().Encode()
	b.do(chromedp.Navigate(page))
	b.waitResults("with the store up", all, exactly(all))
	waitFor(b, "no banner", `document.getElementById('banner').hidden`, true)

	proxy.Cut()
	b.do(chromedp.Navigate(page))
	b.waitResults("with the store down", all, exactly(all))
	waitFor(b, "stale banner", `document.getElementById('banner').textContent.includes('STALE')`, true)
	waitFor(b, "stale in the footer", `document.getElementById('cache-status').textContent.includes('search STALE')`, true)
	for _, p := range b.problemList() {
		t.Errorf("console: %s", p)
	}
}

// TestWebUILiveTailStreams checks the page's side of the live tail's
// stream, in the wire format of GET /api/v1/logs/tail: Server-Sent Events,
// "event: log" with one log as the search API returns it, ": ping"
// comments, and "event: dropped" before the server closes a stream that
// fell behind. The stream is served here, in front of the real gateway,
// so the page is tested on it whether or not the gateway serves the tail.
func TestWebUILiveTailStreams(t *testing.T) {
	f := loadSamples(t, nil)
	gateway, err := url.Parse(f.gateway)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan string)
	var mu sync.Mutex
	var streams []url.Values // the query of each stream the page opened
	proxy := httputil.NewSingleHostReverseProxy(gateway)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/logs/tail" {
			proxy.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		streams = append(streams, r.URL.Query())
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		fmt.Fprint(w, ": ping\n\n")
		_ = rc.Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-events:
				fmt.Fprint(w, ev)
				_ = rc.Flush()
				if strings.HasPrefix(ev, "event: dropped") {
					return
				}
			}
		}
	}))
	defer front.Close()
	streamCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(streams)
	}
	logEvent := func(msg string) string {
		b, _ := json.Marshal(map[string]any{
			"id": uuid.NewString(), "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
			"logLevel": "WARN", "source": "stream-service", "message": msg, "traceId": "trace-stream",
		})
		return "event: log\ndata: " + string(b) + "\n\n"
	}

	b := openBrowser(t)
	b.do(chromedp.Navigate(front.URL + "/ui/?logLevel=WARN"))
	warns := messages(func(s sample) bool { return s.level == "WARN" })
	b.waitResults("WARN", warns, exactly(warns))
	b.do(chromedp.Click(chromedp.ID("tail")))
	waitFor(b, "streaming", `document.getElementById('tail-status').textContent`, "live tail: streaming")
	mu.Lock()
	if len(streams) != 1 || streams[0].Get("logLevel") != "WARN" {
		t.Errorf("streams opened: %v, want one with the page's filter logLevel=WARN", streams)
	}
	mu.Unlock()

	events <- logEvent("Streamed first")
	waitFor(b, "streamed log at the top", `document.querySelector('#results li .msg').textContent`, "Streamed first")

	// The server drops a stream that fell behind; the page opens another.
	events <- "event: dropped\ndata: {\"reason\":\"client too slow\"}\n\n"
	resiliencetest.Eventually(t, 20*time.Second, func() (bool, string) {
		return streamCount() == 2, fmt.Sprintf("%d streams opened, want a second after the drop", streamCount())
	})
	waitFor(b, "streaming again", `document.getElementById('tail-status').textContent`, "live tail: streaming")
	events <- logEvent("Streamed after the drop")
	waitFor(b, "log after the drop", `document.querySelector('#results li .msg').textContent`, "Streamed after the drop")
	waitFor(b, "rows", `document.querySelectorAll('#results li').length`, len(warns)+2)

	// Turning the tail off closes the stream.
	b.do(chromedp.Click(chromedp.ID("tail")))
	waitFor(b, "tail off", `document.getElementById('tail-status').textContent`, "")
	for _, p := range b.problemList() {
		t.Errorf("console: %s", p)
	}
}
