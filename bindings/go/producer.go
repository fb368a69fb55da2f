package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// ProducerOption configures NewProducer.
type ProducerOption func(*producerOptions)

type producerOptions struct {
	pairs       []kv // after the connection's producer.* pairs
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

// MaxInFlight caps the unconfirmed messages (default 1000, 10000 with sub-entry batching);
// Send waits for room. With a
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
// unconfirmed (ErrTimeout; default: no limit). The send's context bounds it too.
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
	// Tag is Message.Tag (for SendBody, the Template's; 0 for Send and SendBatch).
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

	// What a send does without room (from the connection's and the producer's settings), for
	// sends with a cancellable context, which wait in Go (see send).
	failWhenFull bool
	sendTimeout  time.Duration

	slotMu      sync.Mutex
	slots       []*sendSlot // free
	slotsClosed bool        // the handle was freed: returned slots are freed

	pmu       sync.Mutex
	room      chan struct{} // closed and replaced when confirms arrive (the library has room)
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
		maxUnread: uint64(o.maxInFlight), progress: make(chan struct{}), room: make(chan struct{}),
		done: make(chan struct{}), closeDone: make(chan struct{})}
	p.failWhenFull, p.sendTimeout = sendLimits(append(append([]kv(nil), c.producerDefaults...), o.pairs...))
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
		_ = producerClose(p.h, 0)
	}
	return err
}

// sendLimits reads block_when_full and send_timeout_ms from config pairs (the last wins).
func sendLimits(pairs []kv) (failWhenFull bool, timeout time.Duration) {
	for _, p := range pairs {
		switch strings.ReplaceAll(strings.TrimPrefix(p.key, "producer."), "-", "_") {
		case "block_when_full":
			failWhenFull = p.value == "false" || p.value == "0"
		case "send_timeout_ms":
			if n, err := strconv.ParseInt(p.value, 10, 64); err == nil && n >= 0 {
				timeout = time.Duration(n) * time.Millisecond
			}
		}
	}
	return failWhenFull, timeout
}

// send runs attempt (which calls one of the library's sends with flags and says how many
// messages it accepted) with the guard held, and returns how many messages were accepted.
//
// The library's blocking wait for room cannot be interrupted, so with a context that can end
// the library is asked not to wait (RMQS_SEND_NO_BLOCK) and the wait happens here: until
// confirms arrive (the library then has room), the context ends (ctx.Err(), nothing more sent),
// or SendTimeout passes (ErrTimeout); with FailWhenFull the first ErrQueueFull is returned.
// A context that cannot end (context.Background()) lets the library wait itself.
func (p *producerCore) send(ctx context.Context, attempt func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64)) (uint64, error) {
	if err := p.waitRoom(ctx); err != nil {
		return 0, err
	}
	if ctx.Done() == nil {
		if !p.g.acquire() {
			return 0, closedErr(p.what())
		}
		defer p.g.release()
		st, e, acc := attempt(0)
		return acc, p.sent(st, e, acc)
	}
	var total uint64
	var timeout <-chan time.Time
	if p.sendTimeout > 0 {
		t := time.NewTimer(p.sendTimeout)
		defer t.Stop()
		timeout = t.C
	}
	backoff := time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		p.pmu.Lock()
		room := p.room
		p.pmu.Unlock()
		if !p.g.acquire() {
			return total, closedErr(p.what())
		}
		st, e, acc := attempt(C.RMQS_SEND_NO_BLOCK)
		total += acc
		if st != C.RMQS_ERR_QUEUE_FULL || p.failWhenFull {
			err := p.sent(st, e, acc)
			p.g.release()
			return total, err
		}
		_ = p.sent(C.RMQS_OK, e, acc) // accounts for what was accepted, frees e
		p.g.release()
		// Confirms free room; the timer covers a confirm counted by the library just after
		// its event was queued.
		wait := time.NewTimer(backoff)
		select {
		case <-room:
			backoff = time.Millisecond
		case <-wait.C:
			if backoff < 50*time.Millisecond {
				backoff *= 2
			}
		case <-ctx.Done():
			wait.Stop()
			return total, ctx.Err()
		case <-timeout:
			wait.Stop()
			return total, &Error{Status: StatusTimeout, Message: "no room for the message within SendTimeout"}
		}
		wait.Stop()
	}
}

func (p *producerCore) what() string {
	if p.super {
		return "super producer"
	}
	return "producer"
}

// sendSlot is what a send of Messages uses: a library builder and the buffer the messages are
// encoded into. A producer keeps the slots it made (one per concurrent sender) for reuse.
type sendSlot struct {
	b    *C.rmqs_message_builder
	enc  encoder
	ends []C.size_t
	tags []C.size_t
	keys []byte // super producer: NUL-terminated routing keys back to back

	// The send in progress: the next message, its key, the library's outputs.
	first, keyPos int
	acc           C.size_t
	part          C.uint32_t
	id            C.uint64_t
	e             *C.rmqs_error
	send          func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) // for producerCore.send

	// SendBody's template and body (and routing key in keys, for a super producer), and its
	// send function.
	tmpl     *Template
	body     []byte
	sendBody func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64)
}

func (p *producerCore) getSlot() (*sendSlot, error) {
	p.slotMu.Lock()
	defer p.slotMu.Unlock()
	if n := len(p.slots); n > 0 {
		s := p.slots[n-1]
		p.slots = p.slots[:n-1]
		s.enc.b, s.ends, s.tags, s.keys = s.enc.b[:0], s.ends[:0], s.tags[:0], s.keys[:0]
		return s, nil
	}
	b, err := newBuilder()
	if err != nil {
		return nil, err
	}
	s := &sendSlot{b: b}
	// The send function and its state live in the slot: a send allocates nothing but what
	// cgo's pointer checks need.
	s.send = func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) {
		var keys *C.char
		if p.super {
			keys = (*C.char)(unsafe.Pointer(&s.keys[s.keyPos]))
		}
		s.e = nil
		st := C.gormqs_send_encoded(p.h, p.sh, s.b, keys, bytesPtr(s.enc.b), &s.ends[0], &s.tags[0],
			C.size_t(s.first), C.size_t(len(s.ends)), flags, &s.acc, &s.part, &s.id, &s.e)
		for i := 0; i < int(s.acc) && p.super; i++ {
			for s.keys[s.keyPos] != 0 {
				s.keyPos++
			}
			s.keyPos++
		}
		s.first += int(s.acc)
		return st, s.e, uint64(s.acc)
	}
	s.sendBody = func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) {
		s.e = nil
		var st C.rmqs_status
		if p.super {
			st = C.rmqs_super_producer_send_message_body(p.sh, (*C.char)(unsafe.Pointer(&s.keys[0])), s.tmpl.b,
				bytesPtr(s.body), C.size_t(len(s.body)), s.tmpl.tag, flags, &s.part, &s.id, &s.e)
		} else {
			st = C.rmqs_producer_send_message_body(p.h, s.tmpl.b, bytesPtr(s.body), C.size_t(len(s.body)),
				s.tmpl.tag, flags, &s.id, &s.e)
		}
		return st, s.e, one(st)
	}
	return s, nil
}

// newBuilder is a new library builder, to free with rmqs_message_builder_free.
func newBuilder() (*C.rmqs_message_builder, error) {
	b := C.rmqs_message_builder_new()
	if b == nil {
		return nil, &Error{Status: StatusInvalidArgument, Message: "rmqs_message_builder_new: out of memory"}
	}
	return b, nil
}

func (p *producerCore) putSlot(s *sendSlot) {
	p.slotMu.Lock()
	defer p.slotMu.Unlock()
	if p.slotsClosed {
		C.rmqs_message_builder_free(s.b)
		return
	}
	p.slots = append(p.slots, s)
}

// encode encodes msgs into the slot.
func (s *sendSlot) encode(msgs []*Message) error {
	for _, m := range msgs {
		if m.Raw {
			return invalid("a Raw message is sent alone (SendMessage)")
		}
		if err := s.enc.encode(m); err != nil {
			return err
		}
		s.ends = append(s.ends, C.size_t(len(s.enc.b)))
		s.tags = append(s.tags, C.size_t(m.Tag))
	}
	return nil
}

// sendMessages sends msgs (to the super producer routed by routingKeys, one per message)
// through a reused slot: how many were accepted, and the partition and id of the last one.
func (p *producerCore) sendMessages(ctx context.Context, routingKeys []string, msgs []*Message) (int, uint32, uint64, error) {
	s, err := p.getSlot()
	if err != nil {
		return 0, 0, 0, err
	}
	defer p.putSlot(s)
	if s.keys, err = joinKeys(s.keys, routingKeys); err != nil {
		return 0, 0, 0, err
	}
	if err := s.encode(msgs); err != nil {
		return 0, 0, 0, err
	}
	return p.sendEncoded(ctx, s)
}

// joinKeys appends the routing keys NUL-terminated back to back (read by gormqs.c).
func joinKeys(dst []byte, routingKeys []string) ([]byte, error) {
	for _, k := range routingKeys {
		if strings.IndexByte(k, 0) >= 0 {
			return nil, invalid("a routing key contains a NUL byte")
		}
		dst = append(append(dst, k...), 0)
	}
	return dst, nil
}

// sendEncoded sends the slot's messages (to sp when not nil, routed by s.keys) and returns how
// many were accepted, and the partition and id of the last one.
func (p *producerCore) sendEncoded(ctx context.Context, s *sendSlot) (int, uint32, uint64, error) {
	s.first, s.keyPos = 0, 0
	total, err := p.send(ctx, s.send)
	return int(total), uint32(s.part), uint64(s.id), err
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
// maxUnread confirms have not been handed over yet (or until ctx ends).
func (p *producerCore) waitRoom(ctx context.Context) error {
	if p.confirms == nil && p.onConfirm == nil {
		return nil
	}
	return p.waitFor(ctx, func() bool { return p.nReceived-p.handled < p.maxUnread })
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
		var e *C.rmqs_error
		if p.super {
			return struct{}{}, takeError(C.rmqs_super_producer_flush(p.sh, tmo, &e), e)
		}
		return struct{}{}, takeError(C.rmqs_producer_flush(p.h, tmo, &e), e)
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
		var e *C.rmqs_error
		if p.super {
			p.closeErr = takeError(C.rmqs_super_producer_close(p.sh, tmo, &e), e)
		} else {
			p.closeErr = producerClose(p.h, tmo)
		}
		p.g.release()
	}
	p.freeHandle()
	<-p.done
}

// producerClose is rmqs_producer_close.
func producerClose(h *C.rmqs_producer, tmo C.int32_t) error {
	var e *C.rmqs_error
	return takeError(C.rmqs_producer_close(h, tmo, &e), e)
}

// freeHandle frees the library object once no call uses it, and the free builders (sink).
func (p *producerCore) freeHandle() {
	p.g.free(func() {
		C.rmqs_producer_free(p.h)
		C.rmqs_super_producer_free(p.sh)
		p.slotMu.Lock()
		for _, s := range p.slots {
			C.rmqs_message_builder_free(s.b)
		}
		p.slots, p.slotsClosed = nil, true
		p.slotMu.Unlock()
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
	var e *C.rmqs_error
	if p.super {
		st = C.rmqs_super_producer_stats(p.sh, &s, &e)
	} else {
		st = C.rmqs_producer_stats(p.h, &s, &e)
	}
	if err := takeError(st, e); err != nil {
		return ProducerStats{}, err
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
	close(p.room)
	p.room = make(chan struct{})
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
// messages are unconfirmed (unless FailWhenFull) until ctx ends (ctx.Err(); the message is
// then not sent) or SendTimeout passes; its outcome comes later as a Confirm.
func (p *Producer) Send(ctx context.Context, body []byte) error {
	_, err := p.send(ctx, func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) {
		var e *C.rmqs_error
		st := C.rmqs_producer_send(p.h, bytesPtr(body), C.size_t(len(body)), 0, flags, &e)
		return st, e, one(st)
	})
	return err
}

// SendMessage sends one Message (every section, its filter value and publishing id; encoded
// into a builder the producer reuses) and returns its publishing id. It waits as Send.
func (p *Producer) SendMessage(ctx context.Context, m *Message) (uint64, error) {
	if m.plain() {
		return p.sendPlain(ctx, m)
	}
	_, _, id, err := p.sendMessages(ctx, nil, []*Message{m})
	return id, err
}

// sendPlain sends a message with a body alone, without a builder.
func (p *Producer) sendPlain(ctx context.Context, m *Message) (uint64, error) {
	fv, free := cstrOrNil(m.FilterValue)
	defer free()
	var id C.uint64_t
	_, err := p.send(ctx, func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) {
		var e *C.rmqs_error
		st := C.rmqs_producer_send_ex(p.h, bytesPtr(m.Body), C.size_t(len(m.Body)), fv,
			C.uint64_t(m.PublishingID), C.size_t(m.Tag), flags|m.flags(), &id, &e)
		return st, e, one(st)
	})
	return uint64(id), err
}

// SendMessages sends several Messages in order, as SendMessage. On failure the error is a
// *BatchError saying how many were accepted.
func (p *Producer) SendMessages(ctx context.Context, msgs []*Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if n, _, _, err := p.sendMessages(ctx, nil, msgs); err != nil {
		return &BatchError{Accepted: n, Err: err}
	}
	return nil
}

// Template is a Message's sections prepared once for SendBody, for messages that differ only
// in their body: SendBody sends them with another body each time at about the cost of Send,
// where SendMessage encodes and builds every section of every message. A Template never
// changes once made: it may be sent by several goroutines and producers at once. Close frees
// it.
type Template struct {
	g   guard
	b   *C.rmqs_message_builder
	tag C.size_t
}

// NewTemplate prepares m's sections (everything but its body, which SendBody replaces), its
// filter value and its Tag (which comes back in each message's Confirm). m is not referenced
// afterwards. A publishing id (UsePublishingID) applies to every send, so a named producer
// keeps only the first message: leave it unset. A Raw message has no sections: use Send.
func NewTemplate(m *Message) (*Template, error) {
	if m.Raw {
		return nil, invalid("a Raw message has no sections to prepare (use Send)")
	}
	var enc encoder
	if err := enc.encode(m); err != nil {
		return nil, err
	}
	b, err := newBuilder()
	if err != nil {
		return nil, err
	}
	var e *C.rmqs_error
	if err := takeError(C.gormqs_build(b, bytesPtr(enc.b), C.size_t(len(enc.b)), &e), e); err != nil {
		C.rmqs_message_builder_free(b)
		return nil, err
	}
	return &Template{b: b, tag: C.size_t(m.Tag)}, nil
}

// Close frees the template once the sends using it have returned; later SendBody calls with it
// fail with ErrClosed. Calling Close again does nothing.
func (t *Template) Close() { t.g.free(func() { C.rmqs_message_builder_free(t.b) }) }

// SendBody sends one message made of t's sections with body (copied) as its one data section,
// and returns its publishing id. It waits as Send.
func (p *Producer) SendBody(ctx context.Context, t *Template, body []byte) (uint64, error) {
	_, id, err := p.sendBody(ctx, "", t, body)
	return id, err
}

// sendBody is SendBody of both producers (routingKey: a super producer's), returning the
// partition (super producer) and the publishing id.
func (p *producerCore) sendBody(ctx context.Context, routingKey string, t *Template, body []byte) (int, uint64, error) {
	if !t.g.acquire() {
		return 0, 0, closedErr("template")
	}
	defer t.g.release()
	s, err := p.getSlot()
	if err != nil {
		return 0, 0, err
	}
	defer p.putSlot(s)
	if p.super {
		s.keys = append(append(s.keys[:0], routingKey...), 0)
	}
	s.tmpl, s.body = t, body
	_, err = p.send(ctx, s.sendBody)
	s.tmpl, s.body = nil, nil
	return int(s.part), uint64(s.id), err
}

func (m *Message) flags() C.uint32_t {
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

// SendBatch sends several messages in order, with consecutive publishing ids, waiting as
// Send. On failure (ctx's end included) the error is a *BatchError saying how many were
// accepted (it matches the cause with errors.Is).
func (p *Producer) SendBatch(ctx context.Context, bodies [][]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	buf, lens := concat(bodies)
	defer batchPool.Put(buf)
	done, pos := 0, 0
	n, err := p.send(ctx, func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) {
		var acc C.size_t
		var e *C.rmqs_error
		st := C.gormqs_send_concat(p.h, bytesPtr((*buf)[pos:]), &lens[done], C.size_t(len(bodies)-done), flags, &acc, &e)
		for _, l := range lens[done : done+int(acc)] {
			pos += int(l)
		}
		done += int(acc)
		return st, e, uint64(acc)
	})
	if err != nil {
		return &BatchError{Accepted: int(n), Err: err}
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
