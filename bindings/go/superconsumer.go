package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import "context"

// SuperConsumer reads every partition of a super stream: one consumer per partition, all with
// the same options and name (the tracking reference, one offset per partition, and with
// SingleActive the group: the broker spreads the partitions over the group's super
// consumers). Messages say their partition (Message.Partition, Message.Stream); those of one
// partition come in order, partitions interleave. Methods are safe for concurrent use.
type SuperConsumer struct {
	*consumerCore
}

// NewSuperConsumer subscribes to every partition of superStream. Options: every
// ConsumerOption (applied per partition) and AddedPartitionOffset. handler and ctx are as for
// NewConsumer.
func (c *Conn) NewSuperConsumer(ctx context.Context, superStream string, handler Handler, opts ...ConsumerOption) (*SuperConsumer, error) {
	core, o := newConsumerCore(c, true, superStream, handler, opts)
	err := core.start(ctx, o.pairs, func(h *C.rmqs_connection, name *C.char, cfg *C.rmqs_config,
		q *C.rmqs_queue, tag C.size_t) error {
		var sh *C.rmqs_super_consumer
		var e *C.rmqs_error
		st := C.rmqs_super_consumer_new(h, name, cfg, nil, nil, nil, q, tag, &sh, &e)
		if err := takeError(st, e); err != nil {
			return err
		}
		return core.setHandle(nil, sh)
	})
	if err != nil {
		return nil, err
	}
	return &SuperConsumer{core}, nil
}

// SuperStream is the super stream's name.
func (k *SuperConsumer) SuperStream() string { return k.name }

// Partitions lists the partitions read, in the broker's order (as of creation or the last
// Refresh); Message.Partition indexes it.
func (k *SuperConsumer) Partitions() []string {
	if !k.g.acquire() {
		return nil
	}
	defer k.g.release()
	n := int(C.rmqs_super_consumer_partition_count(k.sh))
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if s := C.rmqs_super_consumer_partition(k.sh, C.size_t(i)); s != nil {
			out = append(out, C.GoString(s))
		}
	}
	return out
}

// Refresh asks the broker for the partitions again: added ones get a consumer (starting at
// AddedPartitionOffset when nothing is stored for them), removed ones lose theirs, and lost
// ones (stream unavailable, connection lost: see OnError) are subscribed again. It returns
// the number of partitions.
func (k *SuperConsumer) Refresh(ctx context.Context) (int, error) {
	return await(ctx, func() (int, error) {
		if !k.g.acquire() {
			return 0, closedErr("super consumer")
		}
		defer k.g.release()
		var n C.size_t
		var e *C.rmqs_error
		err := takeError(C.rmqs_super_consumer_refresh(k.sh, &n, &e), e)
		return int(n), err
	}, nil)
}

// IsActive reports whether this super consumer receives from partition now (its consumer is
// open and, with SingleActive, the active one of its group).
func (k *SuperConsumer) IsActive(partition int) bool {
	if partition < 0 || !k.g.acquire() {
		return false
	}
	defer k.g.release()
	return bool(C.rmqs_super_consumer_is_active(k.sh, C.size_t(partition)))
}

// Messages is the channel of messages when NewSuperConsumer got a nil handler (else nil).
func (k *SuperConsumer) Messages() <-chan Message { return k.msgs }

// Done is closed once the super consumer delivers no more messages (Close or the
// connection's Close).
func (k *SuperConsumer) Done() <-chan struct{} { return k.done }

// Err is, after Done, why the super consumer stopped: nil when the application closed it.
func (k *SuperConsumer) Err() error { return k.errValue() }

// Credit grants the broker n more chunks on partition (ManualCredit).
func (k *SuperConsumer) Credit(partition, n int) error { return k.credit(partition, n) }

// StoreOffset stores offset for partition under the super consumer's name (Message.StoreOffset
// does this for a message).
func (k *SuperConsumer) StoreOffset(partition int, offset uint64) error {
	return k.storeOffset(partition, offset)
}

// QueryOffset is the offset stored for partition under the super consumer's name.
func (k *SuperConsumer) QueryOffset(ctx context.Context, partition int) (uint64, error) {
	return k.queryOffset(ctx, partition)
}

// Stats reads the counters summed over the partition consumers.
func (k *SuperConsumer) Stats() (ConsumerStats, error) { return k.stats() }

// Close closes every partition consumer (with AutoTracking each stores its processed offset
// first) and frees the super consumer, as Consumer.Close.
func (k *SuperConsumer) Close(ctx context.Context) error { return k.close(ctx) }
