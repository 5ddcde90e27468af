// Package syslog takes syslog messages (RFC 5424 and RFC 3164) over TCP,
// octet-counted (RFC 6587) or newline-delimited, and over UDP, one message
// per datagram, on --syslog-addr (off by default), and hands them to the
// native API's path. Over TCP a connection's messages are read, published
// and acknowledged by Kafka before more are read, so a slow Kafka slows
// the sender instead of growing memory.
package syslog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"golang.org/x/net/netutil"
)

// Protocol names the protocol in metrics and dead letters.
const Protocol = "syslog"

// Config shapes the syslog listener.
type Config struct {
	// Addr is host:port for both TCP and UDP; empty is off.
	Addr string
	// MaxFrameBytes bounds one message; a longer TCP frame ends the
	// connection, a longer datagram is cut by the read.
	MaxFrameBytes int
	// MaxConns bounds the open TCP connections.
	MaxConns int
	// Batch is the most messages published at once.
	Batch int
	// UDPQueue is the most datagrams waiting for Kafka; past it they are
	// dropped (and counted), as UDP senders expect.
	UDPQueue int
	// Tenant owns the logs syslog brings: syslog carries no credentials.
	Tenant string
}

// DefaultConfig is off.
func DefaultConfig() Config {
	return Config{MaxFrameBytes: 128 << 10, MaxConns: 1000, Batch: 1000, UDPQueue: 10000, Tenant: logs.DefaultTenant}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Addr, "syslog-addr", c.Addr, "host:port on which the producer takes syslog (RFC 5424 and 3164) over TCP and UDP; empty is off")
	fs.IntVar(&c.MaxFrameBytes, "syslog-max-frame-bytes", c.MaxFrameBytes, "longest syslog message; a longer TCP frame closes the connection")
	fs.IntVar(&c.MaxConns, "syslog-max-conns", c.MaxConns, "open syslog TCP connections at most")
	fs.IntVar(&c.Batch, "syslog-batch", c.Batch, "syslog messages published to Kafka at once at most")
	fs.IntVar(&c.UDPQueue, "syslog-udp-queue", c.UDPQueue, "syslog UDP datagrams waiting for Kafka at most; past it they are dropped and counted")
	fs.StringVar(&c.Tenant, "syslog-tenant", c.Tenant, "tenant that owns the logs taken over syslog (syslog carries no API key)")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *Config) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{"syslog-max-frame-bytes": int64(c.MaxFrameBytes), "syslog-max-conns": int64(c.MaxConns),
		"syslog-batch": int64(c.Batch), "syslog-udp-queue": int64(c.UDPQueue)})
	if !logs.ValidTenant(c.Tenant) {
		p.Add("syslog-tenant", "must be %s", logs.TenantRule)
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			p.Add("syslog-addr", "must be host:port: %v", err)
		}
	}
	return p.Err()
}

// Intake is the shared ingest path (ingest.Handler).
type Intake interface {
	Accept(ctx context.Context, protocol string, drafts []event.Draft, cid string) (ingest.Outcome, error)
}

// Server listens for syslog on TCP and UDP.
type Server struct {
	cfg     Config
	intake  Intake
	logger  *slog.Logger
	dropped *prometheus.CounterVec
	tcp     net.Listener
	udp     net.PacketConn
	now     func() time.Time

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}
}

// Listen opens the TCP and UDP listeners on cfg.Addr (the same port).
func Listen(cfg Config, intake Intake, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("--syslog-addr: %w", err)
	}
	// The UDP port is the TCP one, also when the address asked for any port.
	host, _, _ := net.SplitHostPort(cfg.Addr)
	_, port, _ := net.SplitHostPort(tcp.Addr().String())
	udp, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("--syslog-addr (udp): %w", err)
	}
	return &Server{
		cfg: cfg, intake: intake, logger: logger, dropped: metrics.NewSyslog(reg).Dropped,
		tcp: netutil.LimitListener(tcp, cfg.MaxConns), udp: udp, now: time.Now,
		conns: map[net.Conn]struct{}{}, done: make(chan struct{}),
	}, nil
}

// Addr is where the server listens (TCP and UDP).
func (s *Server) Addr() string { return s.tcp.Addr().String() }

// Run serves until ctx ends; Shutdown then finishes the work in hand.
func (s *Server) Run(ctx context.Context) error {
	s.wg.Add(2)
	go s.serveUDP()
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.tcp.Accept()
			if err != nil {
				return // closed by Shutdown
			}
			if !s.track(c) {
				_ = c.Close()
				return
			}
			s.wg.Add(1)
			go s.serveTCP(c)
		}
	}()
	<-ctx.Done()
	return nil
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// Shutdown stops listening, lets each connection publish what it read,
// and waits for them (bounded by ctx).
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		// Reads end now; a batch in hand is still published.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	close(s.done)
	_ = s.tcp.Close()
	_ = s.udp.Close()
	finished := make(chan struct{})
	go func() { s.wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		s.logger.Warn("syslog: connections still publishing at shutdown")
	}
}

// publish hands a batch to the intake, retrying while Kafka cannot take
// it: TCP has no way to say "not accepted", so the sender waits instead.
func (s *Server) publish(drafts []event.Draft, transport string) {
	for {
		ctx := logs.WithTenants(context.Background(), []string{s.cfg.Tenant})
		_, err := s.intake.Accept(ctx, Protocol, drafts, "")
		if err == nil {
			return
		}
		var u *ingest.Unavailable
		if !errors.As(err, &u) || transport == "udp" {
			s.logger.Warn("syslog: messages not accepted", "err", err, "messages", len(drafts), "transport", transport)
			s.dropped.WithLabelValues(transport, "unavailable").Add(float64(len(drafts)))
			return
		}
		select {
		case <-time.After(u.RetryAfter):
		case <-s.done:
			s.logger.Warn("syslog: messages not accepted before shutdown", "messages", len(drafts))
			s.dropped.WithLabelValues(transport, "shutdown").Add(float64(len(drafts)))
			return
		}
	}
}

func (s *Server) serveTCP(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	var batch []event.Draft
	for {
		frame, err := readFrame(r, s.cfg.MaxFrameBytes)
		if len(frame) > 0 {
			m := Parse(frame, s.now())
			batch = append(batch, m.Draft())
		}
		// Publish when nothing more is already here, or the batch is full:
		// a busy connection sends batches, a quiet one each message at once.
		if len(batch) > 0 && (err != nil || r.Buffered() == 0 || len(batch) >= s.cfg.Batch) {
			s.publish(batch, "tcp")
			batch = nil
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
				s.logger.Warn("syslog: closing connection", "remote", c.RemoteAddr().String(), "err", err)
				s.dropped.WithLabelValues("tcp", "framing").Inc()
			}
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readFrame reads one message: octet-counted ("LEN SP MSG") when it starts
// with a digit, else up to a newline.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	b, err := r.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] >= '1' && b[0] <= '9' {
		lenText, err := r.ReadSlice(' ')
		if err != nil {
			return nil, fmt.Errorf("octet counting: %w", err)
		}
		n, err := strconv.Atoi(string(lenText[:len(lenText)-1]))
		if err != nil {
			return nil, fmt.Errorf("octet counting: bad length %q", lenText)
		}
		if n > max {
			return nil, fmt.Errorf("a frame of %d bytes, more than --syslog-max-frame-bytes %d", n, max)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(r, frame); err != nil {
			return nil, err
		}
		return frame, nil
	}
	var frame []byte
	for {
		part, err := r.ReadSlice('\n')
		frame = append(frame, part...)
		if len(frame) > max+2 {
			return nil, fmt.Errorf("a line of more than --syslog-max-frame-bytes %d", max)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && len(frame) > 0 && errors.Is(err, io.EOF) {
			return frame, err // the last line, unterminated
		}
		return frame, err
	}
}

// serveUDP reads datagrams into a bounded queue that one goroutine
// publishes in batches.
func (s *Server) serveUDP() {
	defer s.wg.Done()
	queue := make(chan event.Draft, s.cfg.UDPQueue)
	var pub sync.WaitGroup
	pub.Go(func() {
		batch := make([]event.Draft, 0, s.cfg.Batch)
		for d := range queue {
			batch = append(batch, d)
		more:
			for len(batch) < s.cfg.Batch {
				select {
				case d, ok := <-queue:
					if !ok {
						break more
					}
					batch = append(batch, d)
				default:
					break more
				}
			}
			s.publish(batch, "udp")
			batch = batch[:0:0]
		}
	})
	buf := make([]byte, s.cfg.MaxFrameBytes)
	for {
		n, _, err := s.udp.ReadFrom(buf)
		if err != nil {
			close(queue)
			pub.Wait()
			return
		}
		if n == 0 {
			continue
		}
		m := Parse(buf[:n], s.now())
		select {
		case queue <- m.Draft():
		default:
			s.dropped.WithLabelValues("udp", "queue_full").Inc()
		}
	}
}

// Config is the configuration the server runs with.
func (s *Server) Config() Config { return s.cfg }
