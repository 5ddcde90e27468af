package configs_test

import (
	"testing"

	"github.com/logengine/logengine/configs"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"os"
)

// TestExampleFileDocumentsEveryFlag keeps configs/logengine.yaml complete
// and loadable: it names every flag with its default value.
func TestExampleFileDocumentsEveryFlag(t *testing.T) {
	raw, err := os.ReadFile("logengine.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		if _, ok := doc[f.Name]; !ok {
			t.Errorf("configs/logengine.yaml does not document %q", f.Name)
		}
	})
	// Loading the example changes nothing: its values are the defaults.
	loaded := configs.Default()
	fs = pflag.NewFlagSet("test", pflag.ContinueOnError)
	loaded.RegisterFlags(fs)
	if err := fs.Parse([]string{"--config", "logengine.yaml"}); err != nil {
		t.Fatal(err)
	}
	if err := configs.Resolve(fs, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	loaded.File = ""
	if loaded != configs.Default() {
		t.Errorf("the example's values differ from the defaults:\n%+v\n%+v", loaded, configs.Default())
	}
}
