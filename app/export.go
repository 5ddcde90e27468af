package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
)

// ExportOptions select the logs `logengine export` writes.
type ExportOptions struct {
	Start, End string   // RFC 3339; empty: unbounded
	Levels     []string // any of them
	Sources    []string // any of them
	Keyword    string   // case-insensitive substring of the message
	TraceID    string
	Meta       []string // key=value, each required
	Tenants    []string // whose logs; none: the default tenant's
}

// Export writes the selected logs to out as JSON lines, oldest first: the
// way to get logs out as rows, since SQL cannot read the blocks.
func Export(ctx context.Context, cfg configs.Config, opts ExportOptions, out io.Writer) error {
	q, err := opts.search()
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	pc := cfg.Postgres
	pc.MaxConns = 2
	s, err := store.Open(ctx, pc, NewLogger(cfg.Log, io.Discard), nil)
	if err != nil {
		return err
	}
	defer s.Close()
	began := time.Now()
	var rows int64
	w := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err = s.Export(ctx, q, func(e logs.Event) error { rows++; return enc.Encode(query.NewLogJSON(e)) })
	if err == nil {
		err = w.Flush()
	}
	auditExport(cfg, opts, began, rows, err, NewLogger(cfg.Log, os.Stderr))
	return err
}

func (o ExportOptions) search() (logs.Search, error) {
	var q logs.Search
	for _, b := range []struct {
		flag, v string
		to      *time.Time
	}{{"start", o.Start, &q.Start}, {"end", o.End, &q.End}} {
		if b.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.v)
		if err != nil {
			return q, fmt.Errorf("--%s: must be an RFC 3339 time, such as 2026-12-01T00:00:00Z", b.flag)
		}
		*b.to = t
	}
	if !q.Start.IsZero() && !q.End.IsZero() && q.End.Before(q.Start) {
		return q, fmt.Errorf("--end is before --start")
	}
	for _, l := range o.Levels {
		level, ok := logs.ParseLevel(l)
		if !ok {
			return q, fmt.Errorf("--level: unknown level %q; use one of %s", l, logs.LevelNames)
		}
		q.Levels = append(q.Levels, level)
	}
	q.Sources, q.Keyword, q.TraceID = o.Sources, o.Keyword, o.TraceID
	for _, t := range o.Tenants {
		if !logs.ValidTenant(t) {
			return q, fmt.Errorf("--tenant: %q must be %s", t, logs.TenantRule)
		}
		q.Tenants = append(q.Tenants, t)
	}
	for _, m := range o.Meta {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" {
			return q, fmt.Errorf("--meta: %q is not key=value", m)
		}
		q.Meta = append(q.Meta, logs.MetaMatch{Key: k, Value: v})
	}
	return q, nil
}
