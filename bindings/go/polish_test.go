package rmqstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// collector gathers a consumer's messages.
type collector struct {
	mu   sync.Mutex
	msgs []Message
}

func (c *collector) add(m Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

// wait returns the messages once there are n, failing unless exactly n came (none more
// within 200 ms).
func (c *collector) wait(t *testing.T, n int) []Message {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprint(n, " messages"), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.msgs) >= n
	})
	time.Sleep(200 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) != n {
		t.Fatalf("consumed %d messages, want %d", len(c.msgs), n)
	}
	return append([]Message(nil), c.msgs...)
}

// consumeAll reads stream from its first offset and returns its messages once there are
// exactly n (collector.wait); the consumer is closed on return.
func consumeAll(t *testing.T, ctx context.Context, c *Conn, stream string, n int, opts ...ConsumerOption) []Message {
	t.Helper()
	var col collector
	cons, err := c.NewConsumer(ctx, stream, col.add, append([]ConsumerOption{First}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	return col.wait(t, n)
}

// holdBatches keeps every message in the producer's batch (a huge batch, a long delay), so no
// confirm comes and the window fills: sends then wait for room.
func holdBatches(window int) []ProducerOption {
	return []ProducerOption{MaxInFlight(window), BatchSize(10000), BatchDelay(20 * time.Second)}
}

// A send blocked on a full window returns ctx.Err() when its context is cancelled or its
// deadline passes, and sends nothing; FailWhenFull and SendTimeout keep their meaning.
func TestSendContext(t *testing.T) {
	c := connect(t)
	stream := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)
	const window = 5
	p, err := c.NewProducer(ctx, stream, holdBatches(window)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < window; i++ {
		if err := p.Send(ctx, body(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- p.Send(cctx, body(window)) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("send on a full window returned %v before the cancel", err)
	default:
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled send: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the cancelled send took %v", d)
	}
	dctx, dcancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer dcancel()
	err = p.SendBatch(dctx, [][]byte{body(6), body(7)})
	var be *BatchError
	if !errors.As(err, &be) || be.Accepted != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendBatch past its deadline: %v", err)
	}
	if _, err := p.SendMessage(dctx, &Message{Body: body(8), ApplicationProperties: map[string]any{"k": 1}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendMessage past its deadline: %v", err)
	}
	if st, err := p.Stats(); err != nil || st.Published != window {
		t.Fatalf("published %+v (%v), want %d: the cancelled sends sent nothing", st, err, window)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	full, err := c.NewProducer(ctx, stream, append(holdBatches(1), FailWhenFull())...)
	if err != nil {
		t.Fatal(err)
	}
	_ = full.Send(ctx, body(0))
	if err := full.Send(ctx, body(1)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("FailWhenFull: %v", err)
	}
	timed, err := c.NewProducer(ctx, stream, append(holdBatches(1), SendTimeout(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	_ = timed.Send(ctx, body(0))
	if err := timed.Send(ctx, body(1)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("SendTimeout: %v", err)
	}
	_ = full.Close(ctx)
	_ = timed.Close(ctx)
}

// The same for a super producer: a send blocked on its partition's full window.
func TestSuperSendContext(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 60*time.Second)
	super, _ := newSuperStream(t, c, 2)
	sp, err := c.NewSuperProducer(ctx, super, holdBatches(2)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := sp.Send(ctx, "k", body(i)); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := sp.Send(cctx, "k", body(2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("super send on a full window: %v", err)
	}
	err = sp.SendMessages(cctx, []string{"k"}, []*Message{{Body: body(3), Header: &Header{Durable: true}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("super SendMessages on a full window: %v", err)
	}
	if st, err := sp.Stats(); err != nil || st.Published != 2 {
		t.Fatalf("published %+v (%v), want 2", st, err)
	}
	_ = sp.Close(ctx)
}

// everySection is a message with every section and every application property type, at
// their extremes.
func everySection(i int) *Message {
	uuid := UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, byte(i)}
	return &Message{
		Body:   []byte(fmt.Sprintf("body-%d", i)),
		Header: &Header{Durable: true, Priority: 7, TTL: 60000, FirstAcquirer: true, DeliveryCount: 3},
		Properties: &Properties{
			MessageID: uint64(math.MaxUint64), UserID: []byte("guest"), To: "to-" + fmt.Sprint(i),
			Subject: "subject", ReplyTo: "reply", CorrelationID: uuid, ContentType: "application/json",
			ContentEncoding: "identity", AbsoluteExpiryTime: time.UnixMilli(4102444800000),
			CreationTime: time.UnixMilli(-1000), GroupID: "group", GroupSequence: math.MaxUint32,
			ReplyToGroupID: "rgroup",
		},
		ApplicationProperties: map[string]any{
			"null": nil, "bool": true, "ubyte": uint8(255), "ushort": uint16(65535),
			"uint": uint32(math.MaxUint32), "ulong": uint64(math.MaxUint64), "byte": int8(-128),
			"short": int16(-32768), "int": int32(math.MinInt32), "long": int64(math.MinInt64),
			"float": float32(1.5), "double": math.Inf(-1), "nan": math.NaN(),
			"timestamp": time.UnixMilli(-86400000), "uuid": uuid, "string": "5", "number": int64(5),
			"empty": "", "symbol": Symbol("sym"), "binary": []byte{0, 1, 2, 255},
			"emptybin": []byte{}, "char": Char('é'), "clé ü": "non-ASCII key",
			"dec32": Decimal32{1, 2, 3, 4},
		},
		MessageAnnotations:  map[string]any{"x-opt-key": Symbol("k"), "x-opt-n": int32(-7)},
		DeliveryAnnotations: map[string]any{"x-da": "delivery"},
		Footer:              map[string]any{"x-checksum": []byte{9, 9}},
	}
}

// checkSections compares what was read with what was written, value by value and type by type.
func checkSections(t *testing.T, got Message, want *Message) {
	t.Helper()
	if string(got.Body) != string(want.Body) {
		t.Errorf("offset %d: body %q, want %q", got.Offset, got.Body, want.Body)
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Errorf("header %+v, want %+v", got.Header, want.Header)
	}
	gp, wp := *got.Properties, *want.Properties
	if !gp.AbsoluteExpiryTime.Equal(wp.AbsoluteExpiryTime) || !gp.CreationTime.Equal(wp.CreationTime) {
		t.Errorf("times %v %v, want %v %v", gp.AbsoluteExpiryTime, gp.CreationTime, wp.AbsoluteExpiryTime, wp.CreationTime)
	}
	gp.AbsoluteExpiryTime, gp.CreationTime, wp.AbsoluteExpiryTime, wp.CreationTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(gp, wp) {
		t.Errorf("properties %+v, want %+v", gp, wp)
	}
	if len(got.ApplicationProperties) != len(want.ApplicationProperties) {
		t.Errorf("%d application properties, want %d", len(got.ApplicationProperties), len(want.ApplicationProperties))
	}
	for k, w := range want.ApplicationProperties {
		g, ok := got.ApplicationProperties[k]
		switch w := w.(type) {
		case time.Time:
			if gt, isT := g.(time.Time); !isT || !gt.Equal(w) {
				t.Errorf("application property %q: %T %v, want %v", k, g, g, w)
			}
		case float64:
			if gf, isF := g.(float64); !isF || (math.IsNaN(w) != math.IsNaN(gf)) || (!math.IsNaN(w) && gf != w) {
				t.Errorf("application property %q: %T %v, want float64 %v", k, g, g, w)
			}
		default:
			if !ok || !reflect.DeepEqual(g, w) {
				t.Errorf("application property %q: %T %#v, want %T %#v", k, g, g, w, w)
			}
		}
	}
	for name, pair := range map[string][2]map[string]any{
		"message annotations":  {got.MessageAnnotations, want.MessageAnnotations},
		"delivery annotations": {got.DeliveryAnnotations, want.DeliveryAnnotations},
		"footer":               {got.Footer, want.Footer},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s %#v, want %#v", name, pair[0], pair[1])
		}
	}
}

// Messages with every section, published one by one, as a batch, with several data sections
// and with an amqp-value body, read back typed: each value equals what was written, with its
// type (an int 5 and a string "5" stay apart). The builder path also carries the filter value
// and an explicit publishing id.
func TestMessageEverySection(t *testing.T) {
	c := connect(t)
	stream := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)
	p, err := c.NewProducer(ctx, stream, ProducerName(uniqueName(t, "msg")))
	if err != nil {
		t.Fatal(err)
	}
	want := []*Message{everySection(0)}
	want[0].FilterValue, want[0].PublishingID, want[0].UsePublishingID = "red", 1000, true
	if id, err := p.SendMessage(ctx, want[0]); err != nil || id != 1000 {
		t.Fatalf("SendMessage: id %d, %v", id, err)
	}
	batch := []*Message{everySection(1), everySection(2), everySection(3)}
	if err := p.SendMessages(ctx, batch); err != nil {
		t.Fatal(err)
	}
	want = append(want, batch...)
	if id, ok := p.LastPublishingID(); !ok || id != 1003 {
		t.Fatalf("LastPublishingID %d %v, want 1003", id, ok)
	}
	multi := &Message{Data: [][]byte{[]byte("one"), {}, []byte("three")}}
	value := &Message{BodyValue: "an amqp-value string", ApplicationProperties: map[string]any{"n": 5}}
	intValue := &Message{BodyValue: int64(-42)}
	for _, m := range []*Message{multi, value, intValue} {
		if _, err := p.SendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.SendMessage(ctx, &Message{Body: body(0), ApplicationProperties: map[string]any{"bad": []any{1}}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a list application property: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	got := consumeAll(t, ctx, c, stream, 7)
	for i, w := range want {
		if got[i].Offset != uint64(i) {
			t.Errorf("message %d at offset %d", i, got[i].Offset)
		}
		checkSections(t, got[i], w)
	}
	if m := got[4]; !reflect.DeepEqual(m.Data, multi.Data) || m.Header != nil || m.Properties != nil {
		t.Errorf("data sections %q (header %v, properties %v), want %q", m.Data, m.Header, m.Properties, multi.Data)
	}
	if m := got[5]; m.BodyValue != value.BodyValue || string(m.Body) != value.BodyValue ||
		!reflect.DeepEqual(m.ApplicationProperties, map[string]any{"n": int64(5)}) {
		t.Errorf("amqp-value message: value %#v body %q properties %#v", m.BodyValue, m.Body, m.ApplicationProperties)
	}
	if m := got[6]; m.BodyValue != int64(-42) {
		t.Errorf("amqp-value long: %#v", m.BodyValue)
	}

	// The filter value set through the builder: a Filter consumer gets that message.
	filtered := make(chan Message, 10)
	fc, err := c.NewConsumer(ctx, stream, func(m Message) { filtered <- m }, First, Filter("red"),
		PostFilter(func(m Message) bool { return m.Properties != nil && m.Properties.To == "to-0" }))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close(ctx)
	select {
	case m := <-filtered:
		checkSections(t, m, want[0])
	case <-time.After(20 * time.Second):
		t.Fatal("the filter consumer got nothing")
	}
}

// One Template with every section sent with 200 bodies by 4 goroutines at once (SendBody):
// each message read back has its own body and exactly the template's other sections, the
// template's own body is never sent, every confirm carries the template's tag, and a closed
// template is refused.
func TestSendBodyTemplate(t *testing.T) {
	const senders, each = 4, 50
	c := connect(t)
	stream := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)
	var cmu sync.Mutex
	tags := map[uint64]int{}
	p, err := c.NewProducer(ctx, stream, OnConfirm(func(cs []Confirm) {
		cmu.Lock()
		defer cmu.Unlock()
		for _, cf := range cs {
			if cf.Err != nil {
				t.Errorf("confirm %d: %v", cf.PublishingID, cf.Err)
			}
			tags[cf.Tag]++
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := everySection(0)
	want.Body, want.Tag = []byte("the template's own body"), 42
	tmpl, err := NewTemplate(want)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := p.SendBody(ctx, tmpl, body(g*each+i)); err != nil {
					t.Errorf("SendBody: %v", err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cmu.Lock()
	if len(tags) != 1 || tags[42] != senders*each {
		t.Errorf("confirm tags %v, want %d of tag 42", tags, senders*each)
	}
	cmu.Unlock()
	tmpl.Close()
	tmpl.Close()
	if _, err := p.SendBody(ctx, tmpl, body(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendBody with a closed template: %v", err)
	}
	if _, err := NewTemplate(&Message{Body: body(0), Raw: true}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NewTemplate of a Raw message: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for _, m := range consumeAll(t, ctx, c, stream, senders*each) {
		seen[string(m.Body)] = true
		w := *want
		w.Body = m.Body
		checkSections(t, m, &w)
	}
	for i := 0; i < senders*each; i++ {
		if !seen[string(body(i))] {
			t.Errorf("body %q not read back", body(i))
		}
	}
}

// A super producer sends a message with every section (single and batch) to the partition of
// its key; a super consumer reads each section back.
func TestSuperMessageEverySection(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 60*time.Second)
	super, parts := newSuperStream(t, c, 3)
	sp, err := c.NewSuperProducer(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Message{}
	for i := 0; i < 3; i++ {
		m := everySection(i)
		key := fmt.Sprintf("key-%d", i)
		part, _, err := sp.SendMessage(ctx, key, m)
		wantPart, _ := PartitionIndex([]byte(key), len(parts))
		if err != nil || part != wantPart {
			t.Fatalf("SendMessage: partition %d (want %d), %v", part, wantPart, err)
		}
		want[string(m.Body)] = m
	}
	keys := []string{"key-3", "key-4", "key-5"}
	batch := []*Message{everySection(3), everySection(4), everySection(5)}
	if err := sp.SendMessages(ctx, keys, batch); err != nil {
		t.Fatal(err)
	}
	for _, m := range batch {
		want[string(m.Body)] = m
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var col collector
	sc, err := c.NewSuperConsumer(ctx, super, col.add, First)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	got := col.wait(t, 6)
	for _, m := range got {
		w := want[string(m.Body)]
		if w == nil {
			t.Fatalf("unexpected body %q", m.Body)
		}
		delete(want, string(m.Body))
		checkSections(t, m, w)
		key := "key-" + strings.TrimPrefix(string(m.Body), "body-")
		if wp, _ := PartitionIndex([]byte(key), len(parts)); m.Partition != wp || m.Stream != parts[wp] {
			t.Errorf("%q read from partition %d (%s), want %d", m.Body, m.Partition, m.Stream, wp)
		}
	}
}

// SuperProducer.SendBody: one Template with every section sent with 30 bodies, each to the
// partition of its key; each partition holds exactly the messages routed there, in order, each
// with its own body and the template's other sections; per-partition ids count up; a closed
// template, a NUL in the key and a closed super producer are refused.
func TestSuperSendBodyTemplate(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 60*time.Second)
	super, parts := newSuperStream(t, c, 3)
	sp, err := c.NewSuperProducer(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	want := everySection(0)
	want.Body = []byte("the template's own body")
	tmpl, err := NewTemplate(want)
	if err != nil {
		t.Fatal(err)
	}
	perPart := make([][]string, len(parts))
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("key-%d", i%7)
		wantPart, _ := PartitionIndex([]byte(key), len(parts))
		part, id, err := sp.SendBody(ctx, key, tmpl, body(i))
		if err != nil || part != wantPart || id != uint64(len(perPart[wantPart])) {
			t.Fatalf("SendBody %d: partition %d (want %d), id %d (want %d), %v", i, part, wantPart, id,
				len(perPart[wantPart]), err)
		}
		perPart[part] = append(perPart[part], string(body(i)))
	}
	if _, _, err := sp.SendBody(ctx, "a\x00b", tmpl, body(0)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SendBody with a NUL in the key: %v", err)
	}
	if err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := sp.Stats(); err != nil || st.Confirmed != 30 || st.Errored != 0 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	closed, err := NewTemplate(want)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, _, err := sp.SendBody(ctx, "key-0", closed, body(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("SendBody with a closed template: %v", err)
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sp.SendBody(ctx, "key-0", tmpl, body(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("SendBody on a closed super producer: %v", err)
	}
	tmpl.Close()

	for pi, part := range parts {
		if len(perPart[pi]) == 0 {
			t.Errorf("no message routed to %s", part)
		}
		k, err := c.NewConsumer(ctx, part, nil, First)
		if err != nil {
			t.Fatal(err)
		}
		for n, b := range perPart[pi] {
			m := <-k.Messages()
			if m.Offset != uint64(n) {
				t.Errorf("%s: offset %d, want %d", part, m.Offset, n)
			}
			w := *want
			w.Body = []byte(b)
			checkSections(t, m, &w)
		}
		select {
		case m := <-k.Messages():
			t.Errorf("extra message on %s: %q", part, m.Body)
		case <-time.After(100 * time.Millisecond):
		}
		_ = k.Close(ctx)
	}
}

// SharedChunkBodies: the bodies of one chunk are slices of one allocation, back to back, each
// with its own bytes and a capacity that stops at its end.
func TestSharedChunkBodies(t *testing.T) {
	c := connect(t)
	stream := newStream(t, c)
	ctx := testCtx(t, 60*time.Second)
	p, err := c.NewProducer(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	batch := make([][]byte, n)
	for i := range batch {
		batch[i] = body(i)
	}
	if err := p.SendBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, ctx, c, stream, n, SharedChunkBodies())
	shared := 0
	for i, m := range got {
		if string(m.Body) != string(body(i)) || cap(m.Body) != len(m.Body) {
			t.Fatalf("message %d: body %q cap %d", i, m.Body, cap(m.Body))
		}
		if i > 0 && got[i-1].ChunkID == m.ChunkID {
			prev := got[i-1].Body
			if unsafe.Pointer(&m.Body[0]) != unsafe.Add(unsafe.Pointer(&prev[0]), len(prev)) {
				t.Fatalf("message %d is not right after message %d in its chunk's allocation", i, i-1)
			}
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no two messages shared a chunk")
	}
}

// WithLogger: the library's records reach the function on a goroutine, with their levels
// and targets, up to the level asked for.
func TestLogger(t *testing.T) {
	var mu sync.Mutex
	var recs []LogRecord
	ctx := testCtx(t, 30*time.Second)
	c, err := Connect(ctx, testURI(), WithLogger(LogDebug, func(r LogRecord) {
		mu.Lock()
		recs = append(recs, r)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	stream := newStream(t, c)
	p, err := c.NewProducer(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Close(ctx)
	eventually(t, 10*time.Second, "the connection's records", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if r.Target == "connection" && strings.HasPrefix(r.Message, "connected to ") && r.Level == LogInfo {
				return true
			}
		}
		return false
	})
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range recs {
		if r.Level < LogError || r.Level > LogDebug || r.Target == "" || r.Message == "" {
			t.Fatalf("record %+v", r)
		}
	}
}

// One cut of every connection under a super producer and a super consumer: each partition's
// producer and consumer reports exactly one Recovering (with its cause) then one Recovered,
// the objects themselves nothing until Close, then exactly one final Closed each.
func TestSuperStateEventsOnConnectionCut(t *testing.T) {
	admin := connect(t)
	super, parts := newSuperStream(t, admin, 2)
	proxy := startProxy(t, brokerHostPort())
	ctx := testCtx(t, 90*time.Second)
	c, err := Connect(ctx, proxy.uri(), WithLoadBalancer(), WithSetting("recovery_initial_delay_ms", "100"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var pstates, cstates stateLog
	var cmu sync.Mutex
	consumed := 0
	sc, err := c.NewSuperConsumer(ctx, super, func(Message) { cmu.Lock(); consumed++; cmu.Unlock() },
		First, OnConsumerState(cstates.add))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := c.NewSuperProducer(ctx, super, ProducerName(uniqueName(t, "ssp")), OnProducerState(pstates.add))
	if err != nil {
		t.Fatal(err)
	}
	// keys reaching both partitions
	var keys []string
	seen := map[int]bool{}
	for i := 0; len(seen) < len(parts); i++ {
		k := fmt.Sprint("k", i)
		pi, _ := PartitionIndex([]byte(k), len(parts))
		if !seen[pi] {
			seen[pi] = true
			keys = append(keys, k)
		}
	}
	const n = 400
	for i := 0; i < n; i++ {
		if err := sp.Send(ctx, keys[i%len(keys)], body(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i == n/2 {
			if err := sp.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "half consumed", func() bool { cmu.Lock(); defer cmu.Unlock(); return consumed > n/2 })
			if proxy.reset() < 1 {
				t.Fatal("the proxy had no connection to cut")
			}
		}
	}
	if err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "every message consumed", func() bool { cmu.Lock(); defer cmu.Unlock(); return consumed >= n })
	recovered := func(l *stateLog) bool {
		k := 0
		for _, s := range l.get() {
			if s.State == StateRecovered {
				k++
			}
		}
		return k >= len(parts)
	}
	eventually(t, 30*time.Second, "every partition recovered", func() bool { return recovered(&pstates) && recovered(&cstates) })
	time.Sleep(300 * time.Millisecond)
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cmu.Lock()
	if consumed != n {
		t.Errorf("consumed %d, want %d (exactly once)", consumed, n)
	}
	cmu.Unlock()
	for name, l := range map[string]*stateLog{"super producer": &pstates, "super consumer": &cstates} {
		per := map[int][]State{}
		for _, s := range l.get() {
			per[s.Partition] = append(per[s.Partition], s.State)
			if s.State == StateRecovering && s.Err == nil {
				t.Errorf("%s partition %d: Recovering without a cause", name, s.Partition)
			}
		}
		for i := range parts {
			if fmt.Sprint(per[i]) != fmt.Sprint([]State{StateRecovering, StateRecovered}) {
				t.Errorf("%s partition %d states %v, want [recovering recovered]", name, i, per[i])
			}
		}
		if fmt.Sprint(per[-1]) != fmt.Sprint([]State{StateClosed}) {
			t.Errorf("%s own states %v, want [closed]", name, per[-1])
		}
		if len(per) != len(parts)+1 {
			t.Errorf("%s states %v", name, per)
		}
	}
}

// A producer or consumer asked for with a context that has ended already returns ctx.Err()
// and leaves nothing behind: what the library created meanwhile is closed, and the
// connection forgets it.
func TestEndedContextLeavesNothing(t *testing.T) {
	c := connect(t)
	stream := newStream(t, c)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.NewProducer(ended, stream); !errors.Is(err, context.Canceled) {
		t.Fatalf("NewProducer: %v", err)
	}
	if _, err := c.NewConsumer(ended, stream, func(Message) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("NewConsumer: %v", err)
	}
	eventually(t, 20*time.Second, "no producer or consumer left", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.children) == 0
	})
}
