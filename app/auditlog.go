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

// auditReplay records a DLQ replay: the OS user who ran it, the topics and
// filters, and what it replayed or why it failed. An audit log that
// cannot be opened fails nothing: the replay is done by then, and the
// error is logged.
func auditReplay(cfg configs.Config, opts DLQOptions, began time.Time, res ingest.ReplayResult, replayErr error, logger *slog.Logger) {
	l, err := audit.New(cfg.Audit, os.Stderr, os.Stdout, logger, nil)
	if err != nil {
		logger.Error("the replay is not in the audit log", "err", err)
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
	host, _ := os.Hostname()
	r := audit.Record{
		Time: began, Kind: audit.KindDLQReplay, Principal: osUser(), Client: host, Query: action(v),
		Rows: int64(res.Replayed), RowsSet: replayErr == nil, Duration: time.Since(began),
		Details: []slog.Attr{slog.Int("skipped", len(res.Skipped))},
	}
	if replayErr != nil {
		r.Error = replayErr.Error()
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
