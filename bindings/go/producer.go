package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"context"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// ProducerOption configures NewProducer.
type ProducerOption func(*producerOptions)

type producerOptions struct {
	pairs       []kv
	chanCap     int
	withChan    bool
	onConfirm   func([]Confirm)
	onState     func(StateChange)
	maxInFlight int
}

func (o *producerOptions) set(k, v string) { o.pairs = append(o.pairs, kv{k, v}) }

// ProducerName makes a named producer, which deduplicates: it continues after the last
// publishing id the broker kept for the name, and the broker drops messages sent again with
// an id it has seen (they are still confirmed).
func ProducerName(name string) ProducerOption {
	return func(o *producerOptions) { o.set("name", name) }
}

// BatchSize sets the messages per Publish frame (default 100).
func BatchSize(n int) ProducerOption {
	return func(o *producerOptions) { o.set("batch_size", strconv.Itoa(n)) }
}

// BatchDelay sets how long a partial frame waits for more messages (default 5 ms; 0 = every
// send goes out at once).
func BatchDelay(d time.Duration) ProducerOption {
	return func(o *producerOptions) { o.set("batch_delay_ms", ms(d)) }
}

// MaxInFlight caps the unconfirmed messages (default 10000); Send waits for room. With a
// confirm channel or handler it also caps the confirms not yet handed to the application.
func MaxInFlight(n int) ProducerOption {
	return func(o *producerOptions) { o.maxInFlight = n; o.set("max_in_flight", strconv.Itoa(n)) }
}

// ConfirmTimeout fails messages not confirmed within d with ErrTimeout (default 30 s; 0 =
// never).
func ConfirmTimeout(d time.Duration) ProducerOption {
	return func(o *producerOptions) { o.set("confirm_timeout_ms", ms(d)) }
}

// SendTimeout bounds how long a send waits for room when MaxInFlight messages are
// unconfirmed (ErrTimeout; default: no limit).
func SendTimeout(d time.Duration) ProducerOption {
	return func(o *producerOptions) { o.set("send_timeout_ms", ms(d)) }
}

// FailWhenFull makes sends fail with ErrQueueFull instead of waiting for room.
func FailWhenFull() ProducerOption {
	return func(o *producerOptions) { o.set("block_when_full", "false") }
}

// SubEntrySize packs up to n consecutive messages into one sub-entry (one entry on the
// broker; consumers see the messages one by one; 0 or 1: none). Not with filter values.
func SubEntrySize(n int) ProducerOption {
	return func(o *producerOptions) { o.set("sub_entry_size", strconv.Itoa(n)) }
}

// Compression sets the sub-entries' codec: "none" (default), "gzip", "snappy", "lz4" or
// "zstd" (with SubEntrySize; every official client reads all five).
func Compression(codec string) ProducerOption {
	return func(o *producerOptions) { o.set("compression", codec) }
}

// ProducerSetting sets any producer key of rmqs_config_set().
func ProducerSetting(key, value string) ProducerOption {
	return func(o *producerOptions) { o.set(key, value) }
}

// OnProducerState receives the producer's state changes (recovering, recovered, closed; for a
// SuperProducer also those of each partition's producer), in order with its confirms, on the
// producer's goroutine.
func OnProducerState(f func(StateChange)) ProducerOption {
	return func(o *producerOptions) { o.onState = f }
}

// WithConfirmChannel delivers every message's outcome on Confirms(), a channel with this
// capacity. The application must receive from it: while confirms are unread, sends wait
// (see MaxInFlight) and Flush and Close wait too. The channel is closed after the last
// confirm.
func WithConfirmChannel(capacity int) ProducerOption {
	return func(o *producerOptions) { o.withChan = true; o.chanCap = capacity }
}

// OnConfirm calls f with each batch of outcomes, in order, on the producer's own goroutine
// (never concurrently). f may keep the slice.
func OnConfirm(f func([]Confirm)) ProducerOption {
	return func(o *producerOptions) { o.onConfirm = f }
}

// Confirm is the outcome of one message (of a Producer or a SuperProducer).
type Confirm struct {
	// PublishingID is the id the message was sent with.
	PublishingID uint64
	// Tag is OutboundMessage.Tag (0 for Send and SendBatch).
	Tag uint64
	// Partition is, for a SuperProducer, the index of the partition the message went to
	// (in Partitions() as of the confirm); -1 for a Producer.
	Partition int
	// Err is nil when the broker stored the message (for a named producer, possibly dropped
	// as a duplicate). Otherwise an *Error: a broker code (refused), ErrTimeout (no confirm
	// within ConfirmTimeout) or ErrClosed (the producer closed first); in the last two cases
	// the broker may still have stored the message.
	Err error
}

// producerCore is what Producer and SuperProducer share: the library handle behind its guard,
// the goroutine that hands confirms to the application, backpressure, Flush and Close.
type producerCore struct {
	conn  *Conn
	tag   uint64
	super bool
	h     *C.rmqs_producer       // !super
	sh    *C.rmqs_super_producer // super
	g     guard
	box   inbox

	confirms  chan Confirm
	onConfirm func([]Confirm)
	onState   func(StateChange)
	maxUnread uint64

	pmu       sync.Mutex
	accepted  uint64        // messages accepted by sends
	nReceived uint64        // confirms routed to this producer
	handled   uint64        // confirms handed to the application (or dropped)
	progress  chan struct{} // closed and replaced when handled changes
	err       error         // why the producer closed, nil when closed by the application
	lostErr   error         // the first ErrClosed of a send the application did not cause
	closing   bool          // Close was called

	done      chan struct{} // the producer's goroutine has finished
	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error
}

func newProducerCore(c *Conn, super bool, opts []ProducerOption) (*producerCore, producerOptions) {
	o := producerOptions{maxInFlight: 10000}
	for _, opt := range opts {
		opt(&o)
	}
	p := &producerCore{conn: c, super: super, box: newInbox(), onConfirm: o.onConfirm, onState: o.onState,
		maxUnread: uint64(o.maxInFlight), progress: make(chan struct{}),
		done: make(chan struct{}), closeDone: make(chan struct{})}
	if o.withChan {
		p.confirms = make(chan Confirm, o.chanCap)
	}
	return p, o
}

// start creates the library object with create (called with the connection's guard held and
// the new handle published through setHandle), honouring ctx, then starts the goroutine.
func (p *producerCore) start(ctx context.Context, pairs []kv, name string,
	create func(h *C.rmqs_connection, name *C.char, cfg *C.rmqs_config, q *C.rmqs_queue, tag C.size_t) error) error {
	c := p.conn
	cfg, err := newConfig(pairs)
	if err != nil {
		return err
	}
	tag, ok := c.register(p)
	if !ok {
		C.rmqs_config_free(cfg)
		return closedErr("connection")
	}
	p.tag = tag
	cname, free := cstr(name)
	_, err = await(ctx, func() (struct{}, error) {
		defer free()
		defer C.rmqs_config_free(cfg)
		err := func() error {
			if !c.g.acquire() {
				return closedErr("connection")
			}
			defer c.g.release()
			return create(c.h, cname, cfg, c.q, C.size_t(tag))
		}()
		if err != nil {
			c.unregister(tag)
		}
		return struct{}{}, err
	}, func(_ struct{}, err error) {
		if err == nil { // created after ctx ended: close it
			go p.run()
			go p.close(context.Background())
		}
	})
	if err != nil {
		return err
	}
	go p.run()
	return nil
}

// setHandle publishes the handle; false (and the handle freed) when freeHandle came first
// (the connection closed meanwhile).
func (p *producerCore) setHandle(h *C.rmqs_producer, sh *C.rmqs_super_producer) error {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	if p.g.freed {
		C.rmqs_producer_free(h)
		C.rmqs_super_producer_free(sh)
		return closedErr("connection")
	}
	p.h, p.sh = h, sh
	return nil
}

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// BatchError is SendBatch's error when not every message was accepted.
type BatchError struct {
	Accepted int   // how many messages, a prefix of the batch, were accepted
	Err      error // why the next one was not
}

func (e *BatchError) Error() string {
	return e.Err.Error() + " (after " + strconv.Itoa(e.Accepted) + " messages of the batch)"
}

func (e *BatchError) Unwrap() error { return e.Err }

var batchPool = sync.Pool{New: func() any { return new([]byte) }}

// concat appends the bodies to a pooled buffer and lists their lengths. The library takes an
// array of (pointer, length); Go memory passed to C must not hold Go pointers, so batches go
// as one buffer and the array is built on the C side (gormqs.c).
func concat(bodies [][]byte) (buf *[]byte, lens []C.size_t) {
	buf = batchPool.Get().(*[]byte)
	b := (*buf)[:0]
	lens = make([]C.size_t, len(bodies))
	for i, x := range bodies {
		b = append(b, x...)
		lens[i] = C.size_t(len(x))
	}
	*buf = b
	return buf, lens
}

// sent accounts for a send's accepted messages and returns its error. Called with the guard
// held.
//
// A producer whose stream or connection was lost fails its sends with ErrClosed, but the
// library reports no state event for it (only rmqs_producer_close does). So the first such
// failure the application did not cause closes the producer (without waiting): its CLOSED
// event then ends Done, and Err returns that send's error.
func (p *producerCore) sent(st C.rmqs_status, e *C.rmqs_error, accepted uint64) error {
	err := takeError(st, e)
	p.pmu.Lock()
	p.accepted += accepted
	lost := !p.super && st == C.RMQS_ERR_CLOSED && !p.closing && p.lostErr == nil
	if lost {
		p.lostErr = err
	}
	p.pmu.Unlock()
	if lost {
		C.rmqs_producer_close(p.h, 0, nil)
	}
	return err
}

// waitFor waits until cond (evaluated under pmu) holds, the producer is done, or ctx ends.
func (p *producerCore) waitFor(ctx context.Context, cond func() bool) error {
	for {
		p.pmu.Lock()
		if cond() {
			p.pmu.Unlock()
			return nil
		}
		ch := p.progress
		p.pmu.Unlock()
		select {
		case <-ch:
		case <-p.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitRoom applies backpressure when confirms go to the application: sends wait while
// maxUnread confirms have not been handed over yet.
func (p *producerCore) waitRoom() {
	if p.confirms == nil && p.onConfirm == nil {
		return
	}
	_ = p.waitFor(context.Background(), func() bool { return p.nReceived-p.handled < p.maxUnread })
}

func (p *producerCore) errValue() error {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	return p.err
}

func (p *producerCore) flush(ctx context.Context) error {
	p.pmu.Lock()
	target := p.accepted
	p.pmu.Unlock()
	tmo := timeoutMS(ctx)
	_, err := await(ctx, func() (struct{}, error) {
		if !p.g.acquire() {
			return struct{}{}, closedErr("producer")
		}
		defer p.g.release()
		if p.super {
			return struct{}{}, Status(C.rmqs_super_producer_flush(p.sh, tmo, nil)).Err()
		}
		return struct{}{}, Status(C.rmqs_producer_flush(p.h, tmo, nil)).Err()
	}, nil)
	if err != nil {
		return err
	}
	return p.waitFor(ctx, func() bool { return p.handled >= target })
}

func (p *producerCore) close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.pmu.Lock()
		p.closing = true
		p.pmu.Unlock()
		go p.doClose(timeoutMS(ctx))
	})
	select {
	case <-p.closeDone:
		return p.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *producerCore) doClose(tmo C.int32_t) {
	defer close(p.closeDone)
	if p.g.acquire() {
		if p.super {
			p.closeErr = Status(C.rmqs_super_producer_close(p.sh, tmo, nil)).Err()
		} else {
			p.closeErr = Status(C.rmqs_producer_close(p.h, tmo, nil)).Err()
		}
		p.g.release()
	}
	p.freeHandle()
	<-p.done
}

// freeHandle frees the library object once no call uses it (sink).
func (p *producerCore) freeHandle() {
	p.g.free(func() {
		C.rmqs_producer_free(p.h)
		C.rmqs_super_producer_free(p.sh)
	})
}

func (p *producerCore) stats() (ProducerStats, error) {
	if !p.g.acquire() {
		return ProducerStats{}, closedErr("producer")
	}
	defer p.g.release()
	var s C.rmqs_producer_statistics
	s.size = C.uint64_t(unsafe.Sizeof(s))
	var st C.rmqs_status
	if p.super {
		st = C.rmqs_super_producer_stats(p.sh, &s, nil)
	} else {
		st = C.rmqs_producer_stats(p.h, &s, nil)
	}
	if st != 0 {
		return ProducerStats{}, Status(st).Err()
	}
	return ProducerStats{uint64(s.published), uint64(s.confirmed), uint64(s.errored),
		uint64(s.in_flight)}, nil
}

// ProducerStats are a producer's counters (a super producer's: summed over its partition
// producers alive now).
type ProducerStats struct {
	Published, Confirmed, Errored, InFlight uint64
}

func (p *producerCore) push(e event) bool { return p.box.push(e) }
func (p *producerCore) end()              { p.box.end() }

func (p *producerCore) received(n int) {
	p.pmu.Lock()
	p.nReceived += uint64(n)
	p.pmu.Unlock()
}

// run is the producer's goroutine: it hands confirms to the application in order and ends
// after the producer's last event (its CLOSED state) or when the connection closes.
func (p *producerCore) run() {
	var spare []event
	var confs []C.rmqs_confirm
	var sconfs []C.rmqs_super_confirm
	var out []Confirm
	closed := false
	for !closed {
		evs, ok := p.box.take(spare)
		if !ok {
			break
		}
		for i := range evs {
			e := &evs[i]
			switch e.typ {
			case C.RMQS_EVENT_CONFIRMS:
				if cap(confs) < e.nconfirms {
					confs = make([]C.rmqs_confirm, e.nconfirms)
				}
				confs = confs[:e.nconfirms]
				// Go memory without Go pointers, written by C: one cgo call copies the
				// confirms and frees the event.
				n := int(C.gormqs_take_confirms(e.ev, &confs[0], C.size_t(len(confs))))
				e.ev = nil
				out = out[:0]
				for _, c := range confs[:n] {
					out = append(out, Confirm{PublishingID: uint64(c.publishing_id),
						Tag: uint64(c.tag), Partition: -1, Err: Status(c.status).Err()})
				}
				p.deliver(out, e.nconfirms)
			case C.RMQS_EVENT_SUPER_CONFIRMS:
				if cap(sconfs) < e.nconfirms {
					sconfs = make([]C.rmqs_super_confirm, e.nconfirms)
				}
				sconfs = sconfs[:e.nconfirms]
				n := int(C.gormqs_take_super_confirms(e.ev, &sconfs[0], C.size_t(len(sconfs))))
				e.ev = nil
				out = out[:0]
				for _, c := range sconfs[:n] {
					out = append(out, Confirm{PublishingID: uint64(c.publishing_id),
						Tag: uint64(c.tag), Partition: int(c.partition), Err: Status(c.status).Err()})
				}
				p.deliver(out, e.nconfirms)
			case C.RMQS_EVENT_STATE:
				if p.onState != nil {
					p.onState(stateChange(e))
				}
				if e.isFinal() {
					closed = true
					p.pmu.Lock()
					if e.status != StatusOK {
						p.err = &Error{Status: e.status, Message: e.message}
					} else if !p.closing {
						p.err = p.lostErr
					}
					p.pmu.Unlock()
				}
			}
			e.free()
			evs[i] = event{}
		}
		spare = evs
	}
	p.box.discard()
	p.conn.unregister(p.tag)
	if p.confirms != nil {
		close(p.confirms)
	}
	p.pmu.Lock()
	close(p.progress)
	p.progress = make(chan struct{})
	p.pmu.Unlock()
	close(p.done)
}

// deliver hands a batch of confirms to the application (out is reused by the caller).
func (p *producerCore) deliver(out []Confirm, counted int) {
	if p.onConfirm != nil {
		p.onConfirm(append([]Confirm(nil), out...))
	} else if p.confirms != nil {
		for _, c := range out {
			p.confirms <- c
		}
	}
	p.pmu.Lock()
	p.handled += uint64(counted)
	close(p.progress)
	p.progress = make(chan struct{})
	p.pmu.Unlock()
}

// Producer publishes to one stream. Methods are safe for concurrent use; messages sent from
// one goroutine keep their order.
type Producer struct {
	*producerCore
	stream string
}

// NewProducer creates a producer on stream. It blocks for a few round trips with the broker;
// when ctx ends first it returns ctx.Err() and the producer, if created later, is closed in
// the background.
func (c *Conn) NewProducer(ctx context.Context, stream string, opts ...ProducerOption) (*Producer, error) {
	core, o := newProducerCore(c, false, opts)
	p := &Producer{producerCore: core, stream: stream}
	err := core.start(ctx, o.pairs, stream, func(h *C.rmqs_connection, name *C.char,
		cfg *C.rmqs_config, q *C.rmqs_queue, tag C.size_t) error {
		var ph *C.rmqs_producer
		var e *C.rmqs_error
		st := C.rmqs_producer_new(h, name, cfg, nil, nil, nil, q, tag, &ph, &e)
		if err := takeError(st, e); err != nil {
			return err
		}
		return core.setHandle(ph, nil)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Stream is the producer's stream.
func (p *Producer) Stream() string { return p.stream }

// Confirms is the channel of outcomes (WithConfirmChannel); nil without that option.
func (p *Producer) Confirms() <-chan Confirm { return p.confirms }

// Done is closed once the producer is closed for good (by Close, by the connection's Close,
// or because its stream or connection was lost) and its last confirm was delivered.
func (p *Producer) Done() <-chan struct{} { return p.done }

// Err is, after Done, why the producer closed: nil when the application closed it.
func (p *Producer) Err() error { return p.errValue() }

// Send sends one message (its body is copied; the AMQP 1.0 wrapping other clients expect is
// added by the library). It returns once the message is accepted, waiting while MaxInFlight
// messages are unconfirmed (unless FailWhenFull); its outcome comes later as a Confirm.
func (p *Producer) Send(body []byte) error {
	p.waitRoom()
	if !p.g.acquire() {
		return closedErr("producer")
	}
	defer p.g.release()
	var e *C.rmqs_error
	st := C.rmqs_producer_send(p.h, bytesPtr(body), C.size_t(len(body)), 0, 0, &e)
	return p.sent(st, e, one(st))
}

// OutboundMessage is a message with options, for SendMessage.
type OutboundMessage struct {
	Body []byte
	// FilterValue, when not empty, is the message's value for broker-side filtering
	// (RabbitMQ 3.13+).
	FilterValue string
	// PublishingID is used when UsePublishingID is set: it must be above every id the
	// producer (for a super producer: the partition) used before.
	PublishingID    uint64
	UsePublishingID bool
	// Tag comes back in the message's Confirm.
	Tag uint64
	// Raw stores the body as it is, not wrapped in an AMQP 1.0 message (consumers of this
	// library see the same bytes; other clients only decode AMQP-wrapped bodies).
	Raw bool
}

func (m *OutboundMessage) flags() C.uint32_t {
	var flags C.uint32_t
	if m.Raw {
		flags |= C.RMQS_SEND_RAW
	}
	if m.UsePublishingID {
		flags |= C.RMQS_SEND_PUBLISHING_ID
	}
	return flags
}

// cstrOrNil is a C copy of s, or NULL for "", freed by the returned function.
func cstrOrNil(s string) (*C.char, func()) {
	if s == "" {
		return nil, func() {}
	}
	return cstr(s)
}

// SendMessage sends one message with options and returns its publishing id.
func (p *Producer) SendMessage(m OutboundMessage) (uint64, error) {
	p.waitRoom()
	fv, free := cstrOrNil(m.FilterValue)
	defer free()
	if !p.g.acquire() {
		return 0, closedErr("producer")
	}
	defer p.g.release()
	var id C.uint64_t
	var e *C.rmqs_error
	st := C.rmqs_producer_send_ex(p.h, bytesPtr(m.Body), C.size_t(len(m.Body)), fv,
		C.uint64_t(m.PublishingID), C.size_t(m.Tag), m.flags(), &id, &e)
	return uint64(id), p.sent(st, e, one(st))
}

// SendBatch sends several messages in order, with consecutive publishing ids. On failure the
// error is a *BatchError saying how many were accepted (it matches the cause with errors.Is).
func (p *Producer) SendBatch(bodies [][]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	p.waitRoom()
	buf, lens := concat(bodies)
	defer batchPool.Put(buf)
	if !p.g.acquire() {
		return closedErr("producer")
	}
	defer p.g.release()
	var acc C.size_t
	var e *C.rmqs_error
	st := C.gormqs_send_concat(p.h, bytesPtr(*buf), &lens[0], C.size_t(len(bodies)), 0, &acc, &e)
	if err := p.sent(st, e, uint64(acc)); err != nil {
		return &BatchError{Accepted: int(acc), Err: err}
	}
	return nil
}

// LastPublishingID is the last publishing id the producer assigned (for a named producer that
// has not sent yet, the broker's last id for the name); false when there is none yet.
func (p *Producer) LastPublishingID() (uint64, bool) {
	if !p.g.acquire() {
		return 0, false
	}
	defer p.g.release()
	var id C.uint64_t
	ok := C.rmqs_producer_last_id(p.h, &id)
	return uint64(id), bool(ok)
}

// Stats reads the producer's counters (until Close has returned).
func (p *Producer) Stats() (ProducerStats, error) { return p.stats() }

// Flush sends what is batched and waits until every message accepted before the call has its
// outcome handed to the application (delivered to the confirm channel's buffer or the
// OnConfirm function returned). It returns ctx.Err() when ctx ends first, ErrTimeout when the
// library's wait ended with messages still unconfirmed.
func (p *Producer) Flush(ctx context.Context) error { return p.flush(ctx) }

// Close closes the producer: the batched messages go out, it waits for outstanding confirms
// (up to ctx's deadline; the rest get ErrClosed), then frees it. When ctx ends first, Close
// returns ctx.Err() and finishes in the background. Calling Close again waits for the same
// close. Close must not be called from the OnConfirm function (it waits for it to return);
// with a confirm channel, keep receiving until it is closed.
func (p *Producer) Close(ctx context.Context) error { return p.close(ctx) }

// one is how many messages a single send accepted.
func one(st C.rmqs_status) uint64 {
	if st == 0 {
		return 1
	}
	return 0
}
