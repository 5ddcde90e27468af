package configs_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/logengine/logengine/configs"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite configs/logengine.yaml from the flags")

const exampleHeader = `# logengine configuration file: ` + "`logengine serve --config configs/logengine.yaml`" + `.
#
# Every key is a command-line flag of the same name and an environment
# variable LOGENGINE_<KEY> (upper case, '-' → '_'). Precedence:
# command-line flag > environment variable > this file > built-in default.
# The values below are the defaults; delete what you do not change.
# Generated from the flags: go test ./configs -run TestExampleFile -update
`

// exampleFile is configs/logengine.yaml as the flags describe it.
func exampleFile() []byte {
	cfg := configs.Default()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SortFlags = false
	cfg.RegisterFlags(fs)
	var b bytes.Buffer
	b.WriteString(exampleHeader)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		value := f.DefValue
		switch f.Value.Type() {
		case "string", "list":
			value = strconv.Quote(value)
		}
		fmt.Fprintf(&b, "\n# %s (env %s)\n%s: %s\n", f.Usage, configs.EnvName(f.Name), f.Name, value)
	})
	return b.Bytes()
}

// TestExampleFile keeps configs/logengine.yaml generated from the flags,
// so it names every flag with its help and default, and loads as the
// defaults.
func TestExampleFile(t *testing.T) {
	want := exampleFile()
	if *update {
		if err := os.WriteFile("logengine.yaml", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("logengine.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("configs/logengine.yaml is not what the flags say; run: go test ./configs -run TestExampleFile -update")
	}
	// Loading the example changes nothing: its values are the defaults.
	loaded := configs.Default()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	loaded.RegisterFlags(fs)
	if err := fs.Parse([]string{"--config", "logengine.yaml"}); err != nil {
		t.Fatal(err)
	}
	if err := configs.Resolve(fs, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	loaded.File = ""
	if !reflect.DeepEqual(loaded, configs.Default()) {
		t.Errorf("the example's values differ from the defaults:\n%+v\n%+v", loaded, configs.Default())
	}
}
