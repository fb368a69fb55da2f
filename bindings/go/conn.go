package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Option configures Connect.
type Option func(*connOptions)

type connOptions struct {
	pairs          []kv
	hasConnTimeout bool
	lazy           bool
	logger         func(LogRecord)
}

func (o *connOptions) set(k, v string) { o.pairs = append(o.pairs, kv{k, v}) }

// WithSetting sets any key of rmqs_config_set() (see include/rmqstream.h), e.g.
// WithSetting("producer.batch_size", "500") for the defaults of this connection's producers.
func WithSetting(key, value string) Option {
	return func(o *connOptions) {
		if key == "connect_timeout_ms" || key == "connect-timeout-ms" {
			o.hasConnTimeout = true
		}
		o.set(key, value)
	}
}

// WithCredentials sets the user name and password (overriding the URI's).
func WithCredentials(username, password string) Option {
	return func(o *connOptions) { o.set("username", username); o.set("password", password) }
}

// WithVHost sets the virtual host (overriding the URI's).
func WithVHost(vhost string) Option { return func(o *connOptions) { o.set("vhost", vhost) } }

// WithConnectionName sets the name the broker shows for the connection.
func WithConnectionName(name string) Option {
	return func(o *connOptions) { o.set("connection_name", name) }
}

// TLSConfig are the TLS settings of WithTLS. Empty fields keep the library's defaults (the
// system's CA store, no client certificate, the host name from the URI, verification on).
type TLSConfig struct {
	CAFile, CertFile, KeyFile string // PEM files
	ServerName                string
	InsecureSkipVerify        bool
	// SASLExternal authenticates with the client certificate (SASL EXTERNAL).
	SASLExternal bool
}

// WithTLS turns TLS on (a rabbitmq-stream+tls:// URI does too).
func WithTLS(t TLSConfig) Option {
	return func(o *connOptions) {
		o.set("tls", "true")
		for _, p := range []kv{{"tls_ca_file", t.CAFile}, {"tls_cert_file", t.CertFile},
			{"tls_key_file", t.KeyFile}, {"tls_server_name", t.ServerName}} {
			if p.value != "" {
				o.set(p.key, p.value)
			}
		}
		if t.InsecureSkipVerify {
			o.set("tls_verify", "false")
		}
		if t.SASLExternal {
			o.set("sasl_mechanism", "EXTERNAL")
		}
	}
}

// WithHeartbeat sets the heartbeat interval (whole seconds; 0 = none; default 60 s).
func WithHeartbeat(d time.Duration) Option {
	return func(o *connOptions) { o.set("heartbeat", strconv.FormatInt(int64(d/time.Second), 10)) }
}

// WithConnectTimeout bounds the connection to each seed host (default 10 s; without this
// option Connect uses the time left on its context when it has a deadline).
func WithConnectTimeout(d time.Duration) Option {
	return func(o *connOptions) { o.hasConnTimeout = true; o.set("connect_timeout_ms", ms(d)) }
}

// WithRequestTimeout bounds each request to the broker (default 10 s).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *connOptions) { o.set("request_timeout_ms", ms(d)) }
}

// WithLazyOpen makes Connect return at once; the first call that needs the broker connects.
func WithLazyOpen() Option {
	return func(o *connOptions) { o.set("lazy_open", "true") }
}

// WithLogger receives the library's log messages up to level (LogError ... LogTrace). The
// library's log callback (which runs on library threads) is a C function that copies each
// record into a bounded ring; one goroutine per Conn takes them from it and calls f, in order,
// never concurrently, so f runs on a Go goroutine and may block (records arriving meanwhile
// wait in the ring; when it is full they are counted and reported as one record of target
// "dropped"). f receives the messages of the connection's whole life, Connect's included;
// its last call comes when the connection is freed (Close).
func WithLogger(level LogLevel, f func(LogRecord)) Option {
	return func(o *connOptions) {
		o.logger = f
		o.set("log_level", level.String())
	}
}

// WithLoadBalancer reaches every node through the seed hosts (a load balancer in front of
// the cluster).
func WithLoadBalancer() Option { return func(o *connOptions) { o.set("load_balancer", "true") } }

// WithMaxPerConnection caps the producers and the consumers sharing one TCP connection
// (1–256 each; 0 keeps the default, 256).
func WithMaxPerConnection(producers, consumers int) Option {
	return func(o *connOptions) {
		if producers > 0 {
			o.set("max_producers_per_connection", strconv.Itoa(producers))
		}
		if consumers > 0 {
			o.set("max_consumers_per_connection", strconv.Itoa(consumers))
		}
	}
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// Conn is a connection to a RabbitMQ node or cluster (the library's rmqs_connection: a
// locator connection plus the data connections its producers and consumers need). Its events
// (confirms, chunks, state changes) come from one library event queue, drained in batches by
// one goroutine per Conn. All methods are safe for concurrent use.
type Conn struct {
	h *C.rmqs_connection
	q *C.rmqs_queue
	g guard

	producerDefaults []kv // the producer.* settings, for producerCore.send

	mu       sync.Mutex
	children map[uint64]sink
	nextTag  uint64
	closing  bool

	evs      **C.rmqs_event   // C array of pollBatch
	infos    *C.gormqs_evinfo // C array of pollBatch
	routeBuf []sink           // dispatcher only
	stopping atomic.Bool
	dispDone chan struct{}

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error
}

// Connect opens a connection. uri is rabbitmq-stream://user:pass@host:port/vhost
// (rabbitmq-stream+tls:// for TLS, several host:port separated by commas); "" means
// rabbitmq-stream://guest:guest@localhost:5552/%2f. Options override what the URI says.
//
// Connect blocks until the connection is open (unless WithLazyOpen); when ctx ends first it
// returns ctx.Err() and the connection, if it opens later, is closed in the background. The
// time left on ctx's deadline also bounds each connection attempt unless WithConnectTimeout
// is given.
func Connect(ctx context.Context, uri string, opts ...Option) (*Conn, error) {
	if err := versionCheck(); err != nil {
		return nil, err
	}
	var o connOptions
	if uri != "" {
		o.set("uri", uri)
	}
	for _, opt := range opts {
		opt(&o)
	}
	// A context that has ended already: no connection is opened.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t := timeoutMS(ctx); t > 0 && !o.hasConnTimeout {
		o.set("connect_timeout_ms", strconv.Itoa(int(t)))
	}
	cfg, err := newConfig(o.pairs)
	if err != nil {
		return nil, err
	}
	var logs *logRing
	if o.logger != nil {
		if logs, err = newLogRing(cfg, o.logger); err != nil {
			C.rmqs_config_free(cfg)
			return nil, err
		}
	}
	h, err := await(ctx, func() (*C.rmqs_connection, error) {
		defer C.rmqs_config_free(cfg)
		var h *C.rmqs_connection
		var e *C.rmqs_error
		st := C.rmqs_connection_open(cfg, &h, &e)
		return h, takeError(st, e)
	}, func(h *C.rmqs_connection, err error) {
		if err == nil {
			C.rmqs_connection_free(h)
		}
	})
	// The log ring lives on until the library releases it (with the connection), whatever
	// happened: its goroutine delivers the open's messages, then ends.
	logs.start()
	if err != nil {
		return nil, err
	}
	c := &Conn{h: h, children: map[uint64]sink{}, dispDone: make(chan struct{}),
		closeDone: make(chan struct{})}
	for _, p := range o.pairs {
		if strings.HasPrefix(p.key, "producer.") {
			c.producerDefaults = append(c.producerDefaults, p)
		}
	}
	if st := C.rmqs_queue_new(&c.q, nil); st != 0 {
		C.rmqs_connection_free(h)
		return nil, Status(st).Err()
	}
	c.evs = (**C.rmqs_event)(C.calloc(pollBatch, C.size_t(unsafe.Sizeof((*C.rmqs_event)(nil)))))
	c.infos = (*C.gormqs_evinfo)(C.calloc(pollBatch, C.size_t(unsafe.Sizeof(C.gormqs_evinfo{}))))
	c.routeBuf = make([]sink, 0, pollBatch)
	go c.dispatch()
	return c, nil
}

// register reserves a source tag for a producer or consumer; false when the connection is
// closing.
func (c *Conn) register(s sink) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return 0, false
	}
	c.nextTag++
	c.children[c.nextTag] = s
	return c.nextTag, true
}

func (c *Conn) unregister(tag uint64) {
	c.mu.Lock()
	delete(c.children, tag)
	c.mu.Unlock()
}

// call runs f with the connection handle on a goroutine of its own, honouring ctx (see await).
func (c *Conn) call(ctx context.Context, f func(h *C.rmqs_connection) error) error {
	_, err := await(ctx, func() (struct{}, error) {
		if !c.g.acquire() {
			return struct{}{}, closedErr("connection")
		}
		defer c.g.release()
		return struct{}{}, f(c.h)
	}, nil)
	return err
}

// Close closes every producer and consumer of the connection (producers wait for their
// outstanding confirms), then the connection, and frees it. It waits up to ctx's deadline for
// producers to drain; when ctx ends first it returns ctx.Err() and closing goes on in the
// background. Calling Close again waits for the same close and returns its result.
func (c *Conn) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { go c.doClose(timeoutMS(ctx)) })
	select {
	case <-c.closeDone:
		return c.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Conn) doClose(tmo C.int32_t) {
	defer close(c.closeDone)
	c.mu.Lock()
	c.closing = true
	kids := make([]sink, 0, len(c.children))
	for _, k := range c.children {
		kids = append(kids, k)
	}
	c.mu.Unlock()
	if c.g.acquire() {
		var e *C.rmqs_error
		c.closeErr = takeError(C.rmqs_connection_close(c.h, tmo, &e), e)
		c.g.release()
	}
	for _, k := range kids {
		k.freeHandle()
	}
	c.g.free(func() { C.rmqs_connection_free(c.h) })
	c.stopping.Store(true)
	C.rmqs_queue_wakeup(c.q)
	<-c.dispDone
	c.mu.Lock()
	for _, k := range c.children {
		k.end()
	}
	c.mu.Unlock()
	C.rmqs_queue_free(c.q)
	C.free(unsafe.Pointer(c.evs))
	C.free(unsafe.Pointer(c.infos))
}

// ServerVersion is the broker's version as it reports it, e.g. "4.0.5" ("" before a lazy
// connection has connected).
func (c *Conn) ServerVersion() string {
	if !c.g.acquire() {
		return ""
	}
	defer c.g.release()
	return C.GoString(C.rmqs_connection_server_version(c.h))
}

// Negotiated returns what the connection agreed with the broker at its handshake: the largest
// frame either side may send, in bytes (0: unlimited), and the heartbeat period (0: none).
// With WithLazyOpen it connects first.
func (c *Conn) Negotiated() (frameMax uint32, heartbeat time.Duration, err error) {
	if !c.g.acquire() {
		return 0, 0, closedErr("connection")
	}
	defer c.g.release()
	var fm, hb C.uint32_t
	var e *C.rmqs_error
	if err := takeError(C.rmqs_connection_negotiated(c.h, &fm, &hb, &e), e); err != nil {
		return 0, 0, err
	}
	return uint32(fm), time.Duration(hb) * time.Second, nil
}

// Supports reports whether the broker accepts version version of stream-protocol command
// command (e.g. 0x1c, 1 for StreamStats).
func (c *Conn) Supports(command, version uint16) bool {
	if !c.g.acquire() {
		return false
	}
	defer c.g.release()
	return bool(C.rmqs_connection_supports(c.h, C.uint16_t(command), C.uint16_t(version)))
}

// ConnStats are a connection's counters (see rmqs_connection_statistics).
type ConnStats struct {
	FramesIn, FramesOut, BytesIn, BytesOut uint64
	ConnectionsOpened, DataConnections     uint64
	Reconnects                             uint64
}

// Stats reads the connection's counters.
func (c *Conn) Stats() (ConnStats, error) {
	if !c.g.acquire() {
		return ConnStats{}, closedErr("connection")
	}
	defer c.g.release()
	var s C.rmqs_connection_statistics
	s.size = C.uint64_t(unsafe.Sizeof(s))
	var e *C.rmqs_error
	if err := takeError(C.rmqs_connection_stats(c.h, &s, &e), e); err != nil {
		return ConnStats{}, err
	}
	return ConnStats{uint64(s.frames_in), uint64(s.frames_out), uint64(s.bytes_in),
		uint64(s.bytes_out), uint64(s.connections_opened), uint64(s.data_connections),
		uint64(s.reconnects)}, nil
}

// StreamOption is an argument of a stream's creation.
type StreamOption func(*[]kv)

func streamArg(k, v string) StreamOption { return func(p *[]kv) { *p = append(*p, kv{k, v}) } }

// MaxLengthBytes caps the stream's size; older segments are removed.
func MaxLengthBytes(n int64) StreamOption {
	return streamArg("max_length_bytes", strconv.FormatInt(n, 10))
}

// MaxAge removes segments older than d (whole seconds).
func MaxAge(d time.Duration) StreamOption {
	return streamArg("max_age", fmt.Sprintf("%ds", int64(d/time.Second)))
}

// MaxSegmentSizeBytes sets the size of the stream's segment files.
func MaxSegmentSizeBytes(n int64) StreamOption {
	return streamArg("stream_max_segment_size_bytes", strconv.FormatInt(n, 10))
}

// InitialClusterSize sets the number of members (leader and replicas).
func InitialClusterSize(n int) StreamOption {
	return streamArg("initial_cluster_size", strconv.Itoa(n))
}

// LeaderLocator sets queue-leader-locator: client-local, balanced, least-leaders or random.
func LeaderLocator(s string) StreamOption { return streamArg("queue_leader_locator", s) }

// FilterSize sets the size of the chunks' Bloom filters for filtering (16–255 bytes).
func FilterSize(n int) StreamOption { return streamArg("filter_size", strconv.Itoa(n)) }

// StreamArgument sets any other broker argument, sent as given (x-... names).
func StreamArgument(name, value string) StreamOption { return streamArg("arg."+name, value) }

func streamConfig(opts []StreamOption) (*C.rmqs_config, error) {
	if len(opts) == 0 {
		return nil, nil
	}
	var pairs []kv
	for _, o := range opts {
		o(&pairs)
	}
	return newConfig(pairs)
}

// CreateStream creates a stream. A stream that exists already gives an error matching
// ErrStreamAlreadyExists, whatever its arguments.
func (c *Conn) CreateStream(ctx context.Context, stream string, opts ...StreamOption) error {
	cfg, err := streamConfig(opts)
	if err != nil {
		return err
	}
	defer C.rmqs_config_free(cfg)
	name, free := cstr(stream)
	defer free()
	return c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_stream_create(h, name, cfg, &e), e)
	})
}

// DeleteStream deletes a stream and its data (ErrStreamDoesNotExist when there is none).
func (c *Conn) DeleteStream(ctx context.Context, stream string) error {
	name, free := cstr(stream)
	defer free()
	return c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_stream_delete(h, name, &e), e)
	})
}

// StreamExists reports whether a stream exists (and is visible to this user).
func (c *Conn) StreamExists(ctx context.Context, stream string) (bool, error) {
	name, free := cstr(stream)
	defer free()
	var out C.bool
	err := c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_stream_exists(h, name, &out, &e), e)
	})
	return err == nil && bool(out), err
}

// StreamStats are a stream's statistics. Chunk ids are the offsets of chunks' first
// messages; -1 when unknown (empty stream).
type StreamStats struct {
	FirstChunkID     int64 // first chunk still in the stream
	CommittedChunkID int64 // last chunk committed (readable)
	LastChunkID      int64 // last chunk written
}

// StreamStats reads a stream's statistics (RabbitMQ 3.11+; ErrUnsupported before).
func (c *Conn) StreamStats(ctx context.Context, stream string) (StreamStats, error) {
	name, free := cstr(stream)
	defer free()
	var s C.rmqs_stream_statistics
	s.size = C.uint64_t(unsafe.Sizeof(s))
	err := c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_stream_stats(h, name, &s, &e), e)
	})
	if err != nil {
		return StreamStats{}, err
	}
	return StreamStats{int64(s.first_chunk_id), int64(s.committed_chunk_id),
		int64(s.last_chunk_id)}, nil
}

// Broker is a stream member's advertised address.
type Broker struct {
	Host string
	Port uint16
}

// StreamMetadata is where a stream lives.
type StreamMetadata struct {
	Leader   *Broker // nil when the stream has no leader now
	Replicas []Broker
}

// Metadata locates a stream: its leader and replicas.
func (c *Conn) Metadata(ctx context.Context, stream string) (StreamMetadata, error) {
	name, free := cstr(stream)
	defer free()
	var md StreamMetadata
	err := c.call(ctx, func(h *C.rmqs_connection) error {
		var m *C.rmqs_metadata
		var e *C.rmqs_error
		if err := takeError(C.rmqs_stream_metadata(h, name, &m, &e), e); err != nil {
			return err
		}
		defer C.rmqs_metadata_free(m)
		if host := C.rmqs_metadata_leader_host(m); host != nil {
			md.Leader = &Broker{C.GoString(host), uint16(C.rmqs_metadata_leader_port(m))}
		}
		n := int(C.rmqs_metadata_replica_count(m))
		for i := 0; i < n; i++ {
			var port C.uint16_t
			if host := C.rmqs_metadata_replica(m, C.size_t(i), &port); host != nil {
				md.Replicas = append(md.Replicas, Broker{C.GoString(host), uint16(port)})
			}
		}
		return nil
	})
	return md, err
}

// QueryOffset is the offset stored on the broker under reference for stream; an error
// matching ErrNoOffset when none is stored.
func (c *Conn) QueryOffset(ctx context.Context, reference, stream string) (uint64, error) {
	ref, free1 := cstr(reference)
	defer free1()
	name, free2 := cstr(stream)
	defer free2()
	var out C.uint64_t
	err := c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_stream_query_offset(h, ref, name, &out, &e), e)
	})
	return uint64(out), err
}

// StoreOffset stores offset under reference for stream. The broker does not answer:
// QueryOffset shows when it is applied.
func (c *Conn) StoreOffset(ctx context.Context, reference, stream string, offset uint64) error {
	ref, free1 := cstr(reference)
	defer free1()
	name, free2 := cstr(stream)
	defer free2()
	return c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_stream_store_offset(h, ref, name, C.uint64_t(offset), &e), e)
	})
}

// QueryPublisherSequence is the last publishing id the broker kept for the named producer
// name on stream; 0 when it knows none.
func (c *Conn) QueryPublisherSequence(ctx context.Context, name, stream string) (uint64, error) {
	ref, free1 := cstr(name)
	defer free1()
	s, free2 := cstr(stream)
	defer free2()
	var out C.uint64_t
	err := c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_stream_query_sequence(h, ref, s, &out, &e), e)
	})
	return uint64(out), err
}
