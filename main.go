// Command logengine runs the log pipeline: any of its roles, or all of them.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "logengine:", err)
		os.Exit(1)
	}
}

// run parses the command line and dispatches; the work is in app.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := configs.Default()
	root := &cobra.Command{
		Use:           "logengine",
		Short:         "Distributed log ingestion and query engine",
		Long:          "logengine ingests logs over HTTP into Kafka, stores them in PostgreSQL and serves queries with a Redis cache.\nEvery flag can also be set as LOGENGINE_<FLAG_NAME> in the environment or as a key of the --config YAML file.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return configs.Resolve(cmd.Flags(), os.LookupEnv)
		},
	}
	cfg.RegisterFlags(root.PersistentFlags())
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		&cobra.Command{
			Use:   "serve",
			Short: "Run roles: --role=all|producer|consumer|gateway (or a comma list)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return app.Serve(cmd.Context(), cfg, version, stdout)
			},
		},
		&cobra.Command{
			Use:   "migrate",
			Short: "Create the database if missing, apply the schema and exit",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return app.Migrate(cmd.Context(), cfg, stdout)
			},
		},
		dlqCommand(&cfg, stdout),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := fmt.Fprintln(stdout, "logengine", version)
				return err
			},
		},
	)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// dlqCommand groups the dead-letter tools; they take the same --kafka-brokers.
func dlqCommand(cfg *configs.Config, stdout io.Writer) *cobra.Command {
	var opts app.DLQOptions
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and replay the dead-letter topic (needs --kafka-brokers)",
	}
	dlq.PersistentFlags().StringVar(&opts.Reason, "reason", "", "only letters of this reason: validation, decode or store")
	dlq.PersistentFlags().StringVar(&opts.Since, "since", "", "only letters written since this RFC 3339 time, or this long ago (24h)")
	dlq.PersistentFlags().IntVar(&opts.Limit, "limit", 0, "at most this many letters (0 = all)")
	dlq.PersistentFlags().BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	dlq.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List the letters in the DLQ with their reason, origin and a preview",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return app.DLQList(cmd.Context(), *cfg, opts, stdout)
			},
		},
		&cobra.Command{
			Use:   "replay",
			Short: "Produce the selected letters to the log topic again; the store keeps one copy of each event",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return app.DLQReplay(cmd.Context(), *cfg, opts, stdout)
			},
		},
	)
	return dlq
}
