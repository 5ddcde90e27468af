// Command benchstore measures the log store at scale: it fills a scratch
// database with a realistic week of logs, then times the queries the
// gateway makes, the ingest rate of store.WriteBatch and the bytes each
// log costs, and prints a plain text report.
//
//	go run ./store/benchstore [-rows N] [-postgres-url URL] [-runs R] [-keep]
//	    [-partition-period 24h]
//
// The database (logengine_bench by default) is dropped and rebuilt at
// start, so every run measures the same thing, and dropped again at the
// end. With -keep it is left in place, and reused as it is by the next
// -keep run of the same size.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"golang.org/x/sync/errgroup"
)

const (
	defaultURL = "postgres://postgres@127.0.0.1:5432/logengine_bench?sslmode=disable"
	week       = 7 * 24 * time.Hour
	// chunkRows rows per INSERT ... SELECT: large enough that statement
	// overhead vanishes, small enough that no statement runs for long.
	chunkRows = 500_000
	// ingestRows events go through WriteBatch in batches of ingestBatch,
	// the consumer's batch size.
	ingestRows  = 200_000
	ingestBatch = 10_000
	warmups     = 3
	// queryBudget bounds the runs of one query: a pathological plan at
	// 10M rows cannot hold the benchmark for R × statement timeout.
	queryBudget = 30 * time.Second
)

type options struct {
	rows   int64
	url    string
	runs   int
	keep   bool
	period time.Duration
}

func main() {
	rows := int64(1_000_000)
	if v := os.Getenv("ROWS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench-store: ROWS=%q is not a positive number\n", v)
			os.Exit(2)
		}
		rows = n
	}
	var o options
	flag.Int64Var(&o.rows, "rows", rows, "rows to generate over the last 7 days (default from env ROWS)")
	flag.StringVar(&o.url, "postgres-url", defaultURL, "scratch database, dropped and recreated; its name must contain \"bench\"")
	flag.IntVar(&o.runs, "runs", 30, "timed runs of each query, after 3 warm-ups")
	flag.BoolVar(&o.keep, "keep", false, "keep the database at the end, and reuse it when it already holds -rows rows")
	flag.DurationVar(&o.period, "partition-period", 24*time.Hour, "partition period of the store (24h, or hours dividing a day)")
	flag.Parse()
	if o.rows < rareEvery || o.runs < 1 {
		fmt.Fprintf(os.Stderr, "bench-store: -rows must be at least %d and -runs at least 1\n", rareEvery)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-store:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	cc, err := pgx.ParseConfig(o.url)
	if err != nil {
		return err
	}
	name := cc.Database
	// A guard against pointing the benchmark at real logs: it drops the
	// database it is given.
	if !strings.Contains(name, "bench") {
		return fmt.Errorf("database %q: the name must contain \"bench\", since the benchmark drops it", name)
	}

	reuse := o.keep && holdsRows(ctx, o, cc)
	if !reuse {
		if err := dropDatabase(ctx, cc); err != nil {
			return err
		}
	}
	if !o.keep {
		defer func() {
			// A fresh context: an interrupted run cleans up too.
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := dropDatabase(cctx, cc); err != nil {
				fmt.Fprintln(os.Stderr, "bench-store:", err)
			}
		}()
	}

	// The store creates the database and its schema, as in production.
	st, err := store.Open(ctx, store.Config{
		URL:              o.url,
		StatementTimeout: store.DefaultConfig().StatementTimeout,
		PartitionPeriod:  o.period,
	}, nil, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	// A second pool for what the store has no API for: bulk generation,
	// VACUUM, catalog sizes.
	pool, err := pgxpool.New(ctx, o.url)
	if err != nil {
		return err
	}
	defer pool.Close()

	var version, settings string
	err = pool.QueryRow(ctx, `SELECT current_setting('server_version'),
		format('shared_buffers %s, work_mem %s, maintenance_work_mem %s',
			current_setting('shared_buffers'), current_setting('work_mem'), current_setting('maintenance_work_mem'))`).
		Scan(&version, &settings)
	if err != nil {
		return err
	}
	fmt.Printf("logengine storage benchmark\n\n")
	fmt.Printf("  date        %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("  rows        %s over 7 days, partitions of %s\n", commas(o.rows), shortDuration(o.period))
	fmt.Printf("  postgresql  %s (%s)\n", version, settings)
	fmt.Printf("  cpus        %d (%s/%s, %s)\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	// Other work on the machine skews every figure; say how busy it was.
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("  load        %s (1, 5, 15 min averages at start)\n", strings.Join(strings.Fields(string(b))[:3], " "))
	}

	fmt.Printf("\nsetup\n")
	if reuse {
		fmt.Printf("  reusing the %s rows already in %s (-keep)\n", commas(o.rows), name)
	} else {
		end := time.Now().UTC().Add(-time.Minute)
		if err := st.EnsurePartitions(ctx, end.Add(-week), end); err != nil {
			return err
		}
		t := time.Now()
		if err := generate(ctx, pool, o.rows, end.Add(-week), end); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		d := time.Since(t)
		fmt.Printf("  %-36s %9s  %s rows/s\n", "generate (INSERT ... SELECT)", seconds(d), sig3(float64(o.rows)/d.Seconds()))
		t = time.Now()
		if err := rebuildRollups(ctx, pool); err != nil {
			return fmt.Errorf("rollups: %w", err)
		}
		fmt.Printf("  %-36s %9s\n", "rebuild rollups", seconds(time.Since(t)))
	}
	// Indexing is what the maintenance job does to each partition once its
	// range is over: IndexGrace 0 indexes every closed partition now.
	t := time.Now()
	if err := st.Maintain(ctx, store.MaintenanceConfig{IndexGrace: 0, Retention: 0}); err != nil {
		return fmt.Errorf("maintain: %w", err)
	}
	fmt.Printf("  %-36s %9s\n", "maintain (GIN on closed partitions)", seconds(time.Since(t)))
	t = time.Now()
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE logs, log_rollup_minute, log_rollup_hour"); err != nil {
		return err
	}
	fmt.Printf("  %-36s %9s\n", "vacuum analyze", seconds(time.Since(t)))

	if err := printSizes(ctx, pool, reuse); err != nil {
		return err
	}
	if err := benchQueries(ctx, st, o); err != nil {
		return err
	}
	if err := benchIngest(ctx, st, pool, o); err != nil {
		return err
	}
	fmt.Printf("\ntotal time  %s\n", time.Since(began).Round(time.Second))
	return nil
}

// holdsRows reports whether the database already holds exactly o.rows
// logs, their rollups complete, in partitions of o.period: a complete
// earlier -keep run.
func holdsRows(ctx context.Context, o options, cc *pgx.ConnConfig) bool {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return false // no database yet
	}
	defer conn.Close(context.Background())
	var logs, rolled int64
	var period string
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM logs),
		(SELECT coalesce(sum(count), 0) FROM log_rollup_hour)::bigint,
		(SELECT value FROM store_settings WHERE key = 'partition_period')`).Scan(&logs, &rolled, &period)
	return err == nil && logs == o.rows && rolled == o.rows && period == o.period.String()
}

// dropDatabase drops the benchmark database, closing leftover sessions
// of an interrupted run, from the server's maintenance database.
func dropDatabase(ctx context.Context, cc *pgx.ConnConfig) error {
	admin := cc.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cc.Database}.Sanitize()+" WITH (FORCE)")
	return err
}

// generate inserts the rows, spread over [start, end), inside PostgreSQL:
// a chunk per statement, one statement per CPU (at most 4) at a time.
func generate(ctx context.Context, pool *pgxpool.Pool, rows int64, start, end time.Time) error {
	sql := insertSQL()
	slot := float64(end.Sub(start).Microseconds()) / float64(rows)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, min(runtime.NumCPU(), 4)))
	for lo := int64(0); lo < rows; lo += chunkRows {
		hi := min(lo+chunkRows, rows) - 1
		g.Go(func() error {
			_, err := pool.Exec(gctx, sql, start, slot, lo, hi, vocabulary)
			return err
		})
	}
	return g.Wait()
}

// rebuildRollups recomputes both rollups from the rows, as migration 0002
// does for a database that already holds logs.
func rebuildRollups(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, sql := range []string{
			"TRUNCATE log_rollup_minute, log_rollup_hour",
			`INSERT INTO log_rollup_minute
			SELECT date_trunc('minute', ts, 'UTC'), level, source, count(*) FROM logs GROUP BY 1, 2, 3`,
			`INSERT INTO log_rollup_hour
			SELECT date_trunc('hour', ts, 'UTC'), level, source, count(*) FROM logs GROUP BY 1, 2, 3`,
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
}

// printSizes splits the on-disk size of the logs partitions by kind of
// relation (heap with its TOAST, btree and GIN indexes) and adds the
// rollups, per log.
func printSizes(ctx context.Context, pool *pgxpool.Pool, reused bool) error {
	var rows, heap, btree, gin, other, rollups, unindexed int64
	var avgRow, avgMsg float64
	err := pool.QueryRow(ctx, `
		WITH part AS (SELECT inhrelid AS oid FROM pg_inherits WHERE inhparent = 'logs'::regclass),
		ix AS (
			SELECT am.amname, pg_relation_size(x.indexrelid) AS bytes
			FROM part JOIN pg_index x ON x.indrelid = part.oid
			JOIN pg_class c ON c.oid = x.indexrelid AND c.relkind = 'i'
			JOIN pg_am am ON am.oid = c.relam)
		SELECT (SELECT count(*) FROM logs),
			(SELECT coalesce(sum(pg_table_size(oid)), 0) FROM part)::bigint,
			(SELECT coalesce(sum(bytes), 0) FROM ix WHERE amname = 'btree')::bigint,
			(SELECT coalesce(sum(bytes), 0) FROM ix WHERE amname = 'gin')::bigint,
			(SELECT coalesce(sum(bytes), 0) FROM ix WHERE amname NOT IN ('btree', 'gin'))::bigint,
			(pg_total_relation_size('log_rollup_minute') + pg_total_relation_size('log_rollup_hour'))::bigint,
			(SELECT coalesce(sum(greatest(c.reltuples, 0)), 0) FROM part JOIN pg_class c ON c.oid = part.oid
				WHERE NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
					JOIN pg_am am ON am.oid = ic.relam WHERE x.indrelid = c.oid AND am.amname = 'gin'))::bigint,
			(SELECT avg(pg_column_size(l.*)) FROM logs l TABLESAMPLE SYSTEM (1)),
			(SELECT avg(octet_length(message)) FROM logs l TABLESAMPLE SYSTEM (1))`).
		Scan(&rows, &heap, &btree, &gin, &other, &rollups, &unindexed, &avgRow, &avgMsg)
	if err != nil {
		return fmt.Errorf("sizes: %w", err)
	}
	total := heap + btree + gin + other + rollups
	per := func(b int64) string { return fmt.Sprintf("%5.0f B/log", float64(b)/float64(rows)) }
	fmt.Printf("\nstorage (%s rows; row %.0f B on average, message %.0f B)\n", commas(rows), avgRow, avgMsg)
	fmt.Printf("  %-36s %9s  %s\n", "heap (with TOAST)", mib(heap), per(heap))
	fmt.Printf("  %-36s %9s  %s\n", "btree (pk, level, source, trace)", mib(btree), per(btree))
	fmt.Printf("  %-36s %9s  %s\n", "GIN (trigram, jsonb)", mib(gin), per(gin))
	if other > 0 {
		fmt.Printf("  %-36s %9s  %s\n", "other indexes", mib(other), per(other))
	}
	fmt.Printf("  %-36s %9s  %s\n", "rollups (minute, hour)", mib(rollups), per(rollups))
	fmt.Printf("  %-36s %9s  %s\n", "total", mib(total), per(total))
	if reused {
		// Deleting the rows of earlier ingest measurements gave the heap
		// space back, but indexes keep their pages.
		fmt.Printf("  (a reused database: its indexes keep the pages of earlier ingest runs; run without -keep for exact sizes)\n")
	}
	// Keyword and metadata filters scan these rows one by one.
	fmt.Printf("  partitions without GIN indexes (the open one) hold about %s rows, %.1f%% of the data\n",
		commas(unindexed), 100*float64(unindexed)/float64(rows))
	return nil
}

// benchQuery is one line of the query table. run returns what the query
// found, for the reader to judge the work done.
type benchQuery struct {
	name string
	run  func(ctx context.Context) (string, error)
}

func benchQueries(ctx context.Context, st *store.Store, o options) error {
	// One anchor for every query: nothing is written meanwhile, so each
	// run sees the same data. The random picks are seeded, for the same
	// reason.
	now := time.Now().UTC()
	rnd := rand.New(rand.NewPCG(1, 2))
	search := func(q logs.Search) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			p, err := st.Search(ctx, q)
			return describePage(p), err
		}
	}
	queries := []benchQuery{
		{"newest page, 1h", search(logs.Search{Start: now.Add(-time.Hour), End: now, Size: 20})},
		{"level=ERROR page, 24h", search(logs.Search{Start: now.Add(-24 * time.Hour), End: now, Size: 20,
			Levels: []logs.Level{logs.LevelError}})},
		{"source=svc-07 page, 1h", search(logs.Search{Start: now.Add(-time.Hour), End: now, Size: 20,
			Sources: []string{"svc-07"}})},
		{"rare keyword, 24h", search(logs.Search{Start: now.Add(-24 * time.Hour), End: now, Size: 20,
			Keyword: rareWord})},
		{"common keyword, 24h", search(logs.Search{Start: now.Add(-24 * time.Hour), End: now, Size: 20,
			Keyword: commonWord})},
		{"traceId, 7d", func(ctx context.Context) (string, error) {
			p, err := st.Search(ctx, logs.Search{Start: now.Add(-week), End: now, Size: 20,
				TraceID: traceID(rnd.Int64N(o.rows))})
			return describePage(p), err
		}},
		{"metadata userId, 24h", func(ctx context.Context) (string, error) {
			p, err := st.Search(ctx, logs.Search{Start: now.Add(-24 * time.Hour), End: now, Size: 20,
				Meta: []logs.MetaMatch{{Key: "userId", Value: userID(rnd.IntN(users))}}})
			return describePage(p), err
		}},
		{"stats, 24h", func(ctx context.Context) (string, error) {
			r, err := st.Stats(ctx, logs.Stats{Start: now.Add(-24 * time.Hour), End: now})
			return "total " + commas(r.Total), err
		}},
		{"stats, 7d", func(ctx context.Context) (string, error) {
			r, err := st.Stats(ctx, logs.Stats{Start: now.Add(-week), End: now})
			return "total " + commas(r.Total), err
		}},
		{"histogram 1h buckets, 7d", func(ctx context.Context) (string, error) {
			r, err := st.Histogram(ctx, logs.Histogram{Start: now.Add(-week), End: now, Interval: time.Hour})
			var total int64
			for _, b := range r.Buckets {
				total += b.Total
			}
			return fmt.Sprintf("%d buckets, total %s", len(r.Buckets), commas(total)), err
		}},
		{"cursor walk 10 x 100, 24h", func(ctx context.Context) (string, error) {
			q := logs.Search{Start: now.Add(-24 * time.Hour), End: now, Size: 100}
			n := 0
			for range 10 {
				p, err := st.Search(ctx, q)
				if err != nil {
					return "", err
				}
				n += len(p.Events)
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			return fmt.Sprintf("%d rows", n), nil
		}},
	}

	fmt.Printf("\nqueries (store API, uncached; %d runs after %d warm-ups; ms)\n", o.runs, warmups)
	fmt.Printf("  %-28s %8s %8s %8s  %s\n", "query", "p50", "p95", "p99", "result")
	for _, q := range queries {
		var times []float64
		var result string
		var err error
		began := time.Now()
		for i := 0; i < warmups+o.runs && time.Since(began) < queryBudget; i++ {
			t := time.Now()
			result, err = q.run(ctx)
			if err != nil {
				break
			}
			if i >= warmups {
				times = append(times, float64(time.Since(t).Microseconds())/1000)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			result = "error: " + err.Error()
		case len(times) < o.runs:
			result += fmt.Sprintf(" (%d runs: %s budget)", len(times), queryBudget)
		}
		if len(times) == 0 {
			fmt.Printf("  %-28s %8s %8s %8s  %s\n", q.name, "-", "-", "-", result)
			continue
		}
		slices.Sort(times)
		fmt.Printf("  %-28s %8s %8s %8s  %s\n", q.name,
			sig3(percentile(times, 0.50)), sig3(percentile(times, 0.95)), sig3(percentile(times, 0.99)), result)
	}
	return nil
}

// benchIngest times store.WriteBatch, the consumer's path, into the open
// partition (btree indexes only) and into a closed one that already has
// its GIN indexes: the cost the design avoids.
func benchIngest(ctx context.Context, st *store.Store, pool *pgxpool.Pool, o options) error {
	rnd := rand.New(rand.NewPCG(3, 4))
	now := time.Now().UTC()
	closed := now.Add(-3 * 24 * time.Hour).Truncate(o.period).Add(o.period / 2)
	cases := []struct {
		name string
		from time.Time
	}{
		{"open partition (btree only)", now.Add(-time.Minute)},
		{"closed partition (btree + GIN)", closed},
	}
	fmt.Printf("\ningest (store.WriteBatch, batches of %s, one writer)\n", commas(ingestBatch))
	for i, c := range cases {
		// Numbered past the generated rows: their trace ids are new.
		evs := events(ingestRows, o.rows+int64(i*ingestRows), c.from, time.Minute, rnd)
		var inserted int64
		t := time.Now()
		for b := 0; b < len(evs); b += ingestBatch {
			n, err := st.WriteBatch(ctx, evs[b:min(b+ingestBatch, len(evs))])
			if err != nil {
				return fmt.Errorf("ingest: %w", err)
			}
			inserted += n
		}
		d := time.Since(t)
		fmt.Printf("  %-36s %9s  %s rows/s  (%s rows)\n", c.name, seconds(d),
			sig3(float64(inserted)/d.Seconds()), commas(inserted))
		if o.keep {
			// A kept database must hold the generated rows alone, so the
			// next -keep run measures the same data.
			if err := removeEvents(ctx, pool, evs); err != nil {
				return fmt.Errorf("remove ingested events: %w", err)
			}
		}
	}
	if o.keep {
		// The removed rows were appended at the end of their partitions:
		// VACUUM gives the space back, so seq scans stay as short as before.
		if _, err := pool.Exec(ctx, "VACUUM ANALYZE logs, log_rollup_minute, log_rollup_hour"); err != nil {
			return err
		}
	}
	return nil
}

// removeEvents deletes evs and recounts the rollup buckets they touched.
func removeEvents(ctx context.Context, pool *pgxpool.Pool, evs []logs.Event) error {
	ids := make([]uuid.UUID, len(evs))
	from, to := evs[0].Timestamp, evs[0].Timestamp
	for i, e := range evs {
		ids[i] = e.ID
		from, to = minTime(from, e.Timestamp), maxTime(to, e.Timestamp)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM logs WHERE ts >= $1 AND ts <= $2 AND id = ANY($3)", from, to, ids); err != nil {
			return err
		}
		for _, r := range []struct {
			table string
			unit  time.Duration
		}{{"log_rollup_minute", time.Minute}, {"log_rollup_hour", time.Hour}} {
			lo, hi := from.Truncate(r.unit), to.Truncate(r.unit).Add(r.unit)
			unit := strings.TrimPrefix(r.table, "log_rollup_")
			if _, err := tx.Exec(ctx, "DELETE FROM "+r.table+" WHERE bucket >= $1 AND bucket < $2", lo, hi); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+r.table+" SELECT date_trunc('"+unit+"', ts, 'UTC'), level, source, count(*)"+
				" FROM logs WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2, 3", lo, hi); err != nil {
				return err
			}
		}
		return nil
	})
}

func describePage(p logs.Page) string {
	total := commas(p.Total)
	if p.TotalIsEstimate {
		total += "+"
	}
	return fmt.Sprintf("%d rows of %s", len(p.Events), total)
}

// percentile is the nearest-rank percentile of sorted xs.
func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// sig3 prints x with 3 significant digits, never in exponent form.
func sig3(x float64) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	decimals := 2 - int(math.Floor(math.Log10(math.Abs(x))))
	if decimals >= 0 {
		return strconv.FormatFloat(x, 'f', decimals, 64)
	}
	p := math.Pow10(-decimals)
	return commas(int64(math.Round(x/p) * p))
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func shortDuration(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
