package rmqstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every status of the library's table has a Go constant and a sentinel, with the same name.
func TestStatusMirror(t *testing.T) {
	sentinels := map[Status]*Error{}
	for _, e := range []*Error{ErrStreamDoesNotExist, ErrSubscriptionIDAlreadyExists,
		ErrSubscriptionIDDoesNotExist, ErrStreamAlreadyExists, ErrStreamNotAvailable,
		ErrSASLMechanismNotSupported, ErrAuthenticationFailure, ErrSASLError, ErrSASLChallenge,
		ErrSASLAuthenticationFailureLoopback, ErrVirtualHostAccessFailure, ErrUnknownFrame,
		ErrFrameTooLarge, ErrInternalError, ErrAccessRefused, ErrPreconditionFailed,
		ErrPublisherDoesNotExist, ErrNoOffset, ErrSASLCannotChangeMechanism,
		ErrSASLCannotChangeUsername, ErrInvalidArgument, ErrTimeout, ErrClosed, ErrUnsupported,
		ErrQueueFull, ErrTLS, ErrIO, ErrProtocol, ErrWouldDeadlock, ErrPanic, ErrFatal,
		ErrNotConfirmed} {
		if _, dup := sentinels[e.Status]; dup {
			t.Errorf("two sentinels for %d", e.Status)
		}
		sentinels[e.Status] = e
	}
	if len(statusTable) == 0 {
		t.Fatal("rmqs_status_descs: empty table")
	}
	for st, d := range statusTable {
		if libraryStatusName(st) != d.name {
			t.Errorf("status %d: rmqs_status_name %q, table %q", st, libraryStatusName(st), d.name)
		}
		if st == StatusOK {
			continue
		}
		s, ok := sentinels[st]
		if !ok {
			t.Errorf("status %d (%s) has no sentinel: update errors.go", st, d.name)
			continue
		}
		delete(sentinels, st)
		if s.Status.Name() != d.name {
			t.Errorf("sentinel for %s has the wrong status", d.name)
		}
	}
	for st := range sentinels {
		t.Errorf("sentinel for status %d is not in the library's table", st)
	}
	// Each Go constant has the value of the header's macro of the same meaning.
	for st, name := range map[Status]string{
		StatusOK: "RMQS_OK", StatusStreamDoesNotExist: "RMQS_ERR_STREAM_DOES_NOT_EXIST",
		StatusSubscriptionIDAlreadyExists:       "RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS",
		StatusSubscriptionIDDoesNotExist:        "RMQS_ERR_SUBSCRIPTION_ID_DOES_NOT_EXIST",
		StatusStreamAlreadyExists:               "RMQS_ERR_STREAM_ALREADY_EXISTS",
		StatusStreamNotAvailable:                "RMQS_ERR_STREAM_NOT_AVAILABLE",
		StatusSASLMechanismNotSupported:         "RMQS_ERR_SASL_MECHANISM_NOT_SUPPORTED",
		StatusAuthenticationFailure:             "RMQS_ERR_AUTHENTICATION_FAILURE",
		StatusSASLError:                         "RMQS_ERR_SASL_ERROR",
		StatusSASLChallenge:                     "RMQS_ERR_SASL_CHALLENGE",
		StatusSASLAuthenticationFailureLoopback: "RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK",
		StatusVirtualHostAccessFailure:          "RMQS_ERR_VIRTUAL_HOST_ACCESS_FAILURE",
		StatusUnknownFrame:                      "RMQS_ERR_UNKNOWN_FRAME",
		StatusFrameTooLarge:                     "RMQS_ERR_FRAME_TOO_LARGE",
		StatusInternalError:                     "RMQS_ERR_INTERNAL_ERROR",
		StatusAccessRefused:                     "RMQS_ERR_ACCESS_REFUSED",
		StatusPreconditionFailed:                "RMQS_ERR_PRECONDITION_FAILED",
		StatusPublisherDoesNotExist:             "RMQS_ERR_PUBLISHER_DOES_NOT_EXIST",
		StatusNoOffset:                          "RMQS_ERR_NO_OFFSET",
		StatusSASLCannotChangeMechanism:         "RMQS_ERR_SASL_CANNOT_CHANGE_MECHANISM",
		StatusSASLCannotChangeUsername:          "RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME",
		StatusInvalidArgument:                   "RMQS_ERR_INVALID_ARGUMENT",
		StatusTimeout:                           "RMQS_ERR_TIMEOUT",
		StatusClosed:                            "RMQS_ERR_CLOSED",
		StatusUnsupported:                       "RMQS_ERR_UNSUPPORTED",
		StatusQueueFull:                         "RMQS_ERR_QUEUE_FULL",
		StatusTLS:                               "RMQS_ERR_TLS",
		StatusIO:                                "RMQS_ERR_IO",
		StatusProtocol:                          "RMQS_ERR_PROTOCOL",
		StatusWouldDeadlock:                     "RMQS_ERR_WOULD_DEADLOCK",
		StatusPanic:                             "RMQS_ERR_PANIC",
		StatusFatal:                             "RMQS_ERR_FATAL",
		StatusNotConfirmed:                      "RMQS_ERR_NOT_CONFIRMED",
	} {
		if got := libraryStatusName(st); got != name {
			t.Errorf("Go constant %d is %s in the library, want %s", int32(st), got, name)
		}
	}
}

func TestErrorIs(t *testing.T) {
	var err error = &Error{Status: StatusTimeout, Message: "flush timed out"}
	wrapped := fmt.Errorf("context: %w", err)
	if !errors.Is(err, ErrTimeout) || !errors.Is(wrapped, ErrTimeout) {
		t.Error("errors.Is(ErrTimeout) false")
	}
	if errors.Is(err, ErrClosed) {
		t.Error("errors.Is(ErrClosed) true")
	}
	if s, ok := StatusOf(wrapped); !ok || s != StatusTimeout {
		t.Errorf("StatusOf: %v %v", s, ok)
	}
	if _, ok := StatusOf(context.Canceled); ok {
		t.Error("StatusOf(context.Canceled) ok")
	}
	if got := err.Error(); got != "rmqstream: flush timed out (RMQS_ERR_TIMEOUT)" {
		t.Errorf("Error(): %q", got)
	}
	if Status(-999).Name() != "RMQS_UNKNOWN" || Status(0).Err() != nil {
		t.Error("unknown status / OK")
	}
}

func TestVersion(t *testing.T) {
	if err := checkLibraryVersion(); err != nil {
		t.Fatal(err)
	}
	if LibraryVersion() == "" {
		t.Fatal("empty library version")
	}
}

// Same vectors as tests/ffi_basics.rs (the other clients' routing).
func TestPartitionIndex(t *testing.T) {
	for _, c := range []struct {
		key  string
		n    int
		want int
	}{{"hello", 1000, 225}, {"world", 1000, 188}, {"", 7, 3}, {"anything", 1, 0}} {
		got, err := PartitionIndex([]byte(c.key), c.n)
		if err != nil || got != c.want {
			t.Errorf("PartitionIndex(%q, %d) = %d, %v; want %d", c.key, c.n, got, err, c.want)
		}
	}
	if _, err := PartitionIndex([]byte("k"), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("0 partitions: %v", err)
	}
}

func TestOffsetSpecs(t *testing.T) {
	for _, c := range []struct {
		s    OffsetSpec
		want string
	}{{First, "first"}, {Last, "last"}, {Next, "next"}, {Offset(42), "offset:42"}} {
		if c.s.String() != c.want {
			t.Errorf("%v != %s", c.s, c.want)
		}
	}
}

// gormqs.h declares each of its helpers once, outside the version checks' #error branches
// (a stray copy there once sat between #if and #endif, twice).
func TestHelperHeaderDeclaresEachHelperOnce(t *testing.T) {
	src, err := os.ReadFile("gormqs.h")
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^[a-z_][a-z_ *]*\b(gormqs_[a-z_]+)\(`)
	seen := map[string]int{}
	for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
		seen[m[1]]++
	}
	if len(seen) == 0 {
		t.Fatal("no gormqs_ declaration found")
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s is declared %d times", name, n)
		}
	}
	// Between a version check's #if and its #endif there is only the #error.
	block := regexp.MustCompile(`(?s)#if RMQS_VERSION_[A-Z]+ [^\n]*\n(.*?)#endif`)
	for _, m := range block.FindAllStringSubmatch(string(src), -1) {
		if body := strings.TrimSpace(m[1]); !strings.HasPrefix(body, "#error") || strings.Count(body, "\n") != 0 {
			t.Errorf("version check holds more than its #error:\n%s", body)
		}
	}
}
