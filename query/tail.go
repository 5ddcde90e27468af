package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

// TailSource reads the events the log topic receives from now on; the
// gateway's Kafka reader (in ingest) is one. Tail calls ready once it reads
// from the end of every partition, then deliver with each batch of events
// and where the topic holds each (positions[i] is events[i]'s), in order,
// until ctx ends. deliver keeps neither slice.
type TailSource interface {
	Tail(ctx context.Context, ready func(), deliver func(events []logs.Event, positions []logs.Position)) error
	// End is the next offset of every partition now: a record at or past
	// it was acknowledged after this call began.
	End(ctx context.Context) (map[int32]int64, error)
}

// TailConfig bounds the live tail.
type TailConfig struct {
	MaxSubscribers int
	// Buffer is how many events may wait for one client; a client further
	// behind is disconnected, so a slow one never grows memory.
	Buffer       int
	PingInterval time.Duration
	// WriteTimeout bounds one write to a client: a stalled connection is
	// closed instead of holding its handler.
	WriteTimeout time.Duration
}

// DefaultTailConfig is the configuration with nothing set.
func DefaultTailConfig() TailConfig {
	return TailConfig{MaxSubscribers: 100, Buffer: 1000, PingInterval: 15 * time.Second, WriteTimeout: 30 * time.Second}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *TailConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.MaxSubscribers, "tail-max-subscribers", c.MaxSubscribers, "live tail clients one gateway serves at once (429 beyond)")
	fs.IntVar(&c.Buffer, "tail-buffer", c.Buffer, "events that may wait for one live tail client; a client further behind is disconnected")
	fs.DurationVar(&c.PingInterval, "tail-ping-interval", c.PingInterval, "interval of the keep-alive comment (SSE) or ping (websocket) of a live tail")
	fs.DurationVar(&c.WriteTimeout, "tail-write-timeout", c.WriteTimeout, "longest time one write to a live tail client may take before it is disconnected")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *TailConfig) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{"tail-max-subscribers": int64(c.MaxSubscribers), "tail-buffer": int64(c.Buffer)})
	p.Positive(map[string]time.Duration{"tail-ping-interval": c.PingInterval, "tail-write-timeout": c.WriteTimeout})
	return p.Err()
}

// Reasons a subscription can fail to start.
var (
	ErrTailOff      = errors.New("live tail needs Kafka: this gateway runs without --kafka-brokers")
	ErrTailStarting = errors.New("live tail is not reading Kafka yet; retry in a second")
	ErrTailFull     = errors.New("too many live tail clients on this gateway; retry later")
)

// Tail fans the events of one Kafka reader out to every live tail client
// of the gateway.
type Tail struct {
	cfg     TailConfig
	src     TailSource
	logger  *slog.Logger
	metrics *metrics.Tail

	mu    sync.Mutex
	subs  map[*Subscription]struct{}
	ready bool
}

// NewTail builds the fan-out over src; a nil src means the gateway has no
// Kafka, and every subscription is refused with ErrTailOff.
func NewTail(cfg TailConfig, src TailSource, logger *slog.Logger, reg prometheus.Registerer) *Tail {
	return &Tail{cfg: cfg, src: src, logger: logger, metrics: metrics.NewTail(reg), subs: map[*Subscription]struct{}{}}
}

// Config is the configuration the tail runs with.
func (t *Tail) Config() TailConfig { return t.cfg }

// Run reads the source until ctx ends. A failing source is restarted:
// live tail is an extra of the gateway and must not stop it.
func (t *Tail) Run(ctx context.Context) error {
	if t.src == nil {
		<-ctx.Done() // a loop that ends would stop the process
		return nil
	}
	backoff := time.Second
	for {
		err := t.src.Tail(ctx, t.setReady, t.dispatch)
		t.endAll("the gateway stopped reading Kafka; reconnect")
		if ctx.Err() != nil {
			return nil
		}
		t.logger.Warn("live tail reader stopped; restarting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (t *Tail) setReady() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready = true
}

// endAll ends every subscription with reason, and refuses new ones until
// the source is ready again.
func (t *Tail) endAll(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready = false
	for s := range t.subs {
		t.end(s, reason, "stopped")
	}
}

// TailItem is an event queued for one subscription.
type TailItem struct {
	event     *logs.Event
	partition int32
	offset    int64
}

// Subscription is one client's stream of matching events.
type Subscription struct {
	match  func(*logs.Event) bool
	events chan TailItem
	// from is where the stream starts, per partition: records before it
	// were acknowledged before the subscription, even if the reader
	// delivers them after. Set once, under the tail's lock, before
	// Subscribe returns.
	from     map[int32]int64
	done     chan struct{}
	reason   string // set before done closes
	protocol string
	tail     *Tail
	results  *logs.Results // the request's count of events delivered, if any
	// showTenant: the stream is of several tenants, and names each log's.
	showTenant bool
}

// Subscribe starts a stream of the events match accepts that reach the
// log topic from this moment on, of the tenants ctx carries. match runs
// on the tail's goroutine, one event at a time.
func (t *Tail) Subscribe(ctx context.Context, protocol string, match func(*logs.Event) bool) (*Subscription, error) {
	if t.src == nil {
		return nil, ErrTailOff
	}
	tenants := logs.TenantsFrom(ctx)
	ofTenants := func(e *logs.Event) bool {
		return slices.Contains(tenants, logs.TenantOrDefault(e.Tenant)) && match(e)
	}
	s := &Subscription{showTenant: len(tenants) > 1, match: ofTenants, events: make(chan TailItem, t.cfg.Buffer), done: make(chan struct{}), protocol: protocol, tail: t,
		results: logs.ResultsFrom(ctx)}
	if err := t.add(s); err != nil {
		return nil, err
	}
	// Registered first, then the end of the topic is read: every record
	// acknowledged after that read is at or past it and reaches s; those
	// before it are left out, however late the reader delivers them.
	end, err := t.src.End(ctx)
	if err != nil {
		s.Close()
		t.logger.Warn("live tail: reading the end of the log topic", "err", err)
		return nil, ErrTailStarting
	}
	t.mu.Lock()
	s.from = end
	t.mu.Unlock()
	s.results.Add(0)
	return s, nil
}

func (t *Tail) add(s *Subscription) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		return ErrTailStarting
	}
	if len(t.subs) >= t.cfg.MaxSubscribers {
		t.metrics.Dropped.WithLabelValues("full").Inc()
		return ErrTailFull
	}
	t.subs[s] = struct{}{}
	t.metrics.Subscribers.Set(float64(len(t.subs)))
	return nil
}

// Events are the matching events; read them until Done, and pass each
// through Event.
func (s *Subscription) Events() <-chan TailItem { return s.events }

// Event is the item's event, or false when it reached the log topic
// before the subscription began (queued while Subscribe found that out).
func (s *Subscription) Event(it TailItem) (*logs.Event, bool) {
	if from, ok := s.from[it.partition]; ok && it.offset < from {
		return nil, false
	}
	s.results.Add(1)
	return it.event, true
}

// Done is closed when the tail ended the subscription; Reason says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Reason is why the tail ended the subscription, once Done is closed.
func (s *Subscription) Reason() string { return s.reason }

// Close ends the subscription from the client's side.
func (s *Subscription) Close() {
	t := s.tail
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[s]; ok {
		delete(t.subs, s)
		t.metrics.Subscribers.Set(float64(len(t.subs)))
	}
}

// end removes s with a reason; t.mu is held.
func (t *Tail) end(s *Subscription, reason, metric string) {
	delete(t.subs, s)
	s.reason = reason
	close(s.done)
	t.metrics.Dropped.WithLabelValues(metric).Inc()
	t.metrics.Subscribers.Set(float64(len(t.subs)))
}

// dispatch hands each event to every subscription that wants it. A
// subscription whose buffer is full is ended at once: one slow client
// costs neither memory nor the others' latency.
func (t *Tail) dispatch(events []logs.Event, positions []logs.Position) {
	t.metrics.Events.Add(float64(len(events)))
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range events {
		e, pos := &events[i], positions[i]
		// Subscribers get a copy of their own, so that a slow one holds
		// only the events it buffered, not whole polls.
		var shared *logs.Event
		for s := range t.subs {
			if from, ok := s.from[pos.Partition]; ok && pos.Offset < from {
				continue
			}
			if !s.match(e) {
				continue
			}
			if shared == nil {
				shared = new(logs.Event)
				*shared = *e
			}
			select {
			case s.events <- TailItem{event: shared, partition: pos.Partition, offset: pos.Offset}:
				t.metrics.Sent.WithLabelValues(s.protocol).Inc()
			default:
				t.end(s, fmt.Sprintf("the client did not keep up: %d events were waiting to be sent", t.cfg.Buffer), "slow")
			}
		}
	}
}
