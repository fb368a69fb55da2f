// Package rmqstream is the Go binding of librmqstream, a RabbitMQ Streams client with a C
// ABI (include/rmqstream.h).
//
// A Conn is a connection to a node or cluster. Producers publish to a stream with confirms
// (delivered on a channel or to a function); consumers read from an offset spec (First, Last,
// Next, Offset(n), Timestamp(t)) through a handler function or a channel. Errors are *Error
// values carrying the library's Status; compare them with errors.Is against the sentinels
// (ErrStreamDoesNotExist, ErrTimeout, ...).
//
// # Threads, goroutines and cgo
//
// The library runs its own threads; the binding never lets it call into Go (its log callback,
// see WithLogger, is a C function filling a ring that a goroutine drains). Every producer
// and consumer of a Conn delivers its events (confirms, chunks, state changes) to one library
// event queue, which one goroutine per Conn drains in batches (one cgo call per batch) and
// routes by an integer source tag to the producer's or consumer's own goroutine. Handlers and
// OnConfirm functions run on those goroutines: one per producer or consumer, in order, never
// concurrently. A slow handler slows its own consumer only.
//
// # Memory
//
// Message bodies are copied once from the library's chunk into Go memory (one allocation per
// message, or per chunk with SharedChunkBodies): a handler may keep Message.Body, and every
// other section of a Message is Go memory too. A chunk is released, and its credit returned to the broker, after the handler
// has returned for its last message (channel mode: once its last message was received), so
// InitialCredit bounds how many chunks wait in memory. Bodies sent are copied by the library
// during the call; the binding never passes Go pointers that C keeps.
//
// # Blocking and contexts
//
// Calls that wait for the broker take a context. Sends with a context that can end wait for
// room in Go (the library is asked not to wait), so the context's end stops them and nothing is
// sent. The library's other blocking calls cannot be
// interrupted, so they run on a goroutine of their own: when the context ends first, the
// method returns ctx.Err() and the call finishes in the background (objects it creates are
// closed). Close methods pass the context's deadline to the library as their timeout.
//
// # Building
//
// By default the package links the in-tree build: run `cargo build --release` at the
// repository root first (target/release/librmqstream.so, found at run time through an rpath).
// With -tags pkgconfig it uses an installed library found by pkg-config (rmqstream.pc).
package rmqstream
