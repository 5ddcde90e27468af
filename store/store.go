// Package store is the PostgreSQL side: pool, embedded migrations, batch
// writer, partitions, query SQL; it knows nothing of HTTP or Kafka.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/store/block"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

// Config configures Open.
type Config struct {
	// URL is a postgres:// URL, e.g.
	// postgres://postgres@127.0.0.1:5432/logengine?sslmode=disable.
	URL string
	// MaxConns is the pool size.
	MaxConns int32
	// StatementTimeout bounds each read (Search, Stats) inside PostgreSQL;
	// 0 means none.
	StatementTimeout time.Duration
	// PartitionPeriod is the time range of one partition: 24h or a whole
	// number of hours dividing a day.
	PartitionPeriod time.Duration
	// PartitionsPerWrite bounds the partitions one batch's write creates;
	// logs of other new periods wait in fresh blocks for the merger to
	// create theirs.
	PartitionsPerWrite int
	// Maintenance is what RunMaintenance does.
	Maintenance MaintenanceConfig
}

// DefaultConfig is the configuration with nothing set. Open takes a zero
// MaxConns, PartitionPeriod, PartitionsPerWrite or merge setting to mean
// these defaults.
func DefaultConfig() Config {
	return Config{
		URL:                "postgres://postgres@127.0.0.1:5432/logengine?sslmode=disable",
		MaxConns:           8,
		StatementTimeout:   10 * time.Second,
		PartitionPeriod:    24 * time.Hour,
		PartitionsPerWrite: 2,
		Maintenance: MaintenanceConfig{
			Every:      time.Minute,
			Retention:  7 * 24 * time.Hour,
			Ahead:      2,
			MergeEvery: time.Second,
			MergeRows:  5000,
		},
	}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.URL, "postgres-url", c.URL, "PostgreSQL URL; the database is created if missing")
	fs.Int32Var(&c.MaxConns, "postgres-max-conns", c.MaxConns, "PostgreSQL connection pool size")
	fs.DurationVar(&c.StatementTimeout, "statement-timeout", c.StatementTimeout, "PostgreSQL statement timeout of one query (0 = none)")
	fs.DurationVar(&c.PartitionPeriod, "partition-period", c.PartitionPeriod, "time range of one log partition: 24h or whole hours dividing a day; fixed when the database is created")
	fs.IntVar(&c.PartitionsPerWrite, "partitions-per-write", c.PartitionsPerWrite, "most partitions one batch's write creates; logs of further new periods wait for the merger, which creates theirs off the ingest path")
	flagvalue.DaysVar(fs, &c.Maintenance.Retention, "retention", "drop partitions older than this (e.g. 7d, 36h); 0 keeps everything")
	fs.DurationVar(&c.Maintenance.Every, "maintenance-interval", c.Maintenance.Every, "pause between maintenance passes (partitions ahead, retention, vacuum and statistics)")
	fs.DurationVar(&c.Maintenance.MergeEvery, "merge-interval", c.Maintenance.MergeEvery, "pause between merges of fresh blocks when there is nothing to merge")
	fs.IntVar(&c.Maintenance.MergeRows, "merge-block-rows", c.Maintenance.MergeRows, "rows of a block the merger writes (larger blocks compress better and are skipped as one; smaller ones decode faster)")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *Config) Validate() error {
	var p flagvalue.Problems
	if c.URL == "" {
		p.Add("postgres-url", "must not be empty")
	}
	p.AtLeast1(map[string]int64{"postgres-max-conns": int64(c.MaxConns)})
	if err := ValidPartitionPeriod(c.PartitionPeriod); err != nil {
		p.Add("partition-period", "%v", err)
	}
	p.AtLeast1(map[string]int64{"partitions-per-write": int64(c.PartitionsPerWrite)})
	p.NotNegative(map[string]time.Duration{"statement-timeout": c.StatementTimeout, "retention": c.Maintenance.Retention})
	p.Positive(map[string]time.Duration{"maintenance-interval": c.Maintenance.Every, "merge-interval": c.Maintenance.MergeEvery})
	if c.Maintenance.MergeRows < 1000 || c.Maintenance.MergeRows > block.MaxRows {
		p.Add("merge-block-rows", "must be between 1000 and %d", block.MaxRows)
	}
	return p.Err()
}

// defaultConnectTimeout stops Open hanging for minutes on a host that
// drops packets; a connect_timeout in the URL wins.
const defaultConnectTimeout = 10 * time.Second

// Store is a handle on the logs database. It is safe for concurrent use.
type Store struct {
	cfg     Config
	pool    *pgxpool.Pool
	log     *slog.Logger
	reg     prometheus.Registerer
	m       *metrics
	target  string // host:port/db, for messages; never the password
	timeout time.Duration
	period  time.Duration // of one partition

	// fresh encodes the blocks of batches, merged those of the merger;
	// either decodes any block.
	fresh, merged *block.Codec

	mu         sync.Mutex
	partitions map[string]struct{} // partitions known to exist
	// writtenSinceVacuum names the partitions this process wrote blocks
	// into since maintenance last vacuumed them (PostgreSQL's statistics
	// tell of other processes' writes, but up to seconds late).
	writtenSinceVacuum map[string]struct{}
	tenantRetention    tenantRetention
	// freshVacuumed is when the merger last vacuumed the fresh blocks
	// (only the merger, one goroutine, uses it).
	freshVacuumed time.Time
}

// Open connects to PostgreSQL, creating the database named in the URL if it
// is missing, and brings the schema up to date. It also creates the daily
// partitions for yesterday, today and tomorrow (UTC). reg may be nil.
func Open(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	return openStore(ctx, cfg, logger, reg, false)
}

// openStore is Open, or OpenReadOnly when readOnly.
func openStore(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer, readOnly bool) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultConfig().MaxConns
	}
	cfg.StatementTimeout = max(cfg.StatementTimeout, 0)
	if cfg.PartitionPeriod == 0 {
		cfg.PartitionPeriod = DefaultConfig().PartitionPeriod
	}
	if cfg.PartitionsPerWrite == 0 {
		cfg.PartitionsPerWrite = DefaultConfig().PartitionsPerWrite
	}
	if cfg.Maintenance.MergeRows == 0 {
		cfg.Maintenance.MergeRows = DefaultConfig().Maintenance.MergeRows
	}
	if cfg.Maintenance.MergeEvery == 0 {
		cfg.Maintenance.MergeEvery = DefaultConfig().Maintenance.MergeEvery
	}
	if err := ValidPartitionPeriod(cfg.PartitionPeriod); err != nil {
		return nil, err
	}

	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("store: %w", err)
	}
	pcfg.MaxConns = cfg.MaxConns
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	target := describe(pcfg.ConnConfig)
	if readOnly {
		readOnlySession(pcfg)
	}

	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to PostgreSQL at %s: %w", target, err)
	}
	err = pool.Ping(ctx)
	if pgCode(err) == pgerrcode.InvalidCatalogName && !readOnly { // the database is missing
		if err = createDatabase(ctx, pcfg.ConnConfig, logger); err == nil {
			err = pool.Ping(ctx)
		}
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to PostgreSQL at %s: %w", target, err)
	}

	s := &Store{
		cfg:                cfg,
		pool:               pool,
		log:                logger,
		reg:                reg,
		target:             target,
		timeout:            cfg.StatementTimeout,
		period:             cfg.PartitionPeriod,
		partitions:         make(map[string]struct{}),
		writtenSinceVacuum: make(map[string]struct{}),
	}
	// Fresh blocks are written on the ingest path, and merged away soon:
	// the fastest compression. The merger writes what is kept, at zstd's
	// default level; its "better" level saved 0.8 bytes per log (2 %) for
	// a fifth more of the merger's CPU, the largest share of the
	// consumer's (measured under make bench-e2e with --pprof).
	if s.fresh, err = block.NewCodec(block.CompressionFastest); err == nil {
		s.merged, err = block.NewCodec(block.CompressionDefault)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if s.m, err = newMetrics(reg, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: register metrics: %w", err)
	}
	open := s.open
	if readOnly {
		open = s.openReadOnly
	}
	if err := open(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open is the part of Open that needs a working Store.
func (s *Store) open(ctx context.Context) error {
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	if err := s.checkPeriod(ctx); err != nil {
		return err
	}
	if err := s.loadPartitions(ctx); err != nil {
		return err
	}
	now := time.Now().UTC()
	if err := s.EnsurePartitions(ctx, now.Add(-s.period), now.Add(s.period)); err != nil {
		return err
	}
	if err := s.convertMinuteRollups(ctx); err != nil {
		return fmt.Errorf("store: convert the minute rollups: %w", err)
	}
	return s.convertRows(ctx)
}

// ValidPartitionPeriod accepts 24h and the whole hours dividing a day.
func ValidPartitionPeriod(d time.Duration) error {
	if d <= 0 || d%time.Hour != 0 || (24*time.Hour)%d != 0 {
		return fmt.Errorf("partition period %s must be 24h or a whole number of hours dividing a day (1h, 2h, 3h, 4h, 6h, 8h, 12h)", d)
	}
	return nil
}

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping PostgreSQL at %s: %w", s.target, err)
	}
	return nil
}

// Config is the configuration the store runs with.
func (s *Store) Config() Config { return s.cfg }

// Close closes the pool, waiting for connections in use to be released,
// and unregisters the metrics so the registry can serve a new Store.
func (s *Store) Close() {
	s.pool.Close()
	s.m.unregister(s.reg)
	s.fresh.Close()
	s.merged.Close()
}

// createDatabase creates the database cc names, connecting to the
// "postgres" maintenance database with the same credentials.
func createDatabase(ctx context.Context, cc *pgx.ConnConfig, logger *slog.Logger) error {
	admin := cc.Copy()
	name := admin.Database
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	defer conn.Close(context.Background())

	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	switch pgCode(err) {
	case "":
		if err != nil {
			return fmt.Errorf("create database %q: %w", name, err)
		}
		logger.Info("created database", "database", name)
	case pgerrcode.DuplicateDatabase: // a concurrent Open won the race
	case pgerrcode.UniqueViolation:
		// On pg_database_datname_index: the same race, caught one step
		// later inside PostgreSQL.
	default:
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// describe names the server and database of cc without credentials.
func describe(cc *pgx.ConnConfig) string {
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database
}

// pgCode is the SQLSTATE of err, or "" when err is not from PostgreSQL.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// inClass reports whether code belongs to the SQLSTATE class of classCode
// (the first two characters). pgerrcode's Is<Class> helpers list the codes
// known when it was generated; comparing the class also covers a code from
// a newer server or an extension, which must not turn a data error into a
// retried one.
func inClass(code, classCode string) bool {
	return len(code) == 5 && code[:2] == classCode[:2]
}

// DataError reports an event PostgreSQL cannot store (or the store knows it
// cannot). IsDataError recognises it.
type DataError struct {
	Reason string
}

func (e *DataError) Error() string { return "store: invalid data: " + e.Reason }

// IsDataError reports whether err means the data itself was rejected: a
// data exception (SQLSTATE class 22, such as a NUL byte in text,
// character_not_in_repertoire, or invalid jsonb, invalid_text_representation),
// a program limit (class 54: a source too long for its index row) or a
// DataError. Retrying such a batch cannot succeed; the caller should bisect
// it to isolate the poison event.
// Connection, timeout and cancellation errors are never data errors.
func IsDataError(err error) bool {
	var de *DataError
	if errors.As(err, &de) {
		return true
	}
	code := pgCode(err)
	return inClass(code, pgerrcode.DataException) || inClass(code, pgerrcode.ProgramLimitExceeded)
}

// IsQueryError reports whether err is PostgreSQL refusing one query (a bad
// value, a statement timeout, a constraint) while the server itself is
// fine. Such errors must not open a breaker that guards the server; every
// other error (no connection, server shutting down, too many clients) may.
func IsQueryError(err error) bool {
	if err == nil || IsDataError(err) {
		return err != nil
	}
	code := pgCode(err)
	if code == "" {
		return false
	}
	switch {
	case inClass(code, pgerrcode.ConnectionException),
		inClass(code, pgerrcode.InsufficientResources),
		inClass(code, pgerrcode.SystemError):
		return false
	case inClass(code, pgerrcode.OperatorIntervention):
		// A statement timeout is one query; the rest of the class (57P0x)
		// is the server going away.
		return code == pgerrcode.QueryCanceled
	}
	return true
}
