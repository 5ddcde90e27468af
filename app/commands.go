package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/store"
)

// NewLogger builds the process's structured logger.
func NewLogger(cfg configs.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.Level)))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationAsMillis}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationAsMillis writes a time.Duration attribute as milliseconds, to the
// microsecond, under its key with a _ms suffix: the JSON handler would
// write nanoseconds and the text handler "1.5s", neither of which a query
// over the logs can compare or sum. The request and batch lines already
// log duration_ms so; this makes every other duration agree.
func durationAsMillis(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	if !strings.HasSuffix(a.Key, "_ms") {
		a.Key += "_ms"
	}
	a.Value = slog.Float64Value(float64(a.Value.Duration().Microseconds()) / 1000)
	return a
}

// Serve runs the configured roles until ctx ends.
func Serve(ctx context.Context, cfg configs.Config, version string, logs io.Writer) error {
	logger := NewLogger(cfg.Log, logs)
	a, err := New(cfg, version, logger)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// Migrate creates the database if needed and applies the schema.
func Migrate(ctx context.Context, cfg configs.Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := NewLogger(cfg.Log, out)
	s, err := store.Open(ctx, cfg.Postgres, logger, nil)
	if err != nil {
		return err
	}
	s.Close()
	_, err = fmt.Fprintln(out, "schema is up to date")
	return err
}
