package rmqstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func body(i int) []byte { return []byte(fmt.Sprintf("message-%05d", i)) }

// 10,000 messages through Send and SendBatch with confirms on a channel, read back by a
// handler consumer and a channel consumer: every body at its exact offset, every confirm once.
func TestProduceConsume10k(t *testing.T) {
	const total = 10000
	c := connect(t)
	s := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)

	p, err := c.NewProducer(ctx, s, WithConfirmChannel(256))
	if err != nil {
		t.Fatal(err)
	}
	confirmed := make(chan map[uint64]bool)
	go func() {
		seen := map[uint64]bool{}
		for cf := range p.Confirms() {
			if cf.Err != nil {
				t.Errorf("confirm %d: %v", cf.PublishingID, cf.Err)
			}
			if seen[cf.PublishingID] {
				t.Errorf("confirm %d twice", cf.PublishingID)
			}
			seen[cf.PublishingID] = true
		}
		confirmed <- seen
	}()
	// First half one by one, second half in batches of 100.
	for i := 0; i < total/2; i++ {
		if err := p.Send(ctx, body(i)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	for i := total / 2; i < total; i += 100 {
		batch := make([][]byte, 100)
		for j := range batch {
			batch[j] = body(i + j)
		}
		if err := p.SendBatch(ctx, batch); err != nil {
			t.Fatalf("SendBatch at %d: %v", i, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	st, err := p.Stats()
	if err != nil || st.Published != total || st.Confirmed != total || st.InFlight != 0 {
		t.Fatalf("producer stats %+v, %v", st, err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Producer.Close: %v", err)
	}
	if seen := <-confirmed; len(seen) != total {
		t.Fatalf("%d confirms, want %d", len(seen), total)
	}
	if err := p.Send(ctx, body(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}

	// Handler mode.
	var mu sync.Mutex
	next := uint64(0)
	done := make(chan struct{})
	k, err := c.NewConsumer(ctx, s, func(m Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.Offset != next {
			t.Errorf("handler: offset %d, want %d", m.Offset, next)
		}
		if !bytes.Equal(m.Body, body(int(m.Offset))) {
			t.Errorf("handler: offset %d body %q", m.Offset, m.Body)
		}
		if m.Stream != s || m.ChunkID > m.Offset || m.Timestamp.IsZero() {
			t.Errorf("handler: message fields %+v", m)
		}
		next = m.Offset + 1
		if next == total {
			close(done)
		}
	}, First)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("handler consumer: %d of %d messages", next, total)
	}
	cs, err := k.Stats()
	if err != nil || cs.Messages != total {
		t.Errorf("consumer stats %+v, %v", cs, err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatalf("Consumer.Close: %v", err)
	}
	<-k.Done()
	if k.Err() != nil {
		t.Errorf("Err after Close: %v", k.Err())
	}

	// Channel mode, starting in the middle.
	k2, err := c.NewConsumer(ctx, s, nil, Offset(total-1000))
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(total - 1000); want < total; want++ {
		select {
		case m := <-k2.Messages():
			if m.Offset != want || !bytes.Equal(m.Body, body(int(want))) {
				t.Fatalf("channel: offset %d body %q, want %d", m.Offset, m.Body, want)
			}
		case <-ctx.Done():
			t.Fatalf("channel consumer stuck at %d", want)
		}
	}
	if err := k2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, open := <-k2.Messages(); open {
		t.Error("Messages() not closed after Close")
	}
}

// A named producer's resend is dropped by the broker (still confirmed), and a new producer
// with the same name continues after the broker's last id.
func TestDeduplication(t *testing.T) {
	c := connect(t)
	s := newStream(t, c)
	ctx := testCtx(t, 30*time.Second)
	name := uniqueName(t, "p")

	var mu sync.Mutex
	var confirms []Confirm
	p, err := c.NewProducer(ctx, s, ProducerName(name), OnConfirm(func(cs []Confirm) {
		mu.Lock()
		confirms = append(confirms, cs...)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	send := func(p *Producer, from, to uint64) {
		for id := from; id <= to; id++ {
			got, err := p.SendMessage(ctx, &Message{Body: body(int(id)), PublishingID: id,
				UsePublishingID: true, Tag: id})
			if err != nil || got != id {
				t.Fatalf("SendMessage %d: %d, %v", id, got, err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send(p, 1, 100)
	if _, err := p.SendMessage(ctx, &Message{Body: body(50), PublishingID: 50, UsePublishingID: true}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a smaller id on the same producer: %v", err)
	}
	if err := p.Flush(ctx); err != nil { // a refused send is not waited for
		t.Fatalf("Flush after a refused send: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	seq, err := c.QueryPublisherSequence(ctx, name, s)
	if err != nil || seq != 100 {
		t.Fatalf("QueryPublisherSequence: %d, %v", seq, err)
	}

	// The application restarts: a producer with the same name resends 51..100 (dropped by
	// the broker but confirmed), then Send continues at 101.
	p2, err := c.NewProducer(ctx, s, ProducerName(name), OnConfirm(func(cs []Confirm) {
		mu.Lock()
		confirms = append(confirms, cs...)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if last, ok := p2.LastPublishingID(); !ok || last != 100 {
		t.Fatalf("LastPublishingID: %d %v", last, ok)
	}
	send(p2, 51, 100)
	if err := p2.Send(ctx, body(101)); err != nil {
		t.Fatal(err)
	}
	if last, _ := p2.LastPublishingID(); last != 101 {
		t.Fatalf("LastPublishingID after Send: %d", last)
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(confirms)
	for _, cf := range confirms {
		if cf.Err != nil || (cf.Tag != cf.PublishingID && cf.PublishingID != 101) {
			t.Errorf("confirm %+v", cf)
		}
	}
	mu.Unlock()
	if n != 151 {
		t.Fatalf("%d confirms, want 151 (every send is confirmed, duplicates too)", n)
	}

	// The stream holds 101 messages: 1..100 once, then 101.
	k, err := c.NewConsumer(ctx, s, nil, First)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(ctx)
	for i := 1; i <= 101; i++ {
		m := <-k.Messages()
		if m.Offset != uint64(i-1) || !bytes.Equal(m.Body, body(i)) {
			t.Fatalf("message %d: offset %d body %q", i, m.Offset, m.Body)
		}
	}
	select {
	case m := <-k.Messages():
		t.Fatalf("extra message %d %q: duplicate not dropped", m.Offset, m.Body)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestOffsets(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 30*time.Second)
	ref := uniqueName(t, "ref")

	// Stored offsets are tracking records in the stream (they take offsets too): this part
	// uses a stream of its own so that messages below sit at offsets 0..99.
	s0 := newStream(t, c)
	if _, err := c.QueryOffset(ctx, ref, s0); !errors.Is(err, ErrNoOffset) {
		t.Fatalf("QueryOffset before any store: %v", err)
	}
	if err := c.StoreOffset(ctx, ref, s0, 41); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "stored offset 41", func() bool {
		o, err := c.QueryOffset(ctx, ref, s0)
		return err == nil && o == 41
	})

	s := newStream(t, c)

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

	// A named consumer stores the offset of message 59 from its handler.
	name := uniqueName(t, "c")
	reached := make(chan struct{})
	k, err := c.NewConsumer(ctx, s, func(m Message) {
		if m.Offset == 59 {
			if err := m.StoreOffset(); err != nil {
				t.Errorf("StoreOffset: %v", err)
			}
			close(reached)
		}
	}, ConsumerName(name), First)
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	eventually(t, 5*time.Second, "consumer offset 59", func() bool {
		o, err := k.QueryOffset(ctx)
		return err == nil && o == 59
	})
	if o, err := c.QueryOffset(ctx, name, s); err != nil || o != 59 {
		t.Fatalf("Conn.QueryOffset(%s): %d, %v", name, o, err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Resume after the stored offset.
	stored, _ := c.QueryOffset(ctx, name, s)
	k2, err := c.NewConsumer(ctx, s, nil, ConsumerName(name), Offset(stored+1))
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close(ctx)
	if m := <-k2.Messages(); m.Offset != 60 || !bytes.Equal(m.Body, body(60)) {
		t.Fatalf("resumed at %d %q", m.Offset, m.Body)
	}

	// A consumer without a name cannot store.
	k3, err := c.NewConsumer(ctx, s, func(Message) {}, Last)
	if err != nil {
		t.Fatal(err)
	}
	defer k3.Close(ctx)
	if err := k3.StoreOffset(1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("StoreOffset without a name: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 30*time.Second)

	// Bad stream names are refused by the library before reaching the broker.
	for _, bad := range []string{"", strings.Repeat("x", 256)} {
		err := c.CreateStream(ctx, bad)
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("CreateStream(%d bytes): %v", len(bad), err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Message == "" || e.Status != StatusInvalidArgument {
			t.Errorf("not an *Error with a message: %#v", err)
		}
	}
	missing := uniqueName(t, "missing")
	if _, err := c.NewProducer(ctx, missing); !errors.Is(err, ErrStreamDoesNotExist) {
		t.Errorf("NewProducer on a missing stream: %v", err)
	}
	if _, err := c.NewConsumer(ctx, missing, func(Message) {}); !errors.Is(err, ErrStreamDoesNotExist) {
		t.Errorf("NewConsumer on a missing stream: %v", err)
	}
	if err := c.DeleteStream(ctx, missing); !errors.Is(err, ErrStreamDoesNotExist) {
		t.Errorf("DeleteStream of a missing stream: %v", err)
	}
	if ok, err := c.StreamExists(ctx, missing); err != nil || ok {
		t.Errorf("StreamExists(missing): %v %v", ok, err)
	}
	s := newStream(t, c)
	if err := c.CreateStream(ctx, s); !errors.Is(err, ErrStreamAlreadyExists) {
		t.Errorf("CreateStream twice: %v", err)
	}
	if ok, err := c.StreamExists(ctx, s); err != nil || !ok {
		t.Errorf("StreamExists: %v %v", ok, err)
	}
	if err := c.CreateStream(ctx, uniqueName(t, "s"), LeaderLocator("nowhere")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad stream argument: %v", err)
	}
	if _, err := c.NewConsumer(ctx, s, nil, InitialCredit(0)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("InitialCredit(0): %v", err)
	}
	if _, err := Connect(ctx, "rabbitmq-stream://guest:wrong@localhost:1/%2f",
		WithConnectTimeout(2*time.Second)); err == nil {
		t.Error("Connect to port 1 succeeded")
	} else if _, ok := StatusOf(err); !ok {
		t.Errorf("Connect error is not an *Error: %v", err)
	}
	if _, err := Connect(ctx, "http://nope"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Connect with a bad URI: %v", err)
	}
	// Wrong password against the test broker.
	u := strings.Replace(testURI(), "guest:guest@", "guest:wrong@", 1)
	if u != testURI() {
		if _, err := Connect(ctx, u); !errors.Is(err, ErrAuthenticationFailure) {
			t.Errorf("wrong password: %v", err)
		}
	}
}

func TestNegotiated(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c, err := Connect(ctx, testURI(), WithSetting("frame_max", "131072"), WithHeartbeat(17*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	// the smaller of ours and the broker's (1 MiB, 60 s)
	fm, hb, err := c.Negotiated()
	if err != nil || fm != 131072 || hb != 17*time.Second {
		t.Fatalf("negotiated %d, %v, %v; want 131072, 17s", fm, hb, err)
	}
	c.Close(ctx)
	if _, _, err := c.Negotiated(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestStreamInfo(t *testing.T) {
	c := connect(t)
	s := newStream(t, c, MaxLengthBytes(1<<30), MaxAge(24*time.Hour))
	ctx := testCtx(t, 30*time.Second)
	if c.ServerVersion() == "" {
		t.Error("empty server version")
	}
	st, err := c.StreamStats(ctx, s)
	if errors.Is(err, ErrUnsupported) {
		t.Skip("StreamStats needs RabbitMQ 3.11+")
	}
	if err != nil || st.FirstChunkID != -1 {
		t.Fatalf("stats of an empty stream: %+v, %v", st, err)
	}
	p, err := c.NewProducer(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		_ = p.Send(ctx, body(i))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = c.StreamStats(ctx, s)
	if err != nil || st.FirstChunkID != 0 || st.CommittedChunkID < 0 {
		t.Fatalf("stats: %+v, %v", st, err)
	}
	md, err := c.Metadata(ctx, s)
	if err != nil || md.Leader == nil || md.Leader.Port == 0 {
		t.Fatalf("metadata: %+v, %v", md, err)
	}
	cst, err := c.Stats()
	if err != nil || cst.FramesIn == 0 || cst.DataConnections == 0 {
		t.Fatalf("connection stats: %+v, %v", cst, err)
	}
}

// Broker-side filtering (Bloom filter per chunk) plus the client-side post-filter.
func TestFiltering(t *testing.T) {
	c := connect(t)
	if !c.Supports(0x02, 2) { // Publish v2 carries filter values (RabbitMQ 3.13+)
		t.Skip("the broker has no stream filtering (RabbitMQ 3.13+)")
	}
	s := newStream(t, c, FilterSize(32))
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, s, BatchDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	// Chunks of one color each: flush between colors.
	colors := []string{"red", "blue", "green"}
	const per = 50
	for round := 0; round < 4; round++ {
		for _, color := range colors {
			for i := 0; i < per; i++ {
				b := []byte(fmt.Sprintf("%s-%d-%d", color, round, i))
				if _, err := p.SendMessage(ctx, &Message{Body: b, FilterValue: color}); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	total := 4 * per * len(colors)
	var mu sync.Mutex
	seen, kept := 0, 0
	k, err := c.NewConsumer(ctx, s, func(m Message) {
		mu.Lock()
		kept++
		mu.Unlock()
		if !bytes.HasPrefix(m.Body, []byte("red-")) {
			t.Errorf("post-filter let %q through", m.Body)
		}
	}, First, Filter("red"), PostFilter(func(m Message) bool {
		mu.Lock()
		seen++
		mu.Unlock()
		return bytes.HasPrefix(m.Body, []byte("red-"))
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(ctx)
	eventually(t, 10*time.Second, "all red messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return kept == 4*per
	})
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if kept != 4*per {
		t.Fatalf("kept %d, want %d", kept, 4*per)
	}
	if seen >= total {
		t.Fatalf("the broker filtered nothing: %d of %d messages reached the client", seen, total)
	}
	t.Logf("broker sent %d of %d messages, post-filter kept %d", seen, total, kept)
}

// Single active consumer: one consumer of the group gets the messages; when it closes, the
// other takes over after the offset the first stored.
func TestSingleActiveConsumer(t *testing.T) {
	c := connect(t)
	s := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)
	group := uniqueName(t, "grp")

	type rec struct {
		who    int
		offset uint64
		body   string
	}
	got := make(chan rec, 1000)
	mk := func(who int) *Consumer {
		k, err := c.NewConsumer(ctx, s, func(m Message) {
			if m.Offset == 49 {
				_ = m.StoreOffset()
			}
			got <- rec{who, m.Offset, string(m.Body)}
		}, ConsumerName(group), SingleActive(), First)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := mk(1)
	k2 := mk(2)
	defer k2.Close(ctx)

	p, err := c.NewProducer(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	sendN := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := p.Send(ctx, body(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sendN(0, 50)
	for i := 0; i < 50; i++ {
		r := <-got
		if r.who != 1 || r.offset != uint64(i) {
			t.Fatalf("message %d went to consumer %d at offset %d (want the first, active one)", i, r.who, r.offset)
		}
	}
	eventually(t, 5*time.Second, "the active consumer's stored offset", func() bool {
		o, err := c.QueryOffset(ctx, group, s)
		return err == nil && o == 49
	})
	if err := k1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sendN(50, 50)
	for i := 50; i < 100; i++ {
		select {
		case r := <-got:
			// (the stored offset is a record in the stream: offsets moved by one)
			if r.who != 2 || r.body != string(body(i)) {
				t.Fatalf("after take-over: consumer %d got %q, want consumer 2 and %q", r.who, r.body, body(i))
			}
		case <-ctx.Done():
			t.Fatalf("consumer 2 did not take over (waiting for offset %d)", i)
		}
	}
}

func TestManualCredit(t *testing.T) {
	c := connect(t)
	s := newStream(t, c)
	ctx := testCtx(t, 30*time.Second)
	p, err := c.NewProducer(ctx, s, BatchDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ { // 5 chunks of 10 messages
		batch := make([][]byte, 10)
		for j := range batch {
			batch[j] = body(i*10 + j)
		}
		if err := p.SendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	chunks := make(chan uint64, 100)
	var last uint64 = ^uint64(0)
	k, err := c.NewConsumer(ctx, s, func(m Message) {
		if m.ChunkID != last {
			last = m.ChunkID
			chunks <- m.ChunkID
		}
	}, First, ManualCredit(), InitialCredit(1))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(ctx)
	<-chunks
	select {
	case id := <-chunks:
		t.Fatalf("chunk %d arrived without credit", id)
	case <-time.After(300 * time.Millisecond):
	}
	if err := k.Credit(1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-chunks:
	case <-time.After(5 * time.Second):
		t.Fatal("no chunk after Credit(1)")
	}
	if err := k.Credit(0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Credit(0): %v", err)
	}
}

// Closing: contexts are honoured, the connection's Close closes its producers and consumers,
// and a deleted stream ends its consumer with an error.
func TestCloseAndLoss(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Connect(cancelled, testURI()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with a cancelled context: %v", err)
	}

	c, err := Connect(ctx, testURI())
	if err != nil {
		t.Fatal(err)
	}
	admin := connect(t)
	s := newStream(t, admin)
	p, err := c.NewProducer(ctx, s, WithConfirmChannel(10))
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.NewConsumer(ctx, s, nil, Next)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan struct{}{p.Done(), k.Done()} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("producer or consumer not done after Conn.Close")
		}
	}
	if _, open := <-p.Confirms(); open {
		t.Error("confirm channel open after Conn.Close")
	}
	if err := p.Send(ctx, body(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Conn.Close: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Errorf("Producer.Close after Conn.Close: %v", err)
	}
	if err := k.Close(ctx); err != nil {
		t.Errorf("Consumer.Close after Conn.Close: %v", err)
	}
	if err := c.CreateStream(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateStream after Close: %v", err)
	}
	if _, err := c.NewProducer(ctx, s); !errors.Is(err, ErrClosed) {
		t.Errorf("NewProducer after Close: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// An expired context: Close returns its error, the close completes in the background.
	c2 := connect(t)
	expired, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := c2.Close(expired); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a cancelled context: %v", err)
	}

	// Stream deleted under a consumer and a producer.
	c3 := connect(t)
	s3 := newStream(t, c3)
	k3, err := c3.NewConsumer(ctx, s3, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	p3, err := c3.NewProducer(ctx, s3)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteStream(ctx, s3); err != nil {
		t.Fatal(err)
	}
	// The producer learns of the loss on its next send (the library has no state event for
	// a producer's lost stream).
	eventually(t, 10*time.Second, "a send failing after the stream was deleted", func() bool {
		return errors.Is(p3.Send(ctx, body(0)), ErrClosed)
	})
	for what, x := range map[string]interface {
		Done() <-chan struct{}
		Err() error
	}{"consumer": k3, "producer": p3} {
		select {
		case <-x.Done():
			if x.Err() == nil {
				t.Errorf("%s: Err() nil after its stream was deleted", what)
			} else {
				t.Logf("%s ended: %v", what, x.Err())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s not done after its stream was deleted", what)
		}
	}
	_ = k3.Close(ctx)
	_ = p3.Close(ctx)
}

// Many goroutines sending on one producer and consuming on one connection, for -race.
func TestConcurrentSends(t *testing.T) {
	c := connect(t)
	s := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)
	p, err := c.NewProducer(ctx, s, MaxInFlight(500), WithConfirmChannel(0))
	if err != nil {
		t.Fatal(err)
	}
	var confirms int
	cdone := make(chan struct{})
	go func() {
		for range p.Confirms() {
			confirms++
		}
		close(cdone)
	}()
	const workers, per = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := p.Send(ctx, []byte(fmt.Sprintf("%d/%d", w, i))); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-cdone
	if confirms != workers*per {
		t.Fatalf("%d confirms, want %d", confirms, workers*per)
	}
	// Per-worker order is kept.
	lastSeen := map[string]int{}
	n := 0
	k, err := c.NewConsumer(ctx, s, nil, First)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(ctx)
	for n < workers*per {
		m := <-k.Messages()
		var w, i int
		fmt.Sscanf(string(m.Body), "%d/%d", &w, &i)
		key := fmt.Sprint(w)
		if prev, ok := lastSeen[key]; ok && i != prev+1 {
			t.Fatalf("worker %d: %d after %d", w, i, prev)
		}
		lastSeen[key] = i
		n++
	}
}
