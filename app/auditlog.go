package app

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/logengine/logengine/app/audit"
	"github.com/logengine/logengine/app/auth"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

// newAuditLog opens the audit log of a serving process and has it record
// every reload of the API keys (an admin action nobody requests over
// HTTP). Nil when --audit-log=off.
func newAuditLog(cfg configs.Config, logger *slog.Logger, reg prometheus.Registerer, az *auth.Authorizer) (*audit.Logger, error) {
	l, err := audit.New(cfg.Audit, os.Stderr, os.Stdout, logger, reg)
	if err != nil || l == nil {
		return nil, err
	}
	az.OnReload(func(trigger string, keys int, err error) {
		r := audit.Record{
			Kind: audit.KindAdmin, Principal: audit.PrincipalSystem, Rows: int64(keys), RowsSet: true,
			Query: action(url.Values{"action": {"reload_keys"}, "file": {cfg.Auth.KeysFile}, "trigger": {trigger}}),
		}
		if err != nil {
			r.Error = err.Error()
		}
		l.Log(r)
	})
	return l, nil
}

// action is an action's options as a record's query.
func action(v url.Values) string { return audit.Normalize(v.Encode(), "", nil, false) }

// auditReplay records a DLQ replay: the topics and filters, and what it
// replayed or why it failed.
func auditReplay(cfg configs.Config, opts DLQOptions, began time.Time, res ingest.ReplayResult, replayErr error, logger *slog.Logger) {
	v := url.Values{"dlq_topic": {cfg.Kafka.DLQTopic}, "topic": {cfg.Kafka.Topic}}
	if opts.Reason != "" {
		v.Set("reason", opts.Reason)
	}
	if opts.Since != "" {
		v.Set("since", opts.Since)
	}
	if opts.Limit > 0 {
		v.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.RetryRefused {
		v.Set("retry_refused", "true")
	}
	auditCommand(cfg.Audit, audit.Record{Time: began, Kind: audit.KindDLQReplay, Query: action(v), Rows: int64(res.Replayed),
		Details: []slog.Attr{slog.Int("skipped", len(res.Skipped))}}, replayErr, logger)
}

// auditExport records an export: its filters and the logs it wrote.
func auditExport(cfg configs.Config, opts ExportOptions, began time.Time, rows int64, exportErr error, logger *slog.Logger) {
	v := url.Values{"start": {opts.Start}, "end": {opts.End}, "level": opts.Levels, "source": opts.Sources,
		"keyword": {opts.Keyword}, "trace_id": {opts.TraceID}, "meta": opts.Meta}
	for k, vs := range v {
		if len(vs) == 0 || (len(vs) == 1 && vs[0] == "") {
			delete(v, k)
		}
	}
	auditCommand(cfg.Audit, audit.Record{Time: began, Kind: audit.KindExport, Query: action(v), Rows: rows}, exportErr, logger)
}

// auditCommand writes the record of a command run by an OS user (its
// principal; the host is its client). An audit log that cannot be opened
// fails nothing: the command's work is done by then, and the error is
// logged.
func auditCommand(cfg configs.Audit, r audit.Record, cmdErr error, logger *slog.Logger) {
	l, err := audit.New(cfg, os.Stderr, os.Stdout, logger, nil)
	if err != nil {
		logger.Error("this command is not in the audit log", "err", err)
		return
	}
	if l == nil {
		return
	}
	stop := l.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stop(ctx)
	}()
	r.Principal = osUser()
	r.Client, _ = os.Hostname()
	r.Duration = time.Since(r.Time)
	r.RowsSet = cmdErr == nil
	if cmdErr != nil {
		r.Error = cmdErr.Error()
	}
	l.Log(r)
}

// osUser names who runs this command.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "uid " + strconv.Itoa(os.Getuid())
}
