package rmqstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestSuperStreamManagement(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 30*time.Second)
	name := uniqueName(t, "super")
	err := c.CreateSuperStream(ctx, name, 3)
	if errors.Is(err, ErrUnsupported) {
		t.Skip("super streams need RabbitMQ 3.13+")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteSuperStream(ctx, name)
	if err := c.CreateSuperStream(ctx, name, 3); !errors.Is(err, ErrStreamAlreadyExists) {
		t.Errorf("creating it twice: %v", err)
	}
	parts, err := c.SuperStreamPartitions(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("partitions %v", parts)
	}
	for i, p := range parts {
		if p != fmt.Sprintf("%s-%d", name, i) {
			t.Errorf("partition %d is %q", i, p)
		}
		if ok, err := c.StreamExists(ctx, p); err != nil || !ok {
			t.Errorf("partition stream %s: %v %v", p, ok, err)
		}
	}
	route, err := c.SuperStreamRoute(ctx, name, "2")
	if err != nil || len(route) != 1 || route[0] != parts[2] {
		t.Errorf("route of key 2: %v, %v", route, err)
	}
	if route, err := c.SuperStreamRoute(ctx, name, "no-such-key"); err != nil || len(route) != 0 {
		t.Errorf("route of an unbound key: %v, %v", route, err)
	}
	if i, err := PartitionIndex([]byte("hello"), len(parts)); err != nil || i < 0 || i >= 3 {
		t.Errorf("PartitionIndex: %d, %v", i, err)
	}

	// Explicit partitions and binding keys.
	name2 := uniqueName(t, "super")
	p2 := []string{name2 + "-eu", name2 + "-us"}
	if err := c.CreateSuperStreamWithBindings(ctx, name2, p2, []string{"eu", "us"}, MaxAge(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if route, err := c.SuperStreamRoute(ctx, name2, "us"); err != nil || len(route) != 1 || route[0] != p2[1] {
		t.Errorf("route of key us: %v, %v", route, err)
	}
	if err := c.CreateSuperStreamWithBindings(ctx, uniqueName(t, "super"), p2, []string{"x"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("mismatched keys: %v", err)
	}
	if err := c.DeleteSuperStream(ctx, name2); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.StreamExists(ctx, p2[0]); ok {
		t.Error("partition left after DeleteSuperStream")
	}
	if err := c.DeleteSuperStream(ctx, name2); !errors.Is(err, ErrStreamDoesNotExist) {
		t.Errorf("deleting it twice: %v", err)
	}
}

func newSuperStream(t *testing.T, c *Conn, partitions int) (string, []string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	name := uniqueName(t, "super")
	err := c.CreateSuperStream(ctx, name, partitions)
	if errors.Is(err, ErrUnsupported) {
		t.Skip("super streams need RabbitMQ 3.13+")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.DeleteSuperStream(ctx, name)
	})
	parts, err := c.SuperStreamPartitions(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return name, parts
}

// Hash routing: every keyed message lands on the partition PartitionIndex names, confirms say
// so, and a named super producer keeps one sequence per partition.
func TestSuperProducer(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 60*time.Second)
	super, parts := newSuperStream(t, c, 3)
	name := uniqueName(t, "sp")
	sp, err := c.NewSuperProducer(ctx, super, ProducerName(name), WithConfirmChannel(64))
	if err != nil {
		t.Fatal(err)
	}
	if got := sp.Partitions(); fmt.Sprint(got) != fmt.Sprint(parts) {
		t.Fatalf("Partitions %v, want %v", got, parts)
	}
	const total = 3000
	perPart := make([]int, len(parts))
	confirmsDone := make(chan []int)
	go func() {
		seen := make([]int, len(parts))
		for cf := range sp.Confirms() {
			if cf.Err != nil || cf.Partition < 0 || cf.Partition >= len(parts) {
				t.Errorf("confirm %+v", cf)
				continue
			}
			if cf.Tag > 0 { // SendMessage's (SendBatch's have tag 0)
				want, _ := PartitionIndex([]byte(fmt.Sprintf("key-%d", cf.Tag-1)), len(parts))
				if cf.Partition != want {
					t.Errorf("message %d confirmed on partition %d, want %d", cf.Tag-1, cf.Partition, want)
				}
			}
			seen[cf.Partition]++
		}
		confirmsDone <- seen
	}()
	keys := make([]string, 0, 100)
	bodies := make([][]byte, 0, 100)
	for i := 0; i < total; i++ {
		key := fmt.Sprintf("key-%d", i)
		want, _ := PartitionIndex([]byte(key), len(parts))
		perPart[want]++
		if i < total/2 {
			part, _, err := sp.SendMessage(ctx, key, &Message{Body: body(i), Tag: uint64(i + 1)})
			if err != nil || part != want {
				t.Fatalf("SendMessage %d: partition %d (want %d), %v", i, part, want, err)
			}
			continue
		}
		keys = append(keys, key)
		bodies = append(bodies, body(i))
		if len(keys) == 100 {
			// (SendBatch has no tags: its messages are checked by content below.)
			if err := sp.SendBatch(ctx, keys, bodies); err != nil {
				t.Fatal(err)
			}
			keys, bodies = keys[:0], bodies[:0]
		}
	}
	if err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := sp.Stats()
	if err != nil || st.Published != total || st.Confirmed != total {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if n, err := sp.Refresh(ctx); err != nil || n != len(parts) {
		t.Fatalf("Refresh: %d, %v", n, err)
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-confirmsDone

	// Each partition holds exactly its keys' messages, in order; the named super producer
	// has one sequence per partition.
	for pi, part := range parts {
		seq, err := c.QueryPublisherSequence(ctx, name, part)
		if err != nil || seq == 0 {
			t.Errorf("sequence on %s: %d, %v", part, seq, err)
		}
		k, err := c.NewConsumer(ctx, part, nil, First)
		if err != nil {
			t.Fatal(err)
		}
		last := -1
		for n := 0; n < perPart[pi]; n++ {
			m := <-k.Messages()
			var i int
			if _, err := fmt.Sscanf(string(m.Body), "message-%d", &i); err != nil {
				t.Fatalf("body %q", m.Body)
			}
			if want, _ := PartitionIndex([]byte(fmt.Sprintf("key-%d", i)), len(parts)); want != pi || i <= last {
				t.Fatalf("message %d on partition %d (want %d), after %d", i, pi, want, last)
			}
			last = i
		}
		select {
		case m := <-k.Messages():
			t.Errorf("extra message on %s: %q", part, m.Body)
		case <-time.After(100 * time.Millisecond):
		}
		_ = k.Close(ctx)
	}
}

// Key routing follows the bindings; a key bound nowhere is refused.
func TestSuperProducerKeyRouting(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 30*time.Second)
	super := uniqueName(t, "super")
	parts := []string{super + "-eu", super + "-us"}
	err := c.CreateSuperStreamWithBindings(ctx, super, parts, []string{"eu", "us"})
	if errors.Is(err, ErrUnsupported) {
		t.Skip("super streams need RabbitMQ 3.13+")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteSuperStream(ctx, super)
	sp, err := c.NewSuperProducer(ctx, super, KeyRouting(), Eager())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close(ctx)
	if part, _, err := sp.SendMessage(ctx, "us", &Message{Body: []byte("hello us")}); err != nil || part != 1 {
		t.Fatalf("us: partition %d, %v", part, err)
	}
	if err := sp.Send(ctx, "nowhere", []byte("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unbound key: %v", err)
	}
	if err := sp.SendBatch(ctx, []string{"eu"}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("keys and bodies of different lengths: %v", err)
	}
	if err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := c.NewConsumer(ctx, parts[1], nil, First)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(ctx)
	if m := <-k.Messages(); string(m.Body) != "hello us" {
		t.Fatalf("got %q", m.Body)
	}
	if _, err := c.NewSuperProducer(ctx, uniqueName(t, "missing")); !errors.Is(err, ErrStreamDoesNotExist) {
		t.Fatalf("missing super stream: %v", err)
	}
}
