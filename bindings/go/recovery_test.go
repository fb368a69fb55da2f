package rmqstream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// resetProxy forwards TCP connections to the broker and cuts them all on reset: a real
// network fault for the recovery tests.
type resetProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *resetProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &resetProxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.reset() })
	return p
}

func (p *resetProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
	}
}

// reset closes every connection open now (with RST) and returns how many pairs there were.
func (p *resetProxy) reset() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	n := len(p.conns) / 2
	p.conns = nil
	return n
}

func (p *resetProxy) uri() string {
	return fmt.Sprintf("rabbitmq-stream://guest:guest@%s/%%2f", p.ln.Addr())
}

func brokerHostPort() string {
	u := testURI()
	rest := u[strings.Index(u, "://")+3:]
	rest = rest[strings.LastIndex(rest, "@")+1:]
	return strings.SplitN(strings.SplitN(rest, "/", 2)[0], ",", 2)[0]
}

type stateLog struct {
	mu     sync.Mutex
	states []StateChange
}

func (l *stateLog) add(s StateChange) {
	l.mu.Lock()
	l.states = append(l.states, s)
	l.mu.Unlock()
}

func (l *stateLog) get() []StateChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]StateChange(nil), l.states...)
}

func (l *stateLog) has(s State) bool {
	for _, c := range l.get() {
		if c.State == s {
			return true
		}
	}
	return false
}

// A named producer and a consumer through a proxy that cuts their connections: both report
// Recovering then Recovered; every message is confirmed once and consumed once, in order.
func TestRecoveryAfterConnectionReset(t *testing.T) {
	admin := connect(t)
	stream := newStream(t, admin)
	proxy := startProxy(t, brokerHostPort())
	ctx := testCtx(t, 90*time.Second)
	c, err := Connect(ctx, proxy.uri(), WithLoadBalancer(),
		WithSetting("recovery_initial_delay_ms", "100"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	var pstates, cstates stateLog
	var mu sync.Mutex
	var offsets []uint64
	var bodies []string
	cons, err := c.NewConsumer(ctx, stream, func(m Message) {
		mu.Lock()
		offsets = append(offsets, m.Offset)
		bodies = append(bodies, string(m.Body))
		mu.Unlock()
	}, First, OnConsumerState(cstates.add))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	var cmu sync.Mutex
	outcomes := map[uint64]int{}
	var bad error
	p, err := c.NewProducer(ctx, stream, ProducerName(uniqueName(t, "p")),
		OnProducerState(pstates.add), OnConfirm(func(cs []Confirm) {
			cmu.Lock()
			for _, x := range cs {
				outcomes[x.PublishingID]++
				if x.Err != nil && bad == nil {
					bad = x.Err
				}
			}
			cmu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := p.Send(ctx, []byte(fmt.Sprintf("m%06d", i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i == n/2 {
			if cut := proxy.reset(); cut < 1 {
				t.Fatalf("the proxy had no connection to cut")
			}
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	cmu.Lock()
	if bad != nil || len(outcomes) != n {
		t.Fatalf("confirms: %d ids, first error %v", len(outcomes), bad)
	}
	for id, k := range outcomes {
		if k != 1 {
			t.Fatalf("id %d confirmed %d times", id, k)
		}
	}
	cmu.Unlock()
	eventually(t, 60*time.Second, "every message consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(offsets) >= n
	})
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	if len(offsets) != n {
		t.Fatalf("consumed %d, want %d", len(offsets), n)
	}
	for i := range offsets {
		if offsets[i] != uint64(i) || bodies[i] != fmt.Sprintf("m%06d", i) {
			t.Fatalf("message %d: offset %d body %q", i, offsets[i], bodies[i])
		}
	}
	mu.Unlock()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// One cut: exactly one Recovering (with its cause) and one Recovered, then the Closed of
	// the application's Close (no cause).
	for name, l := range map[string]*stateLog{"producer": &pstates, "consumer": &cstates} {
		s := l.get()
		if len(s) != 3 || s[0].State != StateRecovering || s[1].State != StateRecovered ||
			s[2].State != StateClosed || s[0].Err == nil || s[1].Err != nil || s[2].Err != nil {
			t.Fatalf("%s states: %v", name, s)
		}
	}
}

// A stream deleted under a producer and a consumer closes both for good: one StateClosed
// with ErrStreamDoesNotExist each, no recovery.
func TestDeletedStreamClosesForGood(t *testing.T) {
	c := connect(t)
	ctx := testCtx(t, 60*time.Second)
	stream := uniqueName(t, "deleted")
	if err := c.CreateStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	var pstates, cstates stateLog
	p, err := c.NewProducer(ctx, stream, OnProducerState(pstates.add))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := c.NewConsumer(ctx, stream, func(Message) {}, First, OnConsumerState(cstates.add))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	eventually(t, 30*time.Second, "consumer closed", func() bool { return cstates.has(StateClosed) })
	for name, l := range map[string]*stateLog{"producer": &pstates, "consumer": &cstates} {
		s := l.get()
		if len(s) != 1 || s[0].State != StateClosed || !errors.Is(s[0].Err, ErrStreamDoesNotExist) {
			t.Fatalf("%s states: %v", name, s)
		}
	}
	if !errors.Is(p.Err(), ErrStreamDoesNotExist) {
		t.Fatalf("producer Err: %v", p.Err())
	}
	_ = p.Close(ctx)
	_ = cons.Close(ctx)
}
