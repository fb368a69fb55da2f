package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"context"
	"strings"
	"unsafe"
)

// KeyRouting routes a SuperProducer's messages by the super stream's bindings (the broker's
// Route command, cached per key) instead of hashing the routing key (the default, as the
// other clients: PartitionIndex).
func KeyRouting() ProducerOption {
	return func(o *producerOptions) { o.set("routing", "key") }
}

// Eager makes a SuperProducer create every partition's producer at once (and on Refresh)
// instead of at the first message routed to it.
func Eager() ProducerOption {
	return func(o *producerOptions) { o.set("eager", "true") }
}

// SuperProducer publishes to a super stream: each message goes to the partition its routing
// key leads to, through one producer per partition (created at the first message routed to
// it, unless Eager). Every ProducerOption applies to each partition producer; ProducerName
// makes each deduplicate on its own partition. Confirms say which partition
// (Confirm.Partition). Methods are safe for concurrent use.
type SuperProducer struct {
	*producerCore
	superStream string
}

// NewSuperProducer creates a producer on superStream (which must exist and have partitions).
// Options: every ProducerOption, KeyRouting, Eager. ctx is honoured as by NewProducer.
func (c *Conn) NewSuperProducer(ctx context.Context, superStream string, opts ...ProducerOption) (*SuperProducer, error) {
	core, o := newProducerCore(c, true, opts)
	p := &SuperProducer{producerCore: core, superStream: superStream}
	err := core.start(ctx, o.pairs, superStream, func(h *C.rmqs_connection, name *C.char,
		cfg *C.rmqs_config, q *C.rmqs_queue, tag C.size_t) error {
		var sh *C.rmqs_super_producer
		var e *C.rmqs_error
		st := C.rmqs_super_producer_new(h, name, cfg, nil, nil, nil, q, tag, &sh, &e)
		if err := takeError(st, e); err != nil {
			return err
		}
		return core.setHandle(nil, sh)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SuperStream is the super stream's name.
func (p *SuperProducer) SuperStream() string { return p.superStream }

// Send sends one message to the partition routingKey leads to. The first message routed to
// a partition creates its producer (and with KeyRouting the first message of a key asks the
// broker where it goes): such a Send waits for that round trip. A key routed nowhere (with
// KeyRouting) gives ErrInvalidArgument ("no route ..."). It waits for room as Producer.Send.
func (p *SuperProducer) Send(ctx context.Context, routingKey string, body []byte) error {
	_, _, err := p.SendMessage(ctx, routingKey, &Message{Body: body})
	return err
}

// SendMessage sends one Message (every section, its filter value and publishing id) and
// returns the partition it went to (its index in Partitions()) and its publishing id there
// (ids are per partition).
func (p *SuperProducer) SendMessage(ctx context.Context, routingKey string, m *Message) (partition int, id uint64, err error) {
	if strings.IndexByte(routingKey, 0) >= 0 {
		return 0, 0, invalid("the routing key contains a NUL byte")
	}
	if !m.plain() {
		_, part, id, err := p.sendMessages(ctx, []string{routingKey}, []*Message{m})
		return int(part), id, err
	}
	key, free1 := cstr(routingKey)
	defer free1()
	fv, free2 := cstrOrNil(m.FilterValue)
	defer free2()
	var part C.uint32_t
	var cid C.uint64_t
	_, err = p.send(ctx, func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) {
		var e *C.rmqs_error
		st := C.rmqs_super_producer_send_ex(p.sh, key, bytesPtr(m.Body), C.size_t(len(m.Body)), fv,
			C.uint64_t(m.PublishingID), C.size_t(m.Tag), flags|m.flags(), &part, &cid, &e)
		return st, e, one(st)
	})
	return int(part), uint64(cid), err
}

// SendBody sends one message made of t's sections with body (copied) as its one data section
// (as Producer.SendBody) to the partition routingKey leads to, and returns that partition and
// the publishing id there, as SendMessage. It waits as Send.
func (p *SuperProducer) SendBody(ctx context.Context, routingKey string, t *Template, body []byte) (partition int, id uint64, err error) {
	if strings.IndexByte(routingKey, 0) >= 0 {
		return 0, 0, invalid("the routing key contains a NUL byte")
	}
	return p.sendBody(ctx, routingKey, t, body)
}

// SendMessages sends several Messages in order, each routed by its own key (routingKeys[i]
// for msgs[i]); order is kept per partition. On failure the error is a *BatchError.
func (p *SuperProducer) SendMessages(ctx context.Context, routingKeys []string, msgs []*Message) error {
	if len(routingKeys) != len(msgs) {
		return invalid("SendMessages needs one routing key per message")
	}
	if len(msgs) == 0 {
		return nil
	}
	if n, _, _, err := p.sendMessages(ctx, routingKeys, msgs); err != nil {
		return &BatchError{Accepted: n, Err: err}
	}
	return nil
}

// SendBatch sends several messages in order, each routed by its own key (routingKeys[i] for
// bodies[i]); order is kept per partition. On failure the error is a *BatchError.
func (p *SuperProducer) SendBatch(ctx context.Context, routingKeys []string, bodies [][]byte) error {
	if len(routingKeys) != len(bodies) {
		return invalid("SendBatch needs one routing key per body")
	}
	if len(bodies) == 0 {
		return nil
	}
	keys, err := joinKeys(nil, routingKeys)
	if err != nil {
		return err
	}
	ckeys := C.CBytes(keys) // read by gormqs.c
	defer C.free(ckeys)
	buf, lens := concat(bodies)
	defer batchPool.Put(buf)
	done, pos, keyPos := 0, 0, 0
	n, err := p.send(ctx, func(flags C.uint32_t) (C.rmqs_status, *C.rmqs_error, uint64) {
		var acc C.size_t
		var e *C.rmqs_error
		st := C.gormqs_super_send_concat(p.sh, (*C.char)(unsafe.Add(ckeys, keyPos)), bytesPtr((*buf)[pos:]),
			&lens[done], C.size_t(len(bodies)-done), flags, &acc, &e)
		for i := done; i < done+int(acc); i++ {
			pos += int(lens[i])
			keyPos += len(routingKeys[i]) + 1
		}
		done += int(acc)
		return st, e, uint64(acc)
	})
	if err != nil {
		return &BatchError{Accepted: int(n), Err: err}
	}
	return nil
}

// Partitions lists the partitions the super producer routes to, in routing order (as of its
// creation or last Refresh); Confirm.Partition indexes it.
func (p *SuperProducer) Partitions() []string {
	if !p.g.acquire() {
		return nil
	}
	defer p.g.release()
	n := int(C.rmqs_super_producer_partition_count(p.sh))
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if s := C.rmqs_super_producer_partition(p.sh, C.size_t(i)); s != nil {
			out = append(out, C.GoString(s))
		}
	}
	return out
}

// Refresh asks the broker for the super stream's partitions again, so that partitions added
// since are used (never silently); it returns their number. With hash routing keys then
// spread over the new count.
func (p *SuperProducer) Refresh(ctx context.Context) (int, error) {
	return await(ctx, func() (int, error) {
		if !p.g.acquire() {
			return 0, closedErr("super producer")
		}
		defer p.g.release()
		var n C.size_t
		var e *C.rmqs_error
		err := takeError(C.rmqs_super_producer_refresh(p.sh, &n, &e), e)
		return int(n), err
	}, nil)
}

// Confirms is the channel of outcomes (WithConfirmChannel); nil without that option.
func (p *SuperProducer) Confirms() <-chan Confirm { return p.confirms }

// Done is closed once the super producer is closed for good and its last confirm was
// delivered.
func (p *SuperProducer) Done() <-chan struct{} { return p.done }

// Err is, after Done, why the super producer closed: nil when the application closed it.
func (p *SuperProducer) Err() error { return p.errValue() }

// Stats reads the counters summed over the partition producers alive now.
func (p *SuperProducer) Stats() (ProducerStats, error) { return p.stats() }

// Flush sends what every partition producer has batched and waits as Producer.Flush.
func (p *SuperProducer) Flush(ctx context.Context) error { return p.flush(ctx) }

// Close closes every partition producer (waiting for their confirms up to ctx's deadline)
// and frees the super producer, as Producer.Close.
func (p *SuperProducer) Close(ctx context.Context) error { return p.close(ctx) }
