// Package flagvalue holds the flag types logengine's components share when
// they register their own flags. It imports nothing of logengine's, so any
// component may use it.
package flagvalue

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// DaysVar defines a duration flag that also takes whole days (7d), for
// retention-like settings where hours would be awkward.
func DaysVar(fs *pflag.FlagSet, p *time.Duration, name, usage string) {
	fs.Var((*days)(p), name, usage)
}

type days time.Duration

// String formats whole days as Nd.
func (d *days) String() string {
	v := time.Duration(*d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", v/(24*time.Hour))
	}
	return v.String()
}

// Set parses Nd or a Go duration.
func (d *days) Set(s string) error {
	v, err := ParseDays(s)
	if err != nil {
		return err
	}
	*d = days(v)
	return nil
}

// ParseDays parses whole days (7d) or a Go duration (36h).
func ParseDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var whole int
		if _, err := fmt.Sscanf(n, "%d", &whole); err != nil || fmt.Sprint(whole) != n {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(whole) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// Type names the flag's kind in --help.
func (d *days) Type() string { return "duration" }

// ListVar defines a flag of a comma list; blanks around items and empty
// items are dropped, so " a , ,b" is [a b].
func ListVar(fs *pflag.FlagSet, p *[]string, name string, value []string, usage string) {
	*p = value
	fs.Var((*list)(p), name, usage)
}

type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(s string) error {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*l = out
	return nil
}

func (l *list) Type() string { return "list" }

// Problems collects a component's configuration errors, each naming its flag.
type Problems []error

// Add records that flag's value cannot work.
func (p *Problems) Add(flag, format string, args ...any) {
	*p = append(*p, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
}

// AtLeast1 records each named integer below 1.
func (p *Problems) AtLeast1(values map[string]int64) {
	for _, name := range sortedKeys(values) {
		if values[name] < 1 {
			p.Add(name, "must be at least 1")
		}
	}
}

// Positive records each named duration that is zero or negative.
func (p *Problems) Positive(values map[string]time.Duration) {
	for _, name := range sortedKeys(values) {
		if values[name] <= 0 {
			p.Add(name, "must be positive")
		}
	}
}

// NotNegative records each named duration below zero.
func (p *Problems) NotNegative(values map[string]time.Duration) {
	for _, name := range sortedKeys(values) {
		if values[name] < 0 {
			p.Add(name, "must not be negative")
		}
	}
}

// Err joins the problems, nil when there are none.
func (p Problems) Err() error { return errors.Join(p...) }

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// Secret is a secret as it is now: the first line of file when one is
// named (read at each call, so a rotated secret is picked up), else value.
// flag names the file's flag in an error.
func Secret(value, file, flag string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
