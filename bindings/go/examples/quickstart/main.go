// quickstart: the Go binding in one program.
//
// Creates a stream, publishes N messages (default 100,000) with confirms on a channel,
// consumes them back from the first offset with a handler, checks every offset and body,
// prints the rates and deletes the stream. Exits 1 on any error or mismatch.
//
//	go run ./examples/quickstart [-n N] [URI]
//
// URI defaults to $RMQS_TEST_URI, then rabbitmq-stream://guest:guest@localhost:5552/%2f.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	rmqstream "github.com/rmqstream/rmqstream/bindings/go"
)

func body(i int) []byte { return []byte(fmt.Sprintf("quickstart message %d", i)) }

func main() {
	n := flag.Int("n", 100000, "messages to publish and consume")
	flag.Parse()
	uri := flag.Arg(0)
	if uri == "" {
		uri = os.Getenv("RMQS_TEST_URI")
	}
	log.SetFlags(0)
	log.SetPrefix("quickstart: ")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	conn, err := rmqstream.Connect(ctx, uri, rmqstream.WithConnectionName("go-quickstart"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(context.Background())
	fmt.Printf("connected to RabbitMQ %s with librmqstream %s\n", conn.ServerVersion(),
		rmqstream.LibraryVersion())

	stream := fmt.Sprintf("go-quickstart-%d", os.Getpid())
	if err := conn.CreateStream(ctx, stream, rmqstream.MaxLengthBytes(1<<30)); err != nil &&
		!errors.Is(err, rmqstream.ErrStreamAlreadyExists) {
		log.Fatal(err)
	}
	defer conn.DeleteStream(context.Background(), stream)

	// Publish, with every outcome on a channel.
	producer, err := conn.NewProducer(ctx, stream, rmqstream.WithConfirmChannel(1024))
	if err != nil {
		log.Fatal(err)
	}
	confirmed := make(chan int)
	go func() {
		ok := 0
		for c := range producer.Confirms() {
			if c.Err != nil {
				log.Printf("message %d: %v", c.PublishingID, c.Err)
				continue
			}
			ok++
		}
		confirmed <- ok
	}()
	start := time.Now()
	for i := 0; i < *n; i++ {
		if err := producer.Send(ctx, body(i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := producer.Close(ctx); err != nil { // flushes and waits for the confirms
		log.Fatal(err)
	}
	ok := <-confirmed
	elapsed := time.Since(start)
	fmt.Printf("published %d messages, %d confirmed, in %v (%.0f msg/s)\n", *n, ok,
		elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds())
	if ok != *n {
		os.Exit(1)
	}

	// Consume from the first offset; the handler runs on the consumer's goroutine.
	done := make(chan error, 1)
	next := 0
	start = time.Now()
	consumer, err := conn.NewConsumer(ctx, stream, func(m rmqstream.Message) {
		if next >= *n {
			return
		}
		if m.Offset != uint64(next) || !bytes.Equal(m.Body, body(next)) {
			done <- fmt.Errorf("offset %d: got %q, want offset %d %q", m.Offset, m.Body, next, body(next))
			next = *n
			return
		}
		next++
		if next == *n {
			done <- nil
		}
	}, rmqstream.First)
	if err != nil {
		log.Fatal(err)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := consumer.Close(context.Background()); err == nil {
		err = cerr
	}
	if err != nil {
		log.Fatal(err)
	}
	elapsed = time.Since(start)
	fmt.Printf("consumed %d messages, offsets and bodies checked, in %v (%.0f msg/s)\n", *n,
		elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds())
}
