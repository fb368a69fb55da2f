package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"context"
	"unsafe"
)

// CreateSuperStream creates a super stream (RabbitMQ 3.13+) with partitions partitions named
// <name>-0 ... <name>-<partitions-1>, bound with the keys "0" ... "<partitions-1>" (the
// convention of the other clients).
func (c *Conn) CreateSuperStream(ctx context.Context, name string, partitions int, opts ...StreamOption) error {
	if partitions < 1 || partitions > 1<<20 {
		return &Error{Status: StatusInvalidArgument, Message: "a super stream needs at least one partition"}
	}
	cfg, err := streamConfig(opts)
	if err != nil {
		return err
	}
	defer C.rmqs_config_free(cfg)
	n, free := cstr(name)
	defer free()
	return c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_super_stream_create_n(h, n, C.uint32_t(partitions), cfg, &e), e)
	})
}

// CreateSuperStreamWithBindings creates a super stream whose partitions (streams) and
// binding keys are given, one key per partition.
func (c *Conn) CreateSuperStreamWithBindings(ctx context.Context, name string, partitions, bindingKeys []string, opts ...StreamOption) error {
	if len(partitions) == 0 || len(partitions) != len(bindingKeys) {
		return &Error{Status: StatusInvalidArgument,
			Message: "partitions and binding keys must be as many, at least one"}
	}
	cfg, err := streamConfig(opts)
	if err != nil {
		return err
	}
	defer C.rmqs_config_free(cfg)
	n, free := cstr(name)
	defer free()
	// Both arrays of strings are built in C memory.
	ps, freeP := cstrArray(partitions)
	defer freeP()
	ks, freeK := cstrArray(bindingKeys)
	defer freeK()
	return c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_super_stream_create(h, n, ps, ks, C.size_t(len(partitions)), cfg, &e), e)
	})
}

// cstrArray is a C array of C copies of ss, freed by the returned function.
func cstrArray(ss []string) (**C.char, func()) {
	arr := (**C.char)(C.calloc(C.size_t(len(ss)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	view := unsafe.Slice(arr, len(ss))
	for i, s := range ss {
		view[i] = C.CString(s)
	}
	return arr, func() {
		for _, p := range view {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(arr))
	}
}

// DeleteSuperStream deletes a super stream and its partitions (RabbitMQ 3.13+).
func (c *Conn) DeleteSuperStream(ctx context.Context, name string) error {
	n, free := cstr(name)
	defer free()
	return c.call(ctx, func(h *C.rmqs_connection) error {
		var e *C.rmqs_error
		return takeError(C.rmqs_super_stream_delete(h, n, &e), e)
	})
}

// takeStrings copies and frees an rmqs_strings list.
func takeStrings(l *C.rmqs_strings) []string {
	defer C.rmqs_strings_free(l)
	n := int(C.rmqs_strings_count(l))
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, C.GoString(C.rmqs_strings_get(l, C.size_t(i))))
	}
	return out
}

// SuperStreamPartitions lists a super stream's partitions in routing order.
func (c *Conn) SuperStreamPartitions(ctx context.Context, name string) ([]string, error) {
	n, free := cstr(name)
	defer free()
	var out []string
	err := c.call(ctx, func(h *C.rmqs_connection) error {
		var l *C.rmqs_strings
		var e *C.rmqs_error
		if err := takeError(C.rmqs_super_stream_partitions(h, n, &l, &e), e); err != nil {
			return err
		}
		out = takeStrings(l)
		return nil
	})
	return out, err
}

// SuperStreamRoute lists the partitions routingKey is bound to (key routing); possibly none.
func (c *Conn) SuperStreamRoute(ctx context.Context, name, routingKey string) ([]string, error) {
	n, free1 := cstr(name)
	defer free1()
	k, free2 := cstr(routingKey)
	defer free2()
	var out []string
	err := c.call(ctx, func(h *C.rmqs_connection) error {
		var l *C.rmqs_strings
		var e *C.rmqs_error
		if err := takeError(C.rmqs_super_stream_route(h, k, n, &l, &e), e); err != nil {
			return err
		}
		out = takeStrings(l)
		return nil
	})
	return out, err
}

// PartitionIndex is the partition routingKey goes to under hash routing, as in the other
// stream clients (MurmurHash3 x86-32, seed 104729, modulo partitions): an index into
// SuperStreamPartitions' list.
func PartitionIndex(routingKey []byte, partitions int) (int, error) {
	if partitions < 1 || partitions > 1<<31-1 {
		return 0, &Error{Status: StatusInvalidArgument, Message: "partitions must be at least 1"}
	}
	var out C.uint32_t
	var p *C.uint8_t
	if len(routingKey) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&routingKey[0]))
	}
	if st := C.rmqs_super_stream_partition(p, C.size_t(len(routingKey)), C.uint32_t(partitions), &out, nil); st != 0 {
		return 0, Status(st).Err()
	}
	return int(out), nil
}
