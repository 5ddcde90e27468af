package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/store/logs"
)

// DLQOptions are the flags of the dlq commands.
type DLQOptions struct {
	Reason string // validation, decode or store; "" = every reason
	Tenant string // "" = every tenant
	// Since is an RFC 3339 time, or a duration such as 24h meaning that
	// long ago; "" = since the start of the topic.
	Since string
	Limit int  // at most this many letters; 0 = all
	JSON  bool // print JSON instead of a table
	// RetryRefused makes replay send the letters the store refused too.
	RetryRefused bool
}

// dlqReasons are the values --reason accepts.
func dlqReasons() []string {
	return []string{ingest.ReasonValidation, ingest.ReasonDecode, ingest.ReasonStore}
}

// DLQList prints the letters of the DLQ topic that opts select.
func DLQList(ctx context.Context, cfg configs.Config, opts DLQOptions, out io.Writer) error {
	brokers, filter, logger, err := dlqSetup(cfg, opts, time.Now())
	if err != nil {
		return err
	}
	security, err := cfg.Kafka.SecurityOpts()
	if err != nil {
		return err
	}
	letters, err := ingest.ReadDLQ(ctx, brokers, cfg.Kafka.DLQTopic, filter, logger, security...)
	if err != nil {
		return dlqTopicHint(err)
	}
	if opts.JSON {
		return dlqWriteJSON(out, letters)
	}
	return dlqWriteLetters(out, letters)
}

// DLQReplay produces the letters opts select back to the log topic and
// prints what it replayed and what it skipped.
func DLQReplay(ctx context.Context, cfg configs.Config, opts DLQOptions, out io.Writer) error {
	brokers, filter, logger, err := dlqSetup(cfg, opts, time.Now())
	if err != nil {
		return err
	}
	security, err := cfg.Kafka.SecurityOpts()
	if err != nil {
		return err
	}
	lim := cfg.Ingest.Limits
	lim.Retention = cfg.Postgres.Maintenance.Retention
	began := time.Now()
	res, err := ingest.ReplayDLQ(ctx, brokers, cfg.Kafka.DLQTopic, cfg.Kafka.Topic, filter, lim, logger, security...)
	auditReplay(cfg, opts, began, res, err, logger)
	if err != nil {
		return dlqTopicHint(err)
	}
	if opts.JSON {
		return dlqWriteJSON(out, res)
	}
	w := &dlqWriter{w: out}
	w.printf("replayed %d records to %s; skipped %d\n", res.Replayed, cfg.Kafka.Topic, len(res.Skipped))
	for _, s := range res.Skipped {
		w.printf("%d@%d: %s\n", s.Partition, s.Offset, dlqCell(s.Reason))
	}
	return w.err
}

// dlqTopicHint adds to a missing-topic error what usually causes it.
func dlqTopicHint(err error) error {
	var mt *ingest.MissingTopicError
	if !errors.As(err, &mt) {
		return err
	}
	return fmt.Errorf("%w: is that the cluster logengine writes to, with its --topic and --dlq-topic? "+
		"(\"logengine serve\" creates them when it starts)", err)
}

// dlqSetup checks the configuration and the options of a dlq command.
func dlqSetup(cfg configs.Config, opts DLQOptions, now time.Time) ([]string, ingest.DLQFilter, *slog.Logger, error) {
	var f ingest.DLQFilter
	brokers := cfg.Kafka.Brokers
	if cfg.Kafka.Embedded() {
		addr := cfg.Kafka.EmbeddedAddr
		if addr == "" || strings.HasSuffix(addr, ":0") {
			addr = configs.Default().Kafka.EmbeddedAddr
		}
		return nil, f, nil, fmt.Errorf("the dlq commands read a running Kafka cluster: pass --kafka-brokers=host:9092 "+
			"(for a running \"logengine serve\" with its embedded broker, --kafka-brokers=%s)", addr)
	}
	if err := cfg.Validate(); err != nil {
		return nil, f, nil, err
	}
	var errs []error
	f.Reason = strings.ToLower(strings.TrimSpace(opts.Reason))
	if f.Reason != "" && !slices.Contains(dlqReasons(), f.Reason) {
		errs = append(errs, fmt.Errorf("--reason: must be one of %s, not %q", strings.Join(dlqReasons(), ", "), opts.Reason))
	}
	f.Tenant = strings.TrimSpace(opts.Tenant)
	if f.Tenant != "" && !logs.ValidTenant(f.Tenant) {
		errs = append(errs, fmt.Errorf("--tenant: must be %s, not %q", logs.TenantRule, opts.Tenant))
	}
	since, err := parseDLQSince(opts.Since, now)
	if err != nil {
		errs = append(errs, err)
	}
	f.Since = since
	if opts.Limit < 0 {
		errs = append(errs, fmt.Errorf("--limit: must not be negative (0 = all)"))
	}
	f.Limit = opts.Limit
	f.RetryRefused = opts.RetryRefused
	if err := errors.Join(errs...); err != nil {
		return nil, f, nil, err
	}
	return brokers, f, NewLogger(cfg.Log, os.Stderr), nil
}

// parseDLQSince reads --since: an RFC 3339 time, or a duration before now.
func parseDLQSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since: want an RFC 3339 time such as 2024-01-15T10:30:00Z or a duration such as 24h, not %q", s)
}

// dlqWriteLetters prints letters as an aligned table and a summary line.
func dlqWriteLetters(out io.Writer, letters []ingest.DLQRecord) error {
	w := &dlqWriter{w: out}
	counts := map[string]int{}
	if len(letters) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tTENANT\tREASON\tSTAGE\tORIGIN\tSOURCE\tPREVIEW")
		for _, d := range letters {
			source := dlqCell(d.Source)
			if source == "" {
				source = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
				dlqCell(d.Tenant), dlqCell(d.Reason), dlqCell(d.Stage), dlqCell(d.Origin()), source, d.Preview)
			counts[d.Reason]++
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	noun := "records"
	if len(letters) == 1 {
		noun = "record"
	}
	w.printf("%d %s", len(letters), noun)
	if len(counts) > 0 {
		reasons := make([]string, 0, len(counts))
		for r := range counts {
			reasons = append(reasons, r)
		}
		slices.SortFunc(reasons, func(a, b string) int {
			ia, ib := slices.Index(dlqReasons(), a), slices.Index(dlqReasons(), b)
			if ia < 0 {
				ia = len(dlqReasons())
			}
			if ib < 0 {
				ib = len(dlqReasons())
			}
			if ia != ib {
				return ia - ib
			}
			return strings.Compare(a, b)
		})
		parts := make([]string, len(reasons))
		for i, r := range reasons {
			name := dlqCell(r)
			if name == "" {
				name = "(none)"
			}
			parts[i] = fmt.Sprintf("%s %d", name, counts[r])
		}
		w.printf(" (%s)", strings.Join(parts, ", "))
	}
	w.printf("\n")
	return w.err
}

func dlqWriteJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// dlqCell makes a value safe for one table cell: no tab, no line break.
func dlqCell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// dlqWriter keeps the first write error.
type dlqWriter struct {
	w   io.Writer
	err error
}

func (e *dlqWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *dlqWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
