package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"context"
	"math"
	"sync"
	"time"
	"unsafe"
)

// kv is one rmqs_config key.
type kv struct{ key, value string }

// newConfig builds an rmqs_config from pairs; the caller frees it with C.rmqs_config_free.
func newConfig(pairs []kv) (*C.rmqs_config, error) {
	cfg := C.rmqs_config_new()
	if cfg == nil {
		return nil, &Error{Status: StatusInvalidArgument, Message: "rmqs_config_new: out of memory"}
	}
	for _, p := range pairs {
		k, v := C.CString(p.key), C.CString(p.value)
		var e *C.rmqs_error
		st := C.rmqs_config_set(cfg, k, v, &e)
		C.free(unsafe.Pointer(k))
		C.free(unsafe.Pointer(v))
		if err := takeError(st, e); err != nil {
			C.rmqs_config_free(cfg)
			return nil, err
		}
	}
	return cfg, nil
}

// cstr is a C copy of s, freed by the returned function.
func cstr(s string) (*C.char, func()) {
	p := C.CString(s)
	return p, func() { C.free(unsafe.Pointer(p)) }
}

// timeoutMS turns ctx's deadline into a library timeout: -1 (no limit) without a deadline,
// else the milliseconds left, at least 1.
func timeoutMS(ctx context.Context) C.int32_t {
	d, ok := ctx.Deadline()
	if !ok {
		return -1
	}
	ms := time.Until(d).Milliseconds()
	switch {
	case ms < 1:
		return 1
	case ms > math.MaxInt32:
		return math.MaxInt32
	}
	return C.int32_t(ms)
}

type result[T any] struct {
	v   T
	err error
}

// await runs f on its own goroutine and returns its result, or ctx.Err() when ctx ends first.
// In that case f still runs to completion, and abandon (if not nil) receives its result (to
// free what it created). f always runs, even for a context that has ended already: it frees
// what its caller handed it (configs, strings, source tags). Blocking library calls cannot be
// interrupted, so this is how every blocking method honours its context.
func await[T any](ctx context.Context, f func() (T, error), abandon func(T, error)) (T, error) {
	var zero T
	ch := make(chan result[T], 1)
	var mu sync.Mutex
	abandoned := false
	go func() {
		v, err := f()
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			if abandon != nil {
				abandon(v, err)
			}
			return
		}
		ch <- result[T]{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		select {
		case r := <-ch: // finished meanwhile: prefer the result
			return r.v, r.err
		default:
		}
		abandoned = true
		return zero, ctx.Err()
	}
}

// guard protects a library handle against use after free: calls hold it shared while they
// use the handle; free takes it exclusively, once.
type guard struct {
	mu    sync.RWMutex
	freed bool
}

// acquire returns false when the handle was freed; otherwise the caller calls release.
func (g *guard) acquire() bool {
	g.mu.RLock()
	if g.freed {
		g.mu.RUnlock()
		return false
	}
	return true
}

func (g *guard) release() { g.mu.RUnlock() }

// free runs f once, after every call in progress has ended; later acquires fail.
func (g *guard) free(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.freed {
		g.freed = true
		f()
	}
}

// closedErr is the error of calls on a freed handle.
func closedErr(what string) error {
	return &Error{Status: StatusClosed, Message: what + " is closed"}
}
