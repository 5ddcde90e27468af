package store

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Store, registered on the Registerer given to Open, so
// two Stores with two registries never collide.
type metrics struct {
	rowsWritten   prometheus.Counter
	writeDuration prometheus.Histogram
	queryDuration *prometheus.HistogramVec
	// maintenance
	partitionsDropped prometheus.Counter
	// the merger
	blocksMerged  prometheus.Counter
	rowsMerged    prometheus.Counter
	mergeDuration prometheus.Histogram
	all           []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, pool *pgxpool.Pool) (*metrics, error) {
	m := &metrics{
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "store_rows_written_total",
			Help: "Logs stored in PostgreSQL (redeliveries and repeated client ids skipped are not counted).",
		}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "store_write_duration_seconds",
			Help:    "Time to write one batch, partition checks included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1ms .. ~8s
		}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "store_query_duration_seconds",
			Help:    "Time of one read query, by kind (search, count, stats, histogram).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. ~16s
		}, []string{"kind"}),
		partitionsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "store_partitions_dropped_total",
			Help: "Partitions dropped by retention.",
		}),
		blocksMerged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "store_blocks_merged_total",
			Help: "Blocks the merger rewrote into larger ones.",
		}),
		rowsMerged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "store_rows_merged_total",
			Help: "Log rows the merger rewrote.",
		}),
		mergeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "store_merge_duration_seconds",
			Help:    "Time of one merge transaction.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5ms .. ~10s
		}),
	}
	m.all = []prometheus.Collector{
		m.partitionsDropped,
		m.blocksMerged,
		m.rowsMerged,
		m.mergeDuration,
		m.rowsWritten,
		m.writeDuration,
		m.queryDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "store_pool_acquired_conns",
			Help: "Pool connections currently in use.",
		}, func() float64 { return float64(pool.Stat().AcquiredConns()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "store_pool_total_conns",
			Help: "Pool connections open, idle or in use.",
		}, func() float64 { return float64(pool.Stat().TotalConns()) }),
	}
	for i, c := range m.all {
		if err := reg.Register(c); err != nil {
			// Leave the registry as we found it.
			for _, done := range m.all[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.all {
		reg.Unregister(c)
	}
}
