package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"strconv"
	"sync"
	"unsafe"
)

// event is one library event routed to a producer or consumer. Chunk and confirm events still
// own their rmqs_event (ev), which the receiving goroutine frees; state and error events were
// read and freed by the dispatcher (ev is nil).
type event struct {
	ev        *C.rmqs_event
	typ       int32
	state     int32
	status    Status
	message   string
	nconfirms int
	partition int // rmqs_event_partition: -1 for none
}

// sink receives a producer's or consumer's events from the dispatcher.
type sink interface {
	// push hands over an event without blocking; false when the sink has ended (the
	// dispatcher then frees the event).
	push(e event) bool
	// received is called by the dispatcher before push for confirm events (backpressure
	// accounting); consumers ignore it.
	received(n int)
	// end tells the sink no more events will come (the connection is closing).
	end()
	// freeHandle frees the library object (the connection is closing).
	freeHandle()
}

// inbox is an unbounded FIFO of events between the dispatcher (which must never block) and
// the goroutine of one producer or consumer. What bounds it: a consumer's chunks by its
// credit (a chunk's credit returns only when the chunk is released, after its messages were
// handled), a producer's confirms by Send waiting while too many are unread.
type inbox struct {
	mu    sync.Mutex
	q     []event
	ended bool
	wake  chan struct{}
}

func newInbox() inbox { return inbox{wake: make(chan struct{}, 1)} }

func (b *inbox) push(e event) bool {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return false
	}
	b.q = append(b.q, e)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

func (b *inbox) end() {
	b.mu.Lock()
	b.ended = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take waits for events and returns them all (reusing spare's storage); false once the inbox
// has ended and is empty.
func (b *inbox) take(spare []event) ([]event, bool) {
	for {
		b.mu.Lock()
		if len(b.q) > 0 {
			got := b.q
			b.q = spare[:0]
			b.mu.Unlock()
			return got, true
		}
		if b.ended {
			b.mu.Unlock()
			return nil, false
		}
		b.mu.Unlock()
		<-b.wake
	}
}

// discard frees every event still queued and ends the inbox.
func (b *inbox) discard() {
	b.mu.Lock()
	b.ended = true
	q := b.q
	b.q = nil
	b.mu.Unlock()
	for _, e := range q {
		e.free()
	}
}

func (e *event) free() {
	if e.ev != nil {
		C.rmqs_event_free(e.ev)
		e.ev = nil
	}
}

// pollBatch is how many events one cgo call takes from the queue.
const pollBatch = 256

// dispatch is the connection's one event goroutine: it takes events from the library's queue
// in batches (one cgo call per batch, see gormqs_poll) and routes them by source tag to the
// producers' and consumers' inboxes. It never runs application code.
func (c *Conn) dispatch() {
	defer close(c.dispDone)
	infos := unsafe.Slice(c.infos, pollBatch)
	for {
		n := int(C.gormqs_poll(c.q, c.evs, c.infos, pollBatch, -1))
		if n == 0 {
			if c.stopping.Load() {
				break
			}
			continue
		}
		c.route(infos[:n])
	}
	// Stopping: what is left in the queue goes out without waiting.
	for {
		n := int(C.gormqs_poll(c.q, c.evs, c.infos, pollBatch, 0))
		if n == 0 {
			return
		}
		c.route(infos[:n])
	}
}

func (c *Conn) route(infos []C.gormqs_evinfo) {
	sinks := c.routeBuf[:0]
	c.mu.Lock()
	for i := range infos {
		sinks = append(sinks, c.children[uint64(infos[i].tag)])
	}
	c.mu.Unlock()
	for i := range infos {
		in := &infos[i]
		e := event{ev: in.ev, typ: int32(in._type), partition: int(in.partition)}
		switch e.typ {
		case C.RMQS_EVENT_STATE, C.RMQS_EVENT_ERROR:
			e.state = int32(in.state)
			e.status = Status(in.status)
			e.message = C.GoString(in.message)
			e.free()
		case C.RMQS_EVENT_CONFIRMS, C.RMQS_EVENT_SUPER_CONFIRMS:
			e.nconfirms = int(in.nconfirms)
		}
		s := sinks[i]
		if s == nil {
			e.free()
			continue
		}
		if e.nconfirms > 0 {
			s.received(e.nconfirms)
		}
		if !s.push(e) {
			e.free()
		}
	}
	for i := range sinks {
		sinks[i] = nil
	}
	c.routeBuf = sinks[:0]
}

// State is what a StateChange reports.
type State int32

const (
	// StateClosed: closed for good (the last event). Err says why: nil when the application
	// closed it, ErrStreamDoesNotExist when its stream was deleted, else the loss that
	// recovery could not repair (recovery off, or its attempts used up).
	StateClosed State = C.RMQS_STATE_CLOSED
	// StateRecovering: the connection or the stream's leader was lost; Err is the cause.
	// Producers keep accepting sends (within MaxInFlight) and send them once recovered.
	StateRecovering State = C.RMQS_STATE_RECOVERING
	// StateRecovered: back. Producers sent again what was unconfirmed (a named producer
	// deduplicates it); consumers resumed right after the last message delivered.
	StateRecovered State = C.RMQS_STATE_RECOVERED
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateRecovering:
		return "recovering"
	case StateRecovered:
		return "recovered"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// StateChange is a state event of a producer, consumer, super producer or super consumer.
type StateChange struct {
	State State
	// Partition is the partition concerned (its index) for a SuperProducer or SuperConsumer,
	// -1 for the object itself and for other objects.
	Partition int
	// Err is the cause (StateRecovering) or the reason (StateClosed); nil otherwise.
	Err error
}

// stateChange is the StateChange of a state event.
func stateChange(e *event) StateChange {
	sc := StateChange{State: State(e.state), Partition: e.partition}
	if e.status != StatusOK {
		sc.Err = &Error{Status: e.status, Message: e.message}
	}
	return sc
}

// isFinal tells the object's own final CLOSED from the other state events.
func (e *event) isFinal() bool {
	return State(e.state) == StateClosed && e.partition < 0
}
