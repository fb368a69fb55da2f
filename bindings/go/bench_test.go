package rmqstream

import (
	"context"
	"testing"
	"time"
)

// The publish paths' cost per message, Go side included (allocs/op is Go's): a plain body,
// and a Message of 100 B with 3 properties and 3 application properties through the
// producer's reused builder. Run: go test -run XXX -bench Send -benchmem
func BenchmarkSend(b *testing.B) {
	c, err := Connect(context.Background(), testURI())
	if err != nil {
		b.Skip("no broker:", err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stream := uniqueName(nil, "bench")
	if err := c.CreateStream(ctx, stream); err != nil {
		b.Fatal(err)
	}
	defer c.DeleteStream(context.Background(), stream)
	body := make([]byte, 100)
	msg := &Message{Body: body,
		Properties:            &Properties{MessageID: "id-1", ContentType: "application/octet-stream", Subject: "s"},
		ApplicationProperties: map[string]any{"a": int64(1), "b": "two", "c": true}}
	for _, bc := range []struct {
		name string
		ctx  context.Context
		send func(ctx context.Context, p *Producer) error
	}{
		{"body", context.Background(), func(ctx context.Context, p *Producer) error { return p.Send(ctx, body) }},
		{"body-ctx", ctx, func(ctx context.Context, p *Producer) error { return p.Send(ctx, body) }},
		{"message", context.Background(), func(ctx context.Context, p *Producer) error { _, err := p.SendMessage(ctx, msg); return err }},
		{"message-ctx", ctx, func(ctx context.Context, p *Producer) error { _, err := p.SendMessage(ctx, msg); return err }},
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
	c, err := Connect(context.Background(), testURI())
	if err != nil {
		b.Skip("no broker:", err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	body := make([]byte, 100)
	msg := &Message{Body: body,
		Properties:            &Properties{MessageID: "id-1", ContentType: "application/octet-stream", Subject: "s"},
		ApplicationProperties: map[string]any{"a": int64(1), "b": "two", "c": true}}
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
