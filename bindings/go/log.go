package rmqstream

/*
#cgo LDFLAGS: -lpthread
#include "gormqs.h"
*/
import "C"

import (
	"strconv"
	"unsafe"
)

// LogLevel is the severity of a LogRecord.
type LogLevel int32

const (
	LogError LogLevel = C.RMQS_LOG_ERROR // something failed (a connection was lost)
	LogWarn  LogLevel = C.RMQS_LOG_WARN  // something went wrong and was handled
	LogInfo  LogLevel = C.RMQS_LOG_INFO  // life-cycle events (the library's default)
	LogDebug LogLevel = C.RMQS_LOG_DEBUG // details
	LogTrace LogLevel = C.RMQS_LOG_TRACE // every frame; costly
)

// String is the level as the library's log_level key spells it.
func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "error"
	case LogWarn:
		return "warn"
	case LogInfo:
		return "info"
	case LogDebug:
		return "debug"
	case LogTrace:
		return "trace"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// LogRecord is one log message of the library.
type LogRecord struct {
	Level LogLevel
	// Target is the part of the library that speaks: "connection", "environment",
	// "producer", "consumer", "panic"; "dropped" for the binding's own record of messages
	// lost to a full ring.
	Target string
	// Message is one line (truncated to 479 bytes).
	Message string
}

const logRingCap = 1024

// logRing is the Go side of a gormqs_log ring: the goroutine that delivers its records.
type logRing struct {
	l *C.gormqs_log
	f func(LogRecord)
}

// newLogRing makes a ring and sets it as cfg's log callback.
func newLogRing(cfg *C.rmqs_config, f func(LogRecord)) (*logRing, error) {
	l := C.gormqs_log_new(logRingCap)
	if l == nil {
		return nil, &Error{Status: StatusInvalidArgument, Message: "log ring: out of memory"}
	}
	var e *C.rmqs_error
	if err := takeError(C.gormqs_config_set_log(cfg, l, &e), e); err != nil {
		C.gormqs_log_release(l)
		return nil, err
	}
	return &logRing{l: l, f: f}, nil
}

// start runs the delivering goroutine (nil: nothing to do). It ends once the library has
// released the ring (the connection and the config are freed) and the ring is empty.
func (r *logRing) start() {
	if r == nil {
		return
	}
	go func() {
		const batch = 64
		recs := (*C.gormqs_log_rec)(C.malloc(batch * C.size_t(unsafe.Sizeof(C.gormqs_log_rec{}))))
		defer C.free(unsafe.Pointer(recs))
		defer C.gormqs_log_release(r.l)
		view := unsafe.Slice(recs, batch)
		for {
			var dropped C.uint64_t
			var ended C.int32_t
			n := int(C.gormqs_log_take(r.l, recs, batch, 1000, &dropped, &ended))
			for i := range view[:n] {
				rec := &view[i]
				r.f(LogRecord{Level: LogLevel(rec.level), Target: C.GoString(&rec.target[0]),
					Message: C.GoString(&rec.message[0])})
			}
			if dropped > 0 {
				r.f(LogRecord{Level: LogWarn, Target: "dropped",
					Message: strconv.FormatUint(uint64(dropped), 10) + " log records dropped (the ring was full)"})
			}
			if ended != 0 {
				return
			}
		}
	}()
}
