package rmqstream

import (
	"context"
	"testing"
	"time"
)

// benchConn connects for a benchmark (skipped without a broker); both end with it.
func benchConn(b *testing.B) (*Conn, context.Context) {
	c, err := Connect(context.Background(), testURI())
	if err != nil {
		b.Skip("no broker:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(func() { _ = c.Close(context.Background()); cancel() })
	return c, ctx
}

// benchMessages are a 100 B body and a Message of that body with 3 properties and 3
// application properties.
func benchMessages() ([]byte, *Message) {
	body := make([]byte, 100)
	return body, &Message{Body: body,
		Properties:            &Properties{MessageID: "id-1", ContentType: "application/octet-stream", Subject: "s"},
		ApplicationProperties: map[string]any{"a": int64(1), "b": "two", "c": true}}
}

// The publish paths' cost per message, Go side included (allocs/op is Go's): a plain body,
// a Message of 100 B with 3 properties and 3 application properties through the producer's
// reused builder, and that Message's Template sent with the body (SendBody). Run: go test -run XXX -bench Send -benchmem
func BenchmarkSend(b *testing.B) {
	c, ctx := benchConn(b)
	stream := uniqueName(nil, "bench")
	if err := c.CreateStream(ctx, stream); err != nil {
		b.Fatal(err)
	}
	defer c.DeleteStream(context.Background(), stream)
	body, msg := benchMessages()
	tmpl, err := NewTemplate(msg)
	if err != nil {
		b.Fatal(err)
	}
	defer tmpl.Close()
	for _, bc := range []struct {
		name string
		ctx  context.Context
		send func(ctx context.Context, p *Producer) error
	}{
		{"body", context.Background(), func(ctx context.Context, p *Producer) error { return p.Send(ctx, body) }},
		{"body-ctx", ctx, func(ctx context.Context, p *Producer) error { return p.Send(ctx, body) }},
		{"message", context.Background(), func(ctx context.Context, p *Producer) error { _, err := p.SendMessage(ctx, msg); return err }},
		{"message-ctx", ctx, func(ctx context.Context, p *Producer) error { _, err := p.SendMessage(ctx, msg); return err }},
		{"template", context.Background(), func(ctx context.Context, p *Producer) error { _, err := p.SendBody(ctx, tmpl, body); return err }},
		{"template-ctx", ctx, func(ctx context.Context, p *Producer) error { _, err := p.SendBody(ctx, tmpl, body); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := c.NewProducer(ctx, stream)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := bc.send(bc.ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = p.Close(ctx)
		})
	}
}

// The consuming side's cost per message (Go allocations included): plain 100 B bodies, one
// allocation per body or one per chunk (SharedChunkBodies), and Messages with 3 properties
// and 3 application properties. Run: go test -run XXX -bench Consume -benchmem
func BenchmarkConsume(b *testing.B) {
	c, ctx := benchConn(b)
	body, msg := benchMessages()
	for _, bc := range []struct {
		name string
		msg  *Message
		opts []ConsumerOption
	}{
		{"body", &Message{Body: body}, nil},
		{"body-shared", &Message{Body: body}, []ConsumerOption{SharedChunkBodies()}},
		{"message", msg, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			stream := uniqueName(nil, "bench")
			if err := c.CreateStream(ctx, stream); err != nil {
				b.Fatal(err)
			}
			defer c.DeleteStream(context.Background(), stream)
			p, err := c.NewProducer(ctx, stream)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				if _, err := p.SendMessage(ctx, bc.msg); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			n := 0
			b.ReportAllocs()
			b.ResetTimer()
			cons, err := c.NewConsumer(ctx, stream, func(Message) {
				if n++; n == b.N {
					close(done)
				}
			}, append(bc.opts, First)...)
			if err != nil {
				b.Fatal(err)
			}
			<-done
			b.StopTimer()
			_ = cons.Close(ctx)
		})
	}
}
