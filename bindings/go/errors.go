package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Status is a library status (rmqs_status): 0 is success, positive values are response
// codes of the RabbitMQ stream protocol (the broker refused the request), negative values are
// errors the library detected itself. Values unknown to this version of the binding (a newer
// broker or library) are passed through unchanged.
type Status int32

//go:generate go run ./internal/gen ../../include/rmqstream.h status_gen.go

// The Status constants and their sentinel errors (ErrTimeout, ...) are generated from the
// header's rmqs_status_code enum into status_gen.go.

// ErrIncompatibleLibrary is wrapped by Connect's error when the loaded librmqstream is not
// compatible with the header this package was compiled against.
var ErrIncompatibleLibrary = errors.New("rmqstream: incompatible librmqstream")

// Error is a failed library call: its status and the library's message.
type Error struct {
	Status  Status
	Message string
}

// Error returns "rmqstream: <message> (<STATUS_NAME>)".
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Status.Description()
	}
	return fmt.Sprintf("rmqstream: %s (%s)", msg, e.Status.Name())
}

// Is reports whether target is an *Error with the same Status and either no message (the
// sentinels) or the same message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Status == e.Status && (t.Message == "" || t.Message == e.Message)
}

type statusDesc struct{ name, description string }

// statusTable is read once from rmqs_status_descs(): names and descriptions of every status
// the loaded library knows.
var statusTable = func() map[Status]statusDesc {
	var p *C.rmqs_status_desc
	var n C.size_t
	C.rmqs_status_descs(&p, &n)
	m := make(map[Status]statusDesc, int(n))
	if p == nil {
		return m
	}
	for _, d := range unsafe.Slice(p, int(n)) {
		m[Status(d.status)] = statusDesc{C.GoString(d.name), C.GoString(d.description)}
	}
	return m
}()

// Name is the status's macro name, e.g. "RMQS_ERR_TIMEOUT"; "RMQS_UNKNOWN" for values the
// library does not know.
func (s Status) Name() string {
	if d, ok := statusTable[s]; ok {
		return d.name
	}
	return "RMQS_UNKNOWN"
}

// Description is a short English description, e.g. "timed out".
func (s Status) Description() string {
	if d, ok := statusTable[s]; ok {
		return d.description
	}
	return fmt.Sprintf("unknown status %d", int32(s))
}

// String returns the name.
func (s Status) String() string { return s.Name() }

// Err returns nil for StatusOK, else an *Error with this status and its description.
func (s Status) Err() error {
	if s == StatusOK {
		return nil
	}
	return &Error{Status: s, Message: s.Description()}
}

// StatusOf returns the Status of the first *Error in err's chain, and false when there is
// none (nil, context errors, ...).
func StatusOf(err error) (s Status, ok bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, true
	}
	return StatusOK, false
}

// takeError turns a status and an optional rmqs_error into a Go error, freeing the rmqs_error.
func takeError(st C.rmqs_status, e *C.rmqs_error) error {
	if st == 0 {
		if e != nil {
			C.rmqs_error_free(e)
		}
		return nil
	}
	err := &Error{Status: Status(st)}
	if e != nil {
		err.Message = C.GoString(C.rmqs_error_message(e))
		C.rmqs_error_free(e)
	} else {
		err.Message = err.Status.Description()
	}
	return err
}

// libraryStatusName asks the library directly (rmqs_status_name), for the mirror test.
func libraryStatusName(s Status) string {
	return C.GoString(C.rmqs_status_name(C.rmqs_status(s)))
}
