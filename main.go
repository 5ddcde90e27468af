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
	"github.com/logengine/logengine/app/bench"
	"github.com/logengine/logengine/app/loadtest"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/store/logs"
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
		Use:   "logengine",
		Short: "Distributed log ingestion and query engine",
		Long: "logengine ingests logs over HTTP into Kafka, stores them in PostgreSQL and serves queries with a Redis cache.\n" +
			"Every flag of serve, migrate and dlq can also be set as LOGENGINE_<FLAG_NAME> in the environment\n" +
			"(--kafka-brokers → LOGENGINE_KAFKA_BROKERS) or as a key of the --config YAML file.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := configs.Resolve(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			cfg.Secrets(os.LookupEnv)
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run roles: --role=all|producer|consumer|gateway (or a comma list)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return app.Serve(cmd.Context(), cfg, version, stdout)
		},
	}
	cfg.RegisterFlags(serve.Flags())
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Create the database if missing, apply the schema and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return app.Migrate(cmd.Context(), cfg, stdout)
		},
	}
	cfg.RegisterMigrateFlags(migrate.Flags())
	var exp app.ExportOptions
	export := &cobra.Command{
		Use:   "export",
		Short: "Write stored logs as JSON lines, oldest first, for a window and the search filters",
		Long: "export reads the logs a search would select, oldest first, and writes one JSON object per line\n" +
			"(the fields of the search API). The blocks logs are stored in cannot be read by SQL: this is the\n" +
			"way to load logs into a table, another tool or a file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return app.Export(cmd.Context(), cfg, exp, stdout)
		},
	}
	cfg.RegisterMigrateFlags(export.Flags())
	cfg.Audit.RegisterFlags(export.Flags()) // an export is audited
	ef := export.Flags()
	ef.StringVar(&exp.Start, "start", "", "first time, RFC 3339 (default: the oldest log)")
	ef.StringVar(&exp.End, "end", "", "last time, RFC 3339, inclusive (default: the newest log)")
	ef.StringSliceVar(&exp.Levels, "level", nil, "only these levels (comma list)")
	ef.StringSliceVar(&exp.Sources, "source", nil, "only these sources (comma list)")
	ef.StringVar(&exp.Keyword, "keyword", "", "only messages containing this, case-insensitively")
	ef.StringVar(&exp.TraceID, "trace-id", "", "only this trace id")
	ef.StringArrayVar(&exp.Meta, "meta", nil, "only logs whose metadata key has this value: key=value (repeatable)")
	ef.StringSliceVar(&exp.Tenants, "tenant", []string{logs.DefaultTenant}, "the logs of these tenants (comma list); each line names its log's tenant")
	root.AddCommand(
		serve,
		migrate,
		export,
		dlqCommand(&cfg, stdout),
		loadtestCommand(stdout),
		benchCommand(stdout),
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
	cfg.RegisterDLQFlags(dlq.PersistentFlags())
	dlq.PersistentFlags().StringVar(&opts.Reason, "reason", "", "only letters of this reason: validation, decode or store")
	dlq.PersistentFlags().StringVar(&opts.Tenant, "tenant", "", "only letters of this tenant (replay keeps each letter's tenant)")
	dlq.PersistentFlags().StringVar(&opts.Since, "since", "", "only letters written since this RFC 3339 time, or this long ago (24h)")
	dlq.PersistentFlags().IntVar(&opts.Limit, "limit", 0, "at most this many letters (0 = all)")
	dlq.PersistentFlags().BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Produce the selected letters to the log topic again; the store keeps one copy of each event",
		Long: "replay produces the selected letters to the log topic again. It skips, and lists, the letters that would\n" +
			"only come back: not an event, still invalid, refused by the store (unless --retry-refused), or made by an\n" +
			"earlier replay whose original letter is still in the DLQ; so replaying never multiplies letters.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return app.DLQReplay(cmd.Context(), *cfg, opts, stdout)
		},
	}
	replay.Flags().BoolVar(&opts.RetryRefused, "retry-refused", false,
		"also replay the letters the store refused (reason store), once it was fixed to take them")
	dlq.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List the letters in the DLQ with their reason, origin and a preview",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return app.DLQList(cmd.Context(), *cfg, opts, stdout)
			},
		},
		replay,
	)
	return dlq
}

// benchCommand is the storage benchmark against a running pipeline.
func benchCommand(stdout io.Writer) *cobra.Command {
	cfg := bench.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Storage benchmark: send a week of logs to a running pipeline, query it uncached, report speed and size",
		Long: "bench sends --logs realistic logs spread over the last 7 days through the batch API, waits until every one is\n" +
			"countable, runs eight queries without the cache (Cache-Control: no-cache) and checks each answer exactly, then\n" +
			"reports ingest logs/s, freshness, bytes per log (database size plus WAL written, once merged) and peak RSS.\n" +
			"Run it against a fresh database: make bench-e2e does.",
		Args:              cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil }, // a client: no server settings
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.APIKey = os.Getenv(configs.EnvAPIKey)
			return bench.Run(cmd.Context(), cfg, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ProducerURL, "producer-url", cfg.ProducerURL, "producer base URL")
	f.StringVar(&cfg.GatewayURL, "gateway-url", cfg.GatewayURL, "gateway base URL")
	f.StringVar(&cfg.PostgresURL, "postgres-url", cfg.PostgresURL, "the pipeline's database, to measure its size")
	f.IntVar(&cfg.Logs, "logs", cfg.Logs, "logs to send")
	f.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "logs per request")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests at once")
	f.IntVar(&cfg.Repeats, "repeats", cfg.Repeats, "runs of each query")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the generated logs")
	f.IntVar(&cfg.ServerPID, "server-pid", cfg.ServerPID, "pid of the local server whose peak RSS to report")
	cmd.AddCommand(benchConsumersCommand(stdout))
	return cmd
}

// benchConsumersCommand measures how the stored rate scales with consumer
// processes: this binary's roles, started as processes on this machine.
func benchConsumersCommand(stdout io.Writer) *cobra.Command {
	cfg := bench.DefaultConsumersConfig()
	cmd := &cobra.Command{
		Use:   "consumers",
		Short: "Consumer scaling: stored logs/s and CPU with 1, 2, 3… consumer processes on one broker",
		Long: "bench consumers runs, for each count in --consumers, on a fresh database (<name of --postgres-url>_<count>):\n" +
			"a producer process hosting the embedded broker takes --logs logs (a week of them, as bench sends) while no consumer\n" +
			"runs; then that many consumer processes start at once and are timed until PostgreSQL holds every log. It prints one\n" +
			"line per count: stored logs/s from the consumers' start, the consumers' CPU seconds and logs per consumer CPU-second,\n" +
			"PostgreSQL's CPU seconds (its processes on this machine: this database's backends and the server's own), the broker's,\n" +
			"the send phase's logs/s and logs per producer CPU-second (broker included), the WAL written while consumed and the\n" +
			"database's size, per log. Processes, databases and the consumers' cache keys are removed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Binary = bin
			_, err = bench.RunConsumers(cmd.Context(), cfg, stdout)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.PostgresURL, "postgres-url", cfg.PostgresURL, "the PostgreSQL server; its database name is the prefix of the databases made and dropped")
	f.StringVar(&cfg.RedisAddr, "redis-addr", cfg.RedisAddr, `the consumers' Redis; "" runs them without the cache`)
	f.StringVar(&cfg.CachePrefix, "cache-prefix", cfg.CachePrefix, "the consumers' cache key prefix, whose keys are deleted after each run")
	f.IntVar(&cfg.Logs, "logs", cfg.Logs, "logs to send and store in each run")
	f.IntSliceVar(&cfg.Consumers, "consumers", cfg.Consumers, "consumer counts, one run each")
	f.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "partitions of the log topic (a partition is read by one consumer of the group)")
	f.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "logs per request while sending")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests at once while sending")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the generated logs")
	f.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for a process to be ready, or for every log to be stored")
	f.StringArrayVar(&cfg.ServeFlags, "serve-flag", nil, "a flag for every serve process, e.g. --serve-flag=--merge-block-rows=10000 (repeatable)")
	return cmd
}

// loadtestCommand drives a running pipeline with generated logs and
// queries, reports what a client saw, and checks that every accepted log
// was stored exactly once.
func loadtestCommand(stdout io.Writer) *cobra.Command {
	cfg := loadtest.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Send generated logs and queries to a running pipeline, measure them, and verify every accepted log is stored once",
		Long: "loadtest sends realistic logs to the producers (--rate logs/s, 0 = as fast as possible, for --duration or --count logs)\n" +
			"and queries to the gateway, then reads every accepted log back. It exits non-zero when nothing was accepted,\n" +
			"an accepted log is missing or stored twice, or verification timed out. Progress goes to stderr, the report to stdout.",
		Args: cobra.NoArgs,
		// A client of the pipeline: the server's --config file and
		// LOGENGINE_* variables (which have a --batch-size of their own)
		// must not change its settings.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.APIKey = os.Getenv(configs.EnvAPIKey)
			_, err := loadtest.Run(cmd.Context(), cfg, stdout, cmd.ErrOrStderr())
			return err
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&cfg.ProducerURLs, "producer-url", cfg.ProducerURLs, "producer base URL; a comma list (or the flag repeated) spreads batches over several in turn")
	f.StringVar(&cfg.GatewayURL, "gateway-url", cfg.GatewayURL, `gateway base URL for queries and verification; "" sends no queries and verifies nothing`)
	f.Float64Var(&cfg.Rate, "rate", cfg.Rate, "logs per second in total; 0 = as fast as possible")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to send logs (ignored when --count is set)")
	f.IntVar(&cfg.Count, "count", cfg.Count, "send this many logs instead of running for --duration (0 = use --duration)")
	f.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "logs per request; 1 posts single logs to /api/v1/logs")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent sending workers")
	f.BoolVar(&cfg.ClientIDs, "client-ids", cfg.ClientIDs, "send an id with every log (retries are then safe, and each log goes through the store's client-id index); without, the producer assigns ids and a request that failed without an answer is not sent again")
	f.Float64Var(&cfg.QueryRate, "query-rate", cfg.QueryRate, "gateway queries per second while sending; 0 = none")
	f.StringVar(&cfg.QueryMix, "query-mix", cfg.QueryMix, "weights of the query kinds recent, level, source, keyword and stats")
	f.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the generated logs (the same seed gives the same levels, sources and messages)")
	f.BoolVar(&cfg.JSON, "json", cfg.JSON, "print the report as one JSON object")
	f.DurationVar(&cfg.VerifyTimeout, "verify-timeout", cfg.VerifyTimeout, "how long to wait for every accepted log to be queryable")
	f.IntVar(&cfg.ServerPID, "server-pid", cfg.ServerPID, "pid of a local logengine whose peak RSS to report (/proc/<pid>/status); 0 = sample process_resident_memory_bytes from the producers' /metrics")
	return cmd
}
