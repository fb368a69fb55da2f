package rmqstream

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// The consumer-update function: the first consumer of the group is told it is active and
// starts where it says; the second takes over on close, told the stored offset.
func TestConsumerUpdate(t *testing.T) {
	c := connect(t)
	s := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)
	group := uniqueName(t, "grp")

	p, err := c.NewProducer(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := p.Send(ctx, body(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var updates []string
	type rec struct {
		who  int
		body string
	}
	got := make(chan rec, 1000)
	mk := func(who int) *Consumer {
		k, err := c.NewConsumer(ctx, s, func(m Message) {
			if m.Offset == 69 {
				if err := m.StoreOffset(); err != nil {
					t.Errorf("StoreOffset: %v", err)
				}
			}
			got <- rec{who, string(m.Body)}
		}, ConsumerName(group), SingleActive(), Next, OnConsumerUpdate(func(u ConsumerUpdate) OffsetSpec {
			mu.Lock()
			updates = append(updates, fmt.Sprintf("%d active=%v stored=%v/%d default=%v", who,
				u.Active, u.HasStoredOffset, u.StoredOffset, u.Default))
			mu.Unlock()
			if u.Stream != s || u.Partition != -1 {
				t.Errorf("update fields %+v", u)
			}
			if !u.Active {
				return DefaultOffset
			}
			if !u.HasStoredOffset {
				return Offset(50) // instead of Next
			}
			return Offset(u.StoredOffset + 1)
		}))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := mk(1)
	for i := 50; i < 100; i++ {
		r := <-got
		if r.who != 1 || r.body != string(body(i)) {
			t.Fatalf("got %+v, want consumer 1 and %q", r, body(i))
		}
	}
	k2 := mk(2)
	defer k2.Close(ctx)
	if !k1.IsActive() || k2.IsActive() {
		t.Fatalf("IsActive: %v %v", k1.IsActive(), k2.IsActive())
	}
	eventually(t, 5*time.Second, "offset 69 stored", func() bool {
		o, err := c.QueryOffset(ctx, group, s)
		return err == nil && o == 69
	})
	if err := k1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Consumer 2 starts right after the stored offset: messages 70..99 again.
	for i := 70; i < 100; i++ {
		select {
		case r := <-got:
			if r.who != 2 || r.body != string(body(i)) {
				t.Fatalf("after take-over got %+v, want consumer 2 and %q", r, body(i))
			}
		case <-ctx.Done():
			t.Fatalf("no take-over (at %d)", i)
		}
	}
	eventually(t, 5*time.Second, "consumer 2 active", k2.IsActive)
	mu.Lock()
	defer mu.Unlock()
	want := []string{"1 active=true stored=false/0 default=next",
		"2 active=true stored=true/69 default=offset:70"}
	if fmt.Sprint(updates) != fmt.Sprint(want) {
		t.Fatalf("updates %q, want %q", updates, want)
	}
}

// Automatic tracking stores the processed offset on close; a consumer with manual tracking
// and the same name resumes right after it.
func TestTracking(t *testing.T) {
	c := connect(t)
	s := newStream(t, c)
	ctx := testCtx(t, 30*time.Second)
	name := uniqueName(t, "trk")
	p, err := c.NewProducer(ctx, s, BatchDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if err := p.Send(ctx, body(i)); err != nil {
			t.Fatal(err)
		}
		if i == 99 {
			_ = p.Flush(ctx) // two chunks at least
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := c.NewConsumer(ctx, s, nil, ConsumerName(name), AutoTracking(0, 0), First)
	if err != nil {
		t.Fatal(err)
	}
	var last Message
	for i := 0; i < 200; i++ {
		last = <-k.Messages()
	}
	if !bytes.Equal(last.Body, body(199)) {
		t.Fatalf("last body %q", last.Body)
	}
	// The chunk of the last message is released once the channel handed it over and the
	// goroutine moved on: wait for the processed offset to reach it.
	eventually(t, 5*time.Second, "processed offset", func() bool {
		o, err := k.StoreProcessedOffset()
		return (err == nil && o == last.Offset) || errors.Is(err, ErrNoOffset)
	})
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "stored offset", func() bool {
		o, err := c.QueryOffset(ctx, name, s)
		return err == nil && o == last.Offset
	})
	for i := 200; i < 210; i++ {
		_ = p.Send(ctx, body(i))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	k2, err := c.NewConsumer(ctx, s, nil, ConsumerName(name), ManualTracking(), First)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close(ctx)
	if m := <-k2.Messages(); !bytes.Equal(m.Body, body(200)) {
		t.Fatalf("resumed with %q, want %q", m.Body, body(200))
	}
}

// Sub-entries with each codec: consumers see every message, in order, with its own offset.
func TestSubEntryCompression(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 60*time.Second)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		s := newStream(t, c)
		p, err := c.NewProducer(ctx, s, SubEntrySize(50), Compression(codec))
		if err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		batch := make([][]byte, 1000)
		for i := range batch {
			batch[i] = body(i)
		}
		if err := p.SendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		k, err := c.NewConsumer(ctx, s, nil, First)
		if err != nil {
			t.Fatal(err)
		}
		prev := int64(-1)
		for i := 0; i < 1000; i++ {
			m := <-k.Messages()
			if !bytes.Equal(m.Body, body(i)) || int64(m.Offset) <= prev {
				t.Fatalf("%s: message %d: offset %d body %q", codec, i, m.Offset, m.Body)
			}
			prev = int64(m.Offset)
		}
		_ = k.Close(ctx)
	}
	if _, err := c.NewProducer(ctx, uniqueName(t, "s"), Compression("brotli")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown codec: %v", err)
	}
}

// A super consumer reads every keyed message once from the partition hash routing chose,
// with per-partition offsets stored under its name.
func TestSuperConsumer(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 60*time.Second)
	super, parts := newSuperStream(t, c, 3)
	sp, err := c.NewSuperProducer(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	const total = 3000
	for i := 0; i < total; i++ {
		if err := sp.Send(ctx, fmt.Sprintf("key-%d", i), body(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	name := uniqueName(t, "sc")
	var mu sync.Mutex
	seen := map[string]bool{}
	lastOff := map[int]uint64{}
	done := make(chan struct{})
	sc, err := c.NewSuperConsumer(ctx, super, func(m Message) {
		var i int
		fmt.Sscanf(string(m.Body), "message-%d", &i)
		want, _ := PartitionIndex([]byte(fmt.Sprintf("key-%d", i)), len(parts))
		if m.Partition != want || m.Stream != parts[want] {
			t.Errorf("message %d from partition %d (%s), want %d", i, m.Partition, m.Stream, want)
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[string(m.Body)] {
			t.Errorf("message %d twice", i)
		}
		seen[string(m.Body)] = true
		lastOff[m.Partition] = m.Offset
		if len(seen) == total {
			close(done)
		}
	}, ConsumerName(name), First)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	if got := sc.Partitions(); fmt.Sprint(got) != fmt.Sprint(parts) {
		t.Fatalf("Partitions %v", got)
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("%d of %d messages", len(seen), total)
	}
	for i := range parts {
		if !sc.IsActive(i) {
			t.Errorf("partition %d not active", i)
		}
		mu.Lock()
		want := lastOff[i]
		mu.Unlock()
		if err := sc.StoreOffset(i, want); err != nil {
			t.Fatalf("StoreOffset(%d): %v", i, err)
		}
		eventually(t, 5*time.Second, "stored offset on "+parts[i], func() bool {
			o, err := sc.QueryOffset(ctx, i)
			return err == nil && o == want
		})
		if o, err := c.QueryOffset(ctx, name, parts[i]); err != nil || o != want {
			t.Errorf("Conn.QueryOffset on %s: %d, %v", parts[i], o, err)
		}
	}
	if n, err := sc.Refresh(ctx); err != nil || n != len(parts) {
		t.Fatalf("Refresh: %d, %v", n, err)
	}
	st, err := sc.Stats()
	if err != nil || st.Messages != total {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if _, err := c.NewSuperConsumer(ctx, uniqueName(t, "missing"), func(Message) {}); !errors.Is(err, ErrStreamDoesNotExist) {
		t.Fatalf("missing super stream: %v", err)
	}
}

// Two super consumers of one single-active group share the partitions: each partition is
// active on exactly one of them.
func TestSuperConsumerSingleActive(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 30*time.Second)
	super, parts := newSuperStream(t, c, 4)
	group := uniqueName(t, "grp")
	var mu sync.Mutex
	activations := map[int]int{} // partition -> activations seen
	var scs []*SuperConsumer
	for i := 0; i < 2; i++ {
		sc, err := c.NewSuperConsumer(ctx, super, func(Message) {}, ConsumerName(group), SingleActive(),
			OnConsumerUpdate(func(u ConsumerUpdate) OffsetSpec {
				if u.Partition < 0 || u.Partition >= len(parts) || u.Stream != parts[u.Partition] {
					t.Errorf("update %+v", u)
					return DefaultOffset
				}
				if u.Active {
					mu.Lock()
					activations[u.Partition]++
					mu.Unlock()
				}
				return DefaultOffset
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close(ctx)
		scs = append(scs, sc)
	}
	eventually(t, 10*time.Second, "each partition active on exactly one member", func() bool {
		for i := range parts {
			if scs[0].IsActive(i) == scs[1].IsActive(i) {
				return false
			}
		}
		return true
	})
	n := 0
	for i := range parts {
		if scs[1].IsActive(i) {
			n++
		}
	}
	t.Logf("second member active on %d of %d partitions", n, len(parts))
	if err := scs[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the other member takes every partition", func() bool {
		for i := range parts {
			if !scs[1].IsActive(i) {
				return false
			}
		}
		return true
	})
	// Each partition was activated twice: on the first member alone, then on the second
	// member either when it joined (the broker moved it) or when the first closed.
	eventually(t, 5*time.Second, "two activations per partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range parts {
			if activations[i] != 2 {
				return false
			}
		}
		return true
	})
}
