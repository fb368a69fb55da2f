package rmqstream

import (
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
