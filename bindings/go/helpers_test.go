package rmqstream

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func testURI() string {
	if u := os.Getenv("RMQS_TEST_URI"); u != "" {
		return u
	}
	return "rabbitmq-stream://guest:guest@localhost:5552/%2f"
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a connection closed at the end of the test.
func connect(t *testing.T, opts ...Option) *Conn {
	t.Helper()
	c, err := Connect(testCtx(t, 30*time.Second), testURI(), opts...)
	if err != nil {
		t.Fatalf("Connect(%s): %v", testURI(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Conn.Close: %v", err)
		}
	})
	return c
}

var streamSeq atomic.Int64

// uniqueName is a name no other test (or earlier run) uses.
func uniqueName(t *testing.T, what string) string {
	return fmt.Sprintf("go-%s-%d-%d-%d", what, os.Getpid(), time.Now().UnixNano()%1e9, streamSeq.Add(1))
}

// newStream creates a stream deleted at the end of the test.
func newStream(t *testing.T, c *Conn, opts ...StreamOption) string {
	t.Helper()
	name := uniqueName(t, "s")
	if err := c.CreateStream(testCtx(t, 30*time.Second), name, opts...); err != nil {
		t.Fatalf("CreateStream(%s): %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.DeleteStream(ctx, name)
	})
	return name
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
