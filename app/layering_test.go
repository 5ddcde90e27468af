package app_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/logengine/logengine"

// layeringRules are DESIGN.md's import rules: a package under from must
// not import (directly or through others) a package under any of banned.
var layeringRules = []struct {
	from   string
	banned []string
}{
	// The model is below everyone and knows no transport or database.
	{"store/logs", []string{module + "/", "github.com/jackc/", "github.com/twmb/", "github.com/labstack/", "github.com/redis/", "net/http"}},
	{"store", []string{module + "/ingest", module + "/query", module + "/app", module + "/cache"}},
	{"ingest", []string{module + "/query", module + "/app"}},
	{"query", []string{module + "/ingest", module + "/app"}},
	{"cache", []string{module + "/store", module + "/query", module + "/ingest", module + "/app"}},
	{"resilience", []string{module + "/store", module + "/query", module + "/ingest", module + "/app", module + "/cache"}},
	{"metrics", []string{module + "/"}},
	{"configs", []string{module + "/app"}},
}

// TestLayering fails when a package imports across the layers DESIGN.md
// fixes, so the structure cannot drift unnoticed.
func TestLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		deps[f[0]] = f[1:]
	}
	if len(deps) < 10 {
		t.Fatalf("go list found only %d packages", len(deps))
	}
	checked := 0
	for pkg, ds := range deps {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, r := range layeringRules {
			if rel != r.from && !strings.HasPrefix(rel, r.from+"/") {
				continue
			}
			if r.from == "store" && strings.HasPrefix(rel, "store/logs") {
				continue // the model has its own, stricter rule
			}
			checked++
			for _, d := range ds {
				for _, b := range r.banned {
					if d == strings.TrimSuffix(b, "/") || strings.HasPrefix(d, b) || strings.HasPrefix(d, b+"/") {
						t.Errorf("%s depends on %s: %s must not import %s (DESIGN.md)", pkg, d, r.from, b)
					}
				}
			}
		}
		// Only main and app's own sub-packages may import app.
		if pkg != module && !strings.HasPrefix(pkg, module+"/app") {
			for _, d := range ds {
				if d == module+"/app" {
					t.Errorf("%s imports app: nothing below main may", pkg)
				}
			}
		}
	}
	if checked < 8 {
		t.Errorf("the rules matched only %d packages: has the layout changed?", checked)
	}
}
