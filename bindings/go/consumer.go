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
// a ConsumerOption.
type OffsetSpec struct{ spec string }

var (
	// First starts at the first message still in the stream.
	First = OffsetSpec{"first"}
	// Last starts at the last chunk written (its first message).
	Last = OffsetSpec{"last"}
	// Next starts after the last message written: only new messages (the default).
	Next = OffsetSpec{"next"}
)

// Offset starts at offset n (delivery starts in the chunk that holds n; earlier messages of
// that chunk are skipped).
func Offset(n uint64) OffsetSpec { return OffsetSpec{"offset:" + strconv.FormatUint(n, 10)} }

// Timestamp starts at the first chunk written at or after t (millisecond precision).
func Timestamp(t time.Time) OffsetSpec {
	return OffsetSpec{"timestamp:" + strconv.FormatInt(t.UnixMilli(), 10)}
}

func (s OffsetSpec) String() string { return s.spec }

func (s OffsetSpec) applyConsumer(o *consumerOptions) { o.set("offset", s.spec) }

// ConsumerOption configures NewConsumer. Offset specs (First, Offset(n), ...) are options.
type ConsumerOption interface{ applyConsumer(*consumerOptions) }

type consumerOption func(*consumerOptions)

func (f consumerOption) applyConsumer(o *consumerOptions) { f(o) }

type consumerOptions struct {
	pairs      []kv
	filters    int
	postFilter func(Message) bool
	onError    func(error)
}

func (o *consumerOptions) set(k, v string) { o.pairs = append(o.pairs, kv{k, v}) }

// ConsumerName names the consumer: its offset-tracking reference (StoreOffset, QueryOffset)
// and, with SingleActive, its group.
func ConsumerName(name string) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.set("name", name) })
}

// InitialCredit sets how many chunks the broker may send ahead (1–32767, default 10). Chunks
// not yet handled hold their credit, so this bounds the consumer's memory.
func InitialCredit(n int) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.set("initial_credit", strconv.Itoa(n)) })
}

// ManualCredit stops the automatic credit: after InitialCredit chunks the broker sends more
// only as Consumer.Credit grants.
func ManualCredit() ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.set("credit_policy", "manual") })
}

// CRCCheck turns the chunks' CRC-32 check on or off (default on).
func CRCCheck(on bool) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.set("crc_check", strconv.FormatBool(on)) })
}

// SubscriptionProperty sends a raw subscription property.
func SubscriptionProperty(key, value string) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.set("property."+key, value) })
}

// ConsumerSetting sets any consumer key of rmqs_config_set().
func ConsumerSetting(key, value string) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.set(key, value) })
}

// Filter asks the broker for the chunks holding messages sent with one of these filter
// values (OutboundMessage.FilterValue; RabbitMQ 3.13+). The broker filters per chunk with a
// Bloom filter, so other messages come too: add PostFilter to drop them.
func Filter(values ...string) ConsumerOption {
	return consumerOption(func(o *consumerOptions) {
		for _, v := range values {
			o.set("property.filter."+strconv.Itoa(o.filters), v)
			o.filters++
		}
	})
}

// MatchUnfiltered makes a Filter consumer also receive messages sent without a filter value.
func MatchUnfiltered() ConsumerOption {
	return SubscriptionProperty("match-unfiltered", "true")
}

// PostFilter drops the messages for which keep returns false before they reach the handler
// or channel (client-side, after the broker's Filter). keep runs on the consumer's goroutine.
func PostFilter(keep func(Message) bool) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.postFilter = keep })
}

// SingleActive makes the consumer part of a single-active-consumer group named by its
// ConsumerName: of the group's consumers on the stream, the broker delivers to one at a time.
// When a consumer becomes active it starts after the offset stored under the name (else at
// its OffsetSpec).
func SingleActive() ConsumerOption {
	return SubscriptionProperty("single-active-consumer", "true")
}

// OnError receives non-fatal errors of the consumer (e.g. a chunk failing its CRC check), on
// the consumer's goroutine.
func OnError(f func(error)) ConsumerOption {
	return consumerOption(func(o *consumerOptions) { o.onError = f })
}

// Message is one message delivered to a consumer. Body is Go memory, copied once from the
// library's chunk: the handler may keep it. The chunk itself is released (and its credit
// returned to the broker) once the handler has returned for its last message (or, in channel
// mode, once that message was received).
type Message struct {
	Stream    string    // the stream (the partition, for a super stream)
	Offset    uint64    // the message's offset in the stream
	ChunkID   uint64    // offset of the first record of its chunk
	Timestamp time.Time // when the broker wrote its chunk (millisecond precision)
	Body      []byte    // the application payload (the AMQP data section, or the raw record)
	consumer  *Consumer
}

// Consumer is the consumer that received the message.
func (m Message) Consumer() *Consumer { return m.consumer }

// StoreOffset stores the message's offset under its consumer's name.
func (m Message) StoreOffset() error { return m.consumer.StoreOffset(m.Offset) }

// Handler handles one message, on the consumer's own goroutine: the messages of one consumer
// in order, never concurrently.
type Handler func(Message)

// Consumer is a subscription to one stream. Methods are safe for concurrent use.
type Consumer struct {
	conn   *Conn
	stream string
	tag    uint64
	h      *C.rmqs_consumer
	g      guard
	box    inbox

	handler    Handler
	msgs       chan Message
	postFilter func(Message) bool
	onError    func(error)

	buf    *C.gormqs_msg // C array of bufCap; the consumer's goroutine only
	bufCap int

	closingFlag atomic.Bool
	closing     chan struct{}
	done        chan struct{}
	emu         sync.Mutex
	err         error

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error
}

// NewConsumer subscribes to stream. With a handler, messages go to it on the consumer's
// goroutine; with a nil handler they go to Messages(). It blocks for a few round trips; when
// ctx ends first it returns ctx.Err() and the consumer, if created later, is closed in the
// background.
func (c *Conn) NewConsumer(ctx context.Context, stream string, handler Handler, opts ...ConsumerOption) (*Consumer, error) {
	var o consumerOptions
	for _, opt := range opts {
		opt.applyConsumer(&o)
	}
	k := &Consumer{conn: c, stream: stream, box: newInbox(), handler: handler,
		postFilter: o.postFilter, onError: o.onError, closing: make(chan struct{}),
		done: make(chan struct{}), closeDone: make(chan struct{})}
	if handler == nil {
		k.msgs = make(chan Message)
	}
	cfg, err := newConfig(o.pairs)
	if err != nil {
		return nil, err
	}
	tag, ok := c.register(k)
	if !ok {
		C.rmqs_config_free(cfg)
		return nil, closedErr("connection")
	}
	k.tag = tag
	name, free := cstr(stream)
	_, err = await(ctx, func() (struct{}, error) {
		defer free()
		defer C.rmqs_config_free(cfg)
		err := k.create(name, cfg)
		if err != nil {
			c.unregister(tag)
		}
		return struct{}{}, err
	}, func(_ struct{}, err error) {
		if err == nil { // created after ctx ended: close it
			go k.run()
			go k.Close(context.Background())
		}
	})
	if err != nil {
		return nil, err
	}
	go k.run()
	return k, nil
}

func (k *Consumer) create(name *C.char, cfg *C.rmqs_config) error {
	c := k.conn
	if !c.g.acquire() {
		return closedErr("connection")
	}
	defer c.g.release()
	var h *C.rmqs_consumer
	var e *C.rmqs_error
	st := C.rmqs_consumer_new(c.h, name, cfg, nil, nil, nil, c.q, C.size_t(k.tag), &h, &e)
	if err := takeError(st, e); err != nil {
		return err
	}
	k.g.mu.Lock()
	defer k.g.mu.Unlock()
	if k.g.freed { // the connection closed meanwhile
		C.rmqs_consumer_free(h)
		return closedErr("connection")
	}
	k.h = h
	return nil
}

// Stream is the consumer's stream.
func (k *Consumer) Stream() string { return k.stream }

// Messages is the channel of messages when NewConsumer got a nil handler (else nil). It is
// closed when the consumer is closed.
func (k *Consumer) Messages() <-chan Message { return k.msgs }

// Done is closed once the consumer delivers no more messages: after Close, the connection's
// Close, or the loss of its stream or connection (see Err).
func (k *Consumer) Done() <-chan struct{} { return k.done }

// Err is, after Done, why the consumer stopped: nil when the application closed it.
func (k *Consumer) Err() error {
	k.emu.Lock()
	defer k.emu.Unlock()
	return k.err
}

// Credit grants the broker n more chunks (1–32767): how a ManualCredit consumer receives.
func (k *Consumer) Credit(n int) error {
	if n < 1 || n > 32767 {
		return &Error{Status: StatusInvalidArgument, Message: "credits must be 1 to 32767"}
	}
	if !k.g.acquire() {
		return closedErr("consumer")
	}
	defer k.g.release()
	return Status(C.rmqs_consumer_credit(k.h, C.uint32_t(n))).Err()
}

// StoreOffset stores offset on the broker under the consumer's name (usually the offset of
// the last message processed). It does not wait for the broker; QueryOffset shows when the
// store is applied. ErrInvalidArgument when the consumer has no name.
func (k *Consumer) StoreOffset(offset uint64) error {
	if !k.g.acquire() {
		return closedErr("consumer")
	}
	defer k.g.release()
	var e *C.rmqs_error
	return takeError(C.rmqs_consumer_store_offset(k.h, C.uint64_t(offset), &e), e)
}

// QueryOffset is the offset stored on the broker under the consumer's name (ErrNoOffset when
// none).
func (k *Consumer) QueryOffset(ctx context.Context) (uint64, error) {
	return await(ctx, func() (uint64, error) {
		if !k.g.acquire() {
			return 0, closedErr("consumer")
		}
		defer k.g.release()
		var out C.uint64_t
		var e *C.rmqs_error
		err := takeError(C.rmqs_consumer_query_offset(k.h, &out, &e), e)
		return uint64(out), err
	}, nil)
}

// ConsumerStats are a consumer's counters.
type ConsumerStats struct {
	Messages, Chunks, Bytes, CreditsGranted, FilteredOut, OffsetsStored uint64
	// LastStoredOffset is the offset stored last; valid when OffsetsStored > 0.
	LastStoredOffset uint64
}

// Stats reads the consumer's counters (FilteredOut counts the library's filtering, not
// PostFilter).
func (k *Consumer) Stats() (ConsumerStats, error) {
	if !k.g.acquire() {
		return ConsumerStats{}, closedErr("consumer")
	}
	defer k.g.release()
	var s C.rmqs_consumer_statistics
	s.size = C.uint64_t(unsafe.Sizeof(s))
	if st := C.rmqs_consumer_stats(k.h, &s); st != 0 {
		return ConsumerStats{}, Status(st).Err()
	}
	return ConsumerStats{uint64(s.messages), uint64(s.chunks), uint64(s.bytes),
		uint64(s.credits_granted), uint64(s.filtered_out), uint64(s.offsets_stored),
		uint64(s.last_stored_offset)}, nil
}

// Close stops deliveries (messages not handed over yet are dropped), unsubscribes and frees
// the consumer, waiting for the handler in progress to return. When ctx ends first it returns
// ctx.Err() and finishes in the background. Calling Close again waits for the same close.
// Close must not be called from the handler with a context that has no deadline (it would
// wait for itself): call it from another goroutine.
func (k *Consumer) Close(ctx context.Context) error {
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

func (k *Consumer) doClose(tmo C.int32_t) {
	defer close(k.closeDone)
	if k.g.acquire() {
		k.closeErr = Status(C.rmqs_consumer_close(k.h, tmo)).Err()
		k.g.release()
	}
	k.freeHandle()
	<-k.done
}

func (k *Consumer) freeHandle() {
	k.g.free(func() {
		if k.h != nil {
			C.rmqs_consumer_free(k.h)
		}
	})
}

func (k *Consumer) push(e event) bool { return k.box.push(e) }
func (k *Consumer) end()              { k.box.end() }
func (k *Consumer) received(int)      {}

// run is the consumer's goroutine: chunks in order, each released after its messages were
// handled; it ends after the consumer's CLOSED state or when the connection closes.
func (k *Consumer) run() {
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
					k.handleChunk(e.ev)
				}
			case C.RMQS_EVENT_ERROR:
				if k.onError != nil {
					k.onError(&Error{Status: e.status, Message: e.message})
				}
			case C.RMQS_EVENT_STATE:
				if e.state == C.RMQS_STATE_CLOSED {
					closed = true
					if e.status != StatusOK {
						k.emu.Lock()
						k.err = &Error{Status: e.status, Message: e.message}
						k.emu.Unlock()
					}
				}
			}
			e.free() // releases the chunk: its credit goes back to the broker
			evs[i] = event{}
		}
		spare = evs
	}
	k.box.discard()
	k.conn.unregister(k.tag)
	if k.buf != nil {
		C.free(unsafe.Pointer(k.buf))
	}
	if k.msgs != nil {
		close(k.msgs)
	}
	close(k.done)
}

// handleChunk reads a chunk's messages with one cgo call, copies each body once into Go
// memory and hands the messages over in order.
func (k *Consumer) handleChunk(ev *C.rmqs_event) {
	var chunkID C.uint64_t
	n := int(C.gormqs_chunk_messages(ev, k.buf, C.size_t(k.bufCap), &chunkID))
	if n > k.bufCap {
		C.free(unsafe.Pointer(k.buf))
		k.bufCap = n + n/2
		k.buf = (*C.gormqs_msg)(C.malloc(C.size_t(k.bufCap) * C.size_t(unsafe.Sizeof(C.gormqs_msg{}))))
		n = int(C.gormqs_chunk_messages(ev, k.buf, C.size_t(k.bufCap), &chunkID))
	}
	if n == 0 {
		return
	}
	for _, cm := range unsafe.Slice(k.buf, n) {
		if k.closingFlag.Load() {
			return
		}
		m := Message{Stream: k.stream, Offset: uint64(cm.offset), ChunkID: uint64(chunkID),
			Timestamp: time.UnixMilli(int64(cm.timestamp)),
			Body:      C.GoBytes(unsafe.Pointer(cm.body), C.int(cm.len)), consumer: k}
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
