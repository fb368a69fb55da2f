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

// The statuses of rmqs_status_code, mirrored from include/rmqstream.h (a test checks the
// mirror against rmqs_status_descs()).
const (
	StatusOK                                Status = 0
	StatusStreamDoesNotExist                Status = 2
	StatusSubscriptionIDAlreadyExists       Status = 3
	StatusSubscriptionIDDoesNotExist        Status = 4
	StatusStreamAlreadyExists               Status = 5
	StatusStreamNotAvailable                Status = 6
	StatusSASLMechanismNotSupported         Status = 7
	StatusAuthenticationFailure             Status = 8
	StatusSASLError                         Status = 9
	StatusSASLChallenge                     Status = 10
	StatusSASLAuthenticationFailureLoopback Status = 11
	StatusVirtualHostAccessFailure          Status = 12
	StatusUnknownFrame                      Status = 13
	StatusFrameTooLarge                     Status = 14
	StatusInternalError                     Status = 15
	StatusAccessRefused                     Status = 16
	StatusPreconditionFailed                Status = 17
	StatusPublisherDoesNotExist             Status = 18
	StatusNoOffset                          Status = 19
	StatusSASLCannotChangeMechanism         Status = 20
	StatusSASLCannotChangeUsername          Status = 21
	StatusInvalidArgument                   Status = -1
	StatusTimeout                           Status = -2
	StatusClosed                            Status = -3
	StatusUnsupported                       Status = -4
	StatusQueueFull                         Status = -5
	StatusTLS                               Status = -6
	StatusIO                                Status = -7
	StatusProtocol                          Status = -8
	StatusWouldDeadlock                     Status = -9
	StatusPanic                             Status = -10
	StatusFatal                             Status = -11
	StatusNotConfirmed                      Status = -12
)

// Sentinel errors, one per status, for errors.Is: errors.Is(err, rmqstream.ErrTimeout) is
// true for every *Error whose Status is StatusTimeout, whatever its message.
var (
	ErrStreamDoesNotExist                = &Error{Status: StatusStreamDoesNotExist}
	ErrSubscriptionIDAlreadyExists       = &Error{Status: StatusSubscriptionIDAlreadyExists}
	ErrSubscriptionIDDoesNotExist        = &Error{Status: StatusSubscriptionIDDoesNotExist}
	ErrStreamAlreadyExists               = &Error{Status: StatusStreamAlreadyExists}
	ErrStreamNotAvailable                = &Error{Status: StatusStreamNotAvailable}
	ErrSASLMechanismNotSupported         = &Error{Status: StatusSASLMechanismNotSupported}
	ErrAuthenticationFailure             = &Error{Status: StatusAuthenticationFailure}
	ErrSASLError                         = &Error{Status: StatusSASLError}
	ErrSASLChallenge                     = &Error{Status: StatusSASLChallenge}
	ErrSASLAuthenticationFailureLoopback = &Error{Status: StatusSASLAuthenticationFailureLoopback}
	ErrVirtualHostAccessFailure          = &Error{Status: StatusVirtualHostAccessFailure}
	ErrUnknownFrame                      = &Error{Status: StatusUnknownFrame}
	ErrFrameTooLarge                     = &Error{Status: StatusFrameTooLarge}
	ErrInternalError                     = &Error{Status: StatusInternalError}
	ErrAccessRefused                     = &Error{Status: StatusAccessRefused}
	ErrPreconditionFailed                = &Error{Status: StatusPreconditionFailed}
	ErrPublisherDoesNotExist             = &Error{Status: StatusPublisherDoesNotExist}
	ErrNoOffset                          = &Error{Status: StatusNoOffset}
	ErrSASLCannotChangeMechanism         = &Error{Status: StatusSASLCannotChangeMechanism}
	ErrSASLCannotChangeUsername          = &Error{Status: StatusSASLCannotChangeUsername}
	ErrInvalidArgument                   = &Error{Status: StatusInvalidArgument}
	ErrTimeout                           = &Error{Status: StatusTimeout}
	ErrClosed                            = &Error{Status: StatusClosed}
	ErrUnsupported                       = &Error{Status: StatusUnsupported}
	ErrQueueFull                         = &Error{Status: StatusQueueFull}
	ErrTLS                               = &Error{Status: StatusTLS}
	ErrIO                                = &Error{Status: StatusIO}
	ErrProtocol                          = &Error{Status: StatusProtocol}
	ErrWouldDeadlock                     = &Error{Status: StatusWouldDeadlock}
	ErrPanic                             = &Error{Status: StatusPanic}
	ErrFatal                             = &Error{Status: StatusFatal}
	ErrNotConfirmed                      = &Error{Status: StatusNotConfirmed}
)

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
