package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// OffsetSpec is where a consumer starts: First, Last, Next, Offset(n) or Timestamp(t). It is
// a ConsumerOption. The zero value, DefaultOffset, means "what the library would choose"
// (as an option it changes nothing; as the answer of an OnConsumerUpdate function it is the
// update's Default).
type OffsetSpec struct {
	typ   int32
	value int64
}

var (
	// DefaultOffset is the library's choice (the zero OffsetSpec).
	DefaultOffset = OffsetSpec{}
	// First starts at the first message still in the stream.
	First = OffsetSpec{typ: C.RMQS_OFFSET_FIRST}
	// Last starts at the last chunk written (its first message).
	Last = OffsetSpec{typ: C.RMQS_OFFSET_LAST}
	// Next starts after the last message written: only new messages (the library's default).
	Next = OffsetSpec{typ: C.RMQS_OFFSET_NEXT}
)

// Offset starts at offset n (delivery starts in the chunk that holds n; earlier messages of
// that chunk are skipped).
func Offset(n uint64) OffsetSpec { return OffsetSpec{typ: C.RMQS_OFFSET_OFFSET, value: int64(n)} }

// Timestamp starts at the first chunk written at or after t (millisecond precision).
func Timestamp(t time.Time) OffsetSpec {
	return OffsetSpec{typ: C.RMQS_OFFSET_TIMESTAMP, value: t.UnixMilli()}
}

// String is the spec as the library's `offset` key spells it ("first", "offset:42", ...;
// "default" for DefaultOffset).
func (s OffsetSpec) String() string {
	switch s.typ {
	case C.RMQS_OFFSET_FIRST:
		return "first"
	case C.RMQS_OFFSET_LAST:
		return "last"
	case C.RMQS_OFFSET_NEXT:
		return "next"
	case C.RMQS_OFFSET_OFFSET:
		return "offset:" + strconv.FormatInt(s.value, 10)
	case C.RMQS_OFFSET_TIMESTAMP:
		return "timestamp:" + strconv.FormatInt(s.value, 10)
	}
	return "default"
}

func (s OffsetSpec) applyConsumer(o *consumerOptions) {
	if s != DefaultOffset {
		o.set("offset", s.String())
	}
}

func (s OffsetSpec) c() C.rmqs_offset_spec {
	return C.rmqs_offset_spec{_type: C.int32_t(s.typ), value: C.int64_t(s.value)}
}

func offsetSpecOf(s C.rmqs_offset_spec) OffsetSpec {
	return OffsetSpec{typ: int32(s._type), value: int64(s.value)}
}

// ConsumerOption configures NewConsumer and NewSuperConsumer. Offset specs (First,
// Offset(n), ...) are options.
type ConsumerOption interface{ applyConsumer(*consumerOptions) }

type consumerOption func(*consumerOptions)

func (f consumerOption) applyConsumer(o *consumerOptions) { f(o) }

type consumerOptions struct {
	pairs      []kv
	sharedBody bool
	filters    int
	postFilter func(Message) bool
	onError    func(error)
	onUpdate   func(ConsumerUpdate) OffsetSpec
	onState    func(StateChange)
}

func (o *consumerOptions) set(k, v string) { o.pairs = append(o.pairs, kv{k, v}) }

func setting(k, v string) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.set(k, v) })
}

// ConsumerName names the consumer: its offset-tracking reference (StoreOffset, QueryOffset,
// tracking) and, with SingleActive, its group.
func ConsumerName(name string) ConsumerOption { return setting("name", name) }

// InitialCredit sets how many chunks the broker may send ahead (1–32767, default 10). Chunks
// not yet handled hold their credit, so this bounds the consumer's memory.
func InitialCredit(n int) ConsumerOption { return setting("initial_credit", strconv.Itoa(n)) }

// ManualCredit stops the automatic credit: after InitialCredit chunks the broker sends more
// only as Credit grants.
func ManualCredit() ConsumerOption { return setting("credit_policy", "manual") }

// CreditPolicy sets any credit policy of the library: "on_release" (default: a chunk's credit
// returns when it was handled), "on_arrival", "after_processed:N", "when_below:PERCENT",
// "ratio:R", "manual".
func CreditPolicy(policy string) ConsumerOption { return setting("credit_policy", policy) }

// CRCCheck turns the chunks' CRC-32 check on or off (default on).
func CRCCheck(on bool) ConsumerOption { return setting("crc_check", strconv.FormatBool(on)) }

// SubscriptionProperty sends a raw subscription property.
func SubscriptionProperty(key, value string) ConsumerOption {
	return setting("property."+key, value)
}

// ConsumerSetting sets any consumer key of rmqs_config_set().
func ConsumerSetting(key, value string) ConsumerOption { return setting(key, value) }

// Filter asks the broker for the chunks holding messages sent with one of these filter
// values (Message.FilterValue; RabbitMQ 3.13+). The broker filters per chunk with a
// Bloom filter, so other messages come too: add PostFilter to drop them.
func Filter(values ...string) ConsumerOption {
	return consumerOption(func(o *consumerOptions) {
		for _, v := range values { // as properties: values may hold commas
			o.set("property.filter."+strconv.Itoa(o.filters), v)
			o.filters++
		}
	})
}

// MatchUnfiltered makes a Filter consumer also receive messages sent without a filter value.
func MatchUnfiltered() ConsumerOption { return setting("match_unfiltered", "true") }

// PostFilter drops the messages for which keep returns false before they reach the handler
// or channel (client-side, after the broker's Filter). keep runs on the consumer's goroutine.
// Dropped messages still count as processed (their chunk is released as usual).
func PostFilter(keep func(Message) bool) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.postFilter = keep })
}

// SharedChunkBodies copies the bodies of a chunk's messages into one Go allocation per chunk
// and slices each Message.Body from it, instead of one allocation per message: fewer, larger
// allocations for small messages. The price: a Body kept after its handler keeps the whole
// chunk's bodies alive. (Bodies are never views of the library's memory: Go code could keep
// such a slice past the chunk's release, and nothing would catch the use after free.)
func SharedChunkBodies() ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.sharedBody = true })
}

// SingleActive makes the consumer part of a single-active-consumer group named by its
// ConsumerName (RabbitMQ 3.11+): of the group's consumers on the stream, the broker delivers
// to one at a time. When a consumer becomes active it starts after the offset stored under
// its tracking reference (else at its OffsetSpec), or where OnConsumerUpdate says.
func SingleActive() ConsumerOption { return setting("single_active_consumer", "true") }

// ConsumerUpdate is a single active consumer's change of state, given to the
// OnConsumerUpdate function.
type ConsumerUpdate struct {
	Stream string // the stream (the partition, for a super consumer)
	// Partition is, for a SuperConsumer, the partition's index; -1 for a Consumer.
	Partition int
	// Active: the consumer becomes the active one and starts where the function's answer
	// says; false: it steps down (the answer is ignored; its chunks were handled already).
	Active bool
	// StoredOffset is, on activation, the offset stored under the consumer's tracking
	// reference; HasStoredOffset is false when none is.
	StoredOffset    uint64
	HasStoredOffset bool
	// Default is what the library answers without the application: right after the stored
	// offset, else the consumer's OffsetSpec.
	Default OffsetSpec
}

// OnConsumerUpdate calls f when the single active consumer is activated or steps down, on
// the consumer's goroutine (in order with its messages); f returns where to start
// (DefaultOffset for u.Default). The broker waits for the answer: after
// ConsumerUpdateTimeout (default 5 s) the library answers the default itself.
func OnConsumerUpdate(f func(u ConsumerUpdate) OffsetSpec) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.onUpdate = f })
}

// ConsumerUpdateTimeout bounds the wait for the OnConsumerUpdate answer (and, on a step-down,
// for the handling of the chunks already delivered); 1 ms to 55 s, default 5 s.
func ConsumerUpdateTimeout(d time.Duration) ConsumerOption {
	return setting("consumer_update_timeout_ms", ms(d))
}

// ManualTracking turns on server-side offset tracking without automatic stores: the offset
// stored under the tracking reference is looked up at start and reading resumes right after
// it (the OffsetSpec applies only when none is stored); stores are StoreOffset and
// StoreProcessedOffset.
func ManualTracking() ConsumerOption { return setting("tracking", "manual") }

// AutoTracking turns on server-side offset tracking with automatic stores: like
// ManualTracking, plus the processed offset (that of the last message of the chunks handled
// so far) is stored every `messages` messages and every `interval` when it moved, and on
// Close. 0 keeps the library's default for that criterion (10000 messages, 5 s); use
// ConsumerSetting("tracking_messages", "0") to turn one off.
func AutoTracking(messages int, interval time.Duration) ConsumerOption {
	return consumerOption(func(o *consumerOptions) {
		o.set("tracking", "auto")
		if messages > 0 {
			o.set("tracking_messages", strconv.Itoa(messages))
		}
		if interval > 0 {
			o.set("tracking_interval_ms", ms(interval))
		}
	})
}

// TrackingReference sets the offset-tracking reference (default: the ConsumerName).
func TrackingReference(ref string) ConsumerOption { return setting("tracking_reference", ref) }

// AddedPartitionOffset sets where a SuperConsumer's consumers of partitions added by Refresh
// start when nothing is stored for them (default First).
func AddedPartitionOffset(s OffsetSpec) ConsumerOption {
	return setting("added_partition_offset", s.String())
}

// OnError receives non-fatal errors of the consumer (e.g. a chunk failing its CRC check; for
// a SuperConsumer, a partition's stream or connection lost), on the consumer's goroutine.
func OnError(f func(error)) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.onError = f })
}

// OnConsumerState receives the consumer's state changes (recovering, recovered, closed; for a
// SuperConsumer also those of each partition's consumer), in order with its messages, on the
// consumer's goroutine.
func OnConsumerState(f func(StateChange)) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.onState = f })
}

// PartitionError is the error OnError receives for one partition of a SuperConsumer.
type PartitionError struct {
	Partition int // index in Partitions()
	Err       error
}

func (e *PartitionError) Error() string {
	return "partition " + strconv.Itoa(e.Partition) + ": " + e.Err.Error()
}

func (e *PartitionError) Unwrap() error { return e.Err }

// StoreOffset stores the message's offset under its consumer's tracking reference (for a
// super consumer, on the message's partition).
func (m Message) StoreOffset() error {
	if m.core.super {
		return m.core.storeOffset(m.Partition, m.Offset)
	}
	return m.core.storeOffset(0, m.Offset)
}

// Handler handles one message, on the consumer's own goroutine: the messages of one consumer
// in order, never concurrently.
type Handler func(Message)

// consumerCore is what Consumer and SuperConsumer share: the handle behind its guard, the
// goroutine that hands messages over, Close.
type consumerCore struct {
	conn  *Conn
	name  string // stream or super stream
	tag   uint64
	super bool
	h     *C.rmqs_consumer       // !super
	sh    *C.rmqs_super_consumer // super
	g     guard
	box   inbox

	handler    Handler
	msgs       chan Message
	postFilter func(Message) bool
	onError    func(error)
	onUpdate   func(ConsumerUpdate) OffsetSpec
	onState    func(StateChange)

	buf        *C.gormqs_msg // C array of bufCap; the consumer's goroutine only
	bufCap     int
	secs       *C.gormqs_buf // the chunk's encoded sections; the consumer's goroutine only
	sharedBody bool

	closingFlag atomic.Bool
	closing     chan struct{}
	done        chan struct{}
	emu         sync.Mutex
	err         error

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error
}

func newConsumerCore(c *Conn, super bool, name string, handler Handler, opts []ConsumerOption) (*consumerCore, consumerOptions) {
	var o consumerOptions
	for _, opt := range opts {
		opt.applyConsumer(&o)
	}
	k := &consumerCore{conn: c, name: name, super: super, box: newInbox(), handler: handler,
		postFilter: o.postFilter, onError: o.onError, onUpdate: o.onUpdate, onState: o.onState,
		sharedBody: o.sharedBody, closing: make(chan struct{}), done: make(chan struct{}), closeDone: make(chan struct{})}
	if handler == nil {
		k.msgs = make(chan Message)
	}
	return k, o
}

// start creates the library object (see producerCore.start) and starts the goroutine.
func (k *consumerCore) start(ctx context.Context, pairs []kv,
	create func(h *C.rmqs_connection, name *C.char, cfg *C.rmqs_config, q *C.rmqs_queue, tag C.size_t) error) error {
	c := k.conn
	cfg, err := newConfig(pairs)
	if err != nil {
		return err
	}
	tag, ok := c.register(k)
	if !ok {
		C.rmqs_config_free(cfg)
		return closedErr("connection")
	}
	k.tag = tag
	cname, free := cstr(k.name)
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
			go k.run()
			go k.close(context.Background())
		}
	})
	if err != nil {
		return err
	}
	go k.run()
	return nil
}

func (k *consumerCore) setHandle(h *C.rmqs_consumer, sh *C.rmqs_super_consumer) error {
	k.g.mu.Lock()
	defer k.g.mu.Unlock()
	if k.g.freed { // the connection closed meanwhile
		C.rmqs_consumer_free(h)
		C.rmqs_super_consumer_free(sh)
		return closedErr("connection")
	}
	k.h, k.sh = h, sh
	return nil
}

func (k *consumerCore) errValue() error {
	k.emu.Lock()
	defer k.emu.Unlock()
	return k.err
}

func (k *consumerCore) credit(partition, n int) error {
	if n < 1 || n > 32767 {
		return &Error{Status: StatusInvalidArgument, Message: "credits must be 1 to 32767"}
	}
	if !k.g.acquire() {
		return closedErr("consumer")
	}
	defer k.g.release()
	if k.super {
		if partition < 0 {
			return &Error{Status: StatusInvalidArgument, Message: "negative partition index"}
		}
		var e *C.rmqs_error
		return takeError(C.rmqs_super_consumer_credit(k.sh, C.size_t(partition), C.uint32_t(n), &e), e)
	}
	var e *C.rmqs_error
	return takeError(C.rmqs_consumer_credit(k.h, C.uint32_t(n), &e), e)
}

func (k *consumerCore) storeOffset(partition int, offset uint64) error {
	if !k.g.acquire() {
		return closedErr("consumer")
	}
	defer k.g.release()
	var e *C.rmqs_error
	if k.super {
		if partition < 0 {
			return &Error{Status: StatusInvalidArgument, Message: "negative partition index"}
		}
		return takeError(C.rmqs_super_consumer_store_offset(k.sh, C.size_t(partition), C.uint64_t(offset), &e), e)
	}
	return takeError(C.rmqs_consumer_store_offset(k.h, C.uint64_t(offset), &e), e)
}

func (k *consumerCore) queryOffset(ctx context.Context, partition int) (uint64, error) {
	return await(ctx, func() (uint64, error) {
		if !k.g.acquire() {
			return 0, closedErr("consumer")
		}
		defer k.g.release()
		var out C.uint64_t
		var e *C.rmqs_error
		var st C.rmqs_status
		if k.super {
			if partition < 0 {
				return 0, &Error{Status: StatusInvalidArgument, Message: "negative partition index"}
			}
			st = C.rmqs_super_consumer_query_offset(k.sh, C.size_t(partition), &out, &e)
		} else {
			st = C.rmqs_consumer_query_offset(k.h, &out, &e)
		}
		return uint64(out), takeError(st, e)
	}, nil)
}

// ConsumerStats are a consumer's counters (a super consumer's: summed over its partitions).
type ConsumerStats struct {
	Messages, Chunks, Bytes, CreditsGranted, FilteredOut, OffsetsStored uint64
	// LastStoredOffset is the offset stored last; valid when OffsetsStored > 0 (never for a
	// super consumer: offsets are per partition).
	LastStoredOffset uint64
}

func (k *consumerCore) stats() (ConsumerStats, error) {
	if !k.g.acquire() {
		return ConsumerStats{}, closedErr("consumer")
	}
	defer k.g.release()
	var s C.rmqs_consumer_statistics
	s.size = C.uint64_t(unsafe.Sizeof(s))
	var st C.rmqs_status
	var e *C.rmqs_error
	if k.super {
		st = C.rmqs_super_consumer_stats(k.sh, &s, &e)
	} else {
		st = C.rmqs_consumer_stats(k.h, &s, &e)
	}
	if err := takeError(st, e); err != nil {
		return ConsumerStats{}, err
	}
	return ConsumerStats{uint64(s.messages), uint64(s.chunks), uint64(s.bytes),
		uint64(s.credits_granted), uint64(s.filtered_out), uint64(s.offsets_stored),
		uint64(s.last_stored_offset)}, nil
}

func (k *consumerCore) close(ctx context.Context) error {
	k.closeOnce.Do(func() {
		k.closingFlag.Store(true)
		close(k.closing)
		go k.doClose(timeoutMS(ctx))
	})
	select {
	case <-k.closeDone:
		return k.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *consumerCore) doClose(tmo C.int32_t) {
	defer close(k.closeDone)
	if k.g.acquire() {
		var e *C.rmqs_error
		if k.super {
			k.closeErr = takeError(C.rmqs_super_consumer_close(k.sh, tmo, &e), e)
		} else {
			k.closeErr = takeError(C.rmqs_consumer_close(k.h, tmo, &e), e)
		}
		k.g.release()
	}
	k.freeHandle()
	<-k.done
}

func (k *consumerCore) freeHandle() {
	k.g.free(func() {
		C.rmqs_consumer_free(k.h)
		C.rmqs_super_consumer_free(k.sh)
	})
}

func (k *consumerCore) push(e event) bool { return k.box.push(e) }
func (k *consumerCore) end()              { k.box.end() }
func (k *consumerCore) received(int)      {}

// run is the consumer's goroutine: chunks in order, each released after its messages were
// handled; it ends after the consumer's CLOSED state or when the connection closes.
func (k *consumerCore) run() {
	var spare []event
	closed := false
	for !closed {
		evs, ok := k.box.take(spare)
		if !ok {
			break
		}
		for i := range evs {
			e := &evs[i]
			switch e.typ {
			case C.RMQS_EVENT_CHUNK:
				if !k.closingFlag.Load() {
					k.handleChunk(e.ev, e.partition)
				}
			case C.RMQS_EVENT_CONSUMER_UPDATE:
				k.consumerUpdate(e)
			case C.RMQS_EVENT_ERROR:
				if k.onError != nil {
					var err error = &Error{Status: e.status, Message: e.message}
					if e.partition >= 0 {
						err = &PartitionError{Partition: e.partition, Err: err}
					}
					k.onError(err)
				}
			case C.RMQS_EVENT_STATE:
				if k.onState != nil {
					k.onState(stateChange(e))
				}
				if e.isFinal() {
					closed = true
					if e.status != StatusOK {
						k.emu.Lock()
						k.err = &Error{Status: e.status, Message: e.message}
						k.emu.Unlock()
					}
				}
			}
			e.free() // releases a chunk: its credit goes back to the broker
			evs[i] = event{}
		}
		spare = evs
	}
	k.box.discard()
	k.conn.unregister(k.tag)
	if k.buf != nil {
		C.free(unsafe.Pointer(k.buf))
	}
	if k.secs != nil {
		C.free(unsafe.Pointer(k.secs.data))
		C.free(unsafe.Pointer(k.secs))
	}
	if k.msgs != nil {
		close(k.msgs)
	}
	close(k.done)
}

// consumerUpdate answers an activation or step-down: with the OnConsumerUpdate function's
// answer, else with the default (freeing the event unanswered).
func (k *consumerCore) consumerUpdate(e *event) {
	if k.onUpdate == nil {
		return
	}
	info := C.rmqs_event_consumer_update(e.ev)
	if info == nil {
		return
	}
	u := ConsumerUpdate{Stream: C.GoString(info.stream), Partition: e.partition,
		Active: bool(info.is_active), Default: offsetSpecOf(info.default_offset)}
	if uint64(info.stored_offset) != ^uint64(0) {
		u.StoredOffset, u.HasStoredOffset = uint64(info.stored_offset), true
	}
	if !k.super {
		u.Partition = -1
	}
	spec := k.onUpdate(u)
	if st := C.rmqs_event_consumer_update_reply(e.ev, spec.c(), nil); st != 0 && k.onError != nil {
		k.onError(Status(st).Err())
	}
}

// handleChunk reads a chunk's messages with one cgo call (offsets, bodies and every other
// section, encoded), copies each body once into Go memory (one allocation per message, or per
// chunk with SharedChunkBodies), decodes the sections of messages that have any, and hands the
// messages over in order.
func (k *consumerCore) handleChunk(ev *C.rmqs_event, partition int) {
	var chunkID C.uint64_t
	var stream *C.char
	if k.secs == nil {
		k.secs = (*C.gormqs_buf)(C.calloc(1, C.size_t(unsafe.Sizeof(C.gormqs_buf{}))))
	}
	n := int(C.gormqs_chunk_messages(ev, k.buf, C.size_t(k.bufCap), &chunkID, &stream, k.secs))
	if n > k.bufCap {
		C.free(unsafe.Pointer(k.buf))
		k.bufCap = n + n/2
		k.buf = (*C.gormqs_msg)(C.malloc(C.size_t(k.bufCap) * C.size_t(unsafe.Sizeof(C.gormqs_msg{}))))
		n = int(C.gormqs_chunk_messages(ev, k.buf, C.size_t(k.bufCap), &chunkID, &stream, k.secs))
	}
	if n == 0 {
		if k.secs.data == nil && k.onError != nil {
			k.onError(&Error{Status: StatusInvalidArgument, Message: "out of memory reading a chunk"})
		}
		return
	}
	name := k.name
	if k.super {
		name = C.GoString(stream)
	} else {
		partition = -1
	}
	msgs := unsafe.Slice(k.buf, n)
	var shared []byte
	if k.sharedBody {
		total := 0
		for i := range msgs {
			total += int(msgs[i].len)
		}
		shared = make([]byte, 0, total)
	}
	var secs []byte
	if k.secs.len > 0 {
		secs = unsafe.Slice((*byte)(unsafe.Pointer(k.secs.data)), int(k.secs.len))
	}
	for i := range msgs {
		if k.closingFlag.Load() {
			return
		}
		cm := &msgs[i]
		m := Message{Stream: name, Partition: partition, Offset: uint64(cm.offset),
			ChunkID: uint64(chunkID), Timestamp: time.UnixMilli(int64(cm.timestamp)), core: k}
		if k.sharedBody {
			start := len(shared)
			shared = append(shared, unsafe.Slice((*byte)(unsafe.Pointer(cm.body)), int(cm.len))...)
			m.Body = shared[start:len(shared):len(shared)]
		} else {
			m.Body = C.GoBytes(unsafe.Pointer(cm.body), C.int(cm.len))
		}
		if cm.sec_len > 0 {
			m.decodeSections(secs[cm.sec_off : cm.sec_off+cm.sec_len])
		}
		if k.postFilter != nil && !k.postFilter(m) {
			continue
		}
		if k.handler != nil {
			k.handler(m)
			continue
		}
		select {
		case k.msgs <- m:
		case <-k.closing:
			return
		}
	}
}

// Consumer is a subscription to one stream. Methods are safe for concurrent use.
type Consumer struct {
	*consumerCore
}

// NewConsumer subscribes to stream. With a handler, messages go to it on the consumer's
// goroutine; with a nil handler they go to Messages(). It blocks for a few round trips; when
// ctx ends first it returns ctx.Err() and the consumer, if created later, is closed in the
// background.
func (c *Conn) NewConsumer(ctx context.Context, stream string, handler Handler, opts ...ConsumerOption) (*Consumer, error) {
	core, o := newConsumerCore(c, false, stream, handler, opts)
	err := core.start(ctx, o.pairs, func(h *C.rmqs_connection, name *C.char, cfg *C.rmqs_config,
		q *C.rmqs_queue, tag C.size_t) error {
		var ch *C.rmqs_consumer
		var e *C.rmqs_error
		st := C.rmqs_consumer_new(h, name, cfg, nil, nil, nil, q, tag, &ch, &e)
		if err := takeError(st, e); err != nil {
			return err
		}
		return core.setHandle(ch, nil)
	})
	if err != nil {
		return nil, err
	}
	return &Consumer{core}, nil
}

// Stream is the consumer's stream.
func (k *Consumer) Stream() string { return k.name }

// Messages is the channel of messages when NewConsumer got a nil handler (else nil). It is
// closed when the consumer is closed.
func (k *Consumer) Messages() <-chan Message { return k.msgs }

// Done is closed once the consumer delivers no more messages: after Close, the connection's
// Close, or the loss of its stream or connection (see Err).
func (k *Consumer) Done() <-chan struct{} { return k.done }

// Err is, after Done, why the consumer stopped: nil when the application closed it.
func (k *Consumer) Err() error { return k.errValue() }

// Credit grants the broker n more chunks (1–32767): how a ManualCredit consumer receives.
func (k *Consumer) Credit(n int) error { return k.credit(0, n) }

// StoreOffset stores offset on the broker under the consumer's tracking reference (usually
// the offset of the last message processed). It does not wait for the broker; QueryOffset
// shows when the store is applied. ErrInvalidArgument when the consumer has no name.
func (k *Consumer) StoreOffset(offset uint64) error { return k.storeOffset(0, offset) }

// StoreProcessedOffset stores the processed offset (that of the last message of the chunks
// handled so far) unless it was stored already, and returns it; ErrNoOffset when there was
// nothing new to store (or the consumer is an inactive single active consumer).
func (k *Consumer) StoreProcessedOffset() (uint64, error) {
	if !k.g.acquire() {
		return 0, closedErr("consumer")
	}
	defer k.g.release()
	var out C.uint64_t
	var e *C.rmqs_error
	err := takeError(C.rmqs_consumer_store_processed_offset(k.h, &out, &e), e)
	return uint64(out), err
}

// QueryOffset is the offset stored on the broker under the consumer's tracking reference
// (ErrNoOffset when none).
func (k *Consumer) QueryOffset(ctx context.Context) (uint64, error) { return k.queryOffset(ctx, 0) }

// IsActive reports whether the consumer receives now: for a single active consumer, whether
// it is the active one of its group; otherwise whether it is open.
func (k *Consumer) IsActive() bool {
	if !k.g.acquire() {
		return false
	}
	defer k.g.release()
	return bool(C.rmqs_consumer_is_active(k.h))
}

// Stats reads the consumer's counters (FilteredOut counts the library's filtering, not
// PostFilter).
func (k *Consumer) Stats() (ConsumerStats, error) { return k.stats() }

// Close stops deliveries (messages not handed over yet are dropped), unsubscribes (with
// AutoTracking, storing the processed offset first) and frees the consumer, waiting for the
// handler in progress to return. When ctx ends first it returns ctx.Err() and finishes in the
// background. Calling Close again waits for the same close. Close must not be called from the
// handler with a context that has no deadline (it would wait for itself): call it from
// another goroutine.
func (k *Consumer) Close(ctx context.Context) error { return k.close(ctx) }
