package rmqstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The generated constants agree with the loaded library: every status of its table has a
// constant and a sentinel with the same macro name, and no constant is unknown to it.
func TestStatusMirror(t *testing.T) {
	bySt := map[Status]*Error{}
	for _, e := range sentinels {
		if _, dup := bySt[e.Status]; dup {
			t.Errorf("two sentinels for %d", e.Status)
		}
		bySt[e.Status] = e
	}
	if len(statusTable) == 0 {
		t.Fatal("rmqs_status_descs: empty table")
	}
	for st, d := range statusTable {
		if libraryStatusName(st) != d.name {
			t.Errorf("status %d: rmqs_status_name %q, table %q", st, libraryStatusName(st), d.name)
		}
		if headerStatusNames[st] != d.name {
			t.Errorf("status %d: generated name %q, library %q (run go generate)", st, headerStatusNames[st], d.name)
		}
		if st != StatusOK && bySt[st] == nil {
			t.Errorf("status %d (%s) has no sentinel", st, d.name)
		}
	}
	for st, name := range headerStatusNames {
		if got := libraryStatusName(st); got != name {
			t.Errorf("Go constant %d is %s in the library, want %s", int32(st), got, name)
		}
	}
	if len(headerStatusNames) != len(statusTable) || len(sentinels) != len(statusTable)-1 {
		t.Errorf("%d constants, %d sentinels, %d statuses in the library",
			len(headerStatusNames), len(sentinels), len(statusTable))
	}
}

func TestErrorIs(t *testing.T) {
	var err error = &Error{Status: StatusTimeout, Message: "flush timed out"}
	wrapped := fmt.Errorf("context: %w", err)
	if !errors.Is(err, ErrTimeout) || !errors.Is(wrapped, ErrTimeout) {
		t.Error("errors.Is(ErrTimeout) false")
	}
	if errors.Is(err, ErrClosed) {
		t.Error("errors.Is(ErrClosed) true")
	}
	if s, ok := StatusOf(wrapped); !ok || s != StatusTimeout {
		t.Errorf("StatusOf: %v %v", s, ok)
	}
	if _, ok := StatusOf(context.Canceled); ok {
		t.Error("StatusOf(context.Canceled) ok")
	}
	if got := err.Error(); got != "rmqstream: flush timed out (RMQS_ERR_TIMEOUT)" {
		t.Errorf("Error(): %q", got)
	}
	if Status(-999).Name() != "RMQS_UNKNOWN" || Status(0).Err() != nil {
		t.Error("unknown status / OK")
	}
}

func TestVersion(t *testing.T) {
	if err := checkLibraryVersion(); err != nil {
		t.Fatal(err)
	}
	if LibraryVersion() == "" {
		t.Fatal("empty library version")
	}
}

// Same vectors as tests/ffi_basics.rs (the other clients' routing).
func TestPartitionIndex(t *testing.T) {
	for _, c := range []struct {
		key  string
		n    int
		want int
	}{{"hello", 1000, 225}, {"world", 1000, 188}, {"", 7, 3}, {"anything", 1, 0}} {
		got, err := PartitionIndex([]byte(c.key), c.n)
		if err != nil || got != c.want {
			t.Errorf("PartitionIndex(%q, %d) = %d, %v; want %d", c.key, c.n, got, err, c.want)
		}
	}
	if _, err := PartitionIndex([]byte("k"), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("0 partitions: %v", err)
	}
}

func TestOffsetSpecs(t *testing.T) {
	for _, c := range []struct {
		s    OffsetSpec
		want string
	}{{First, "first"}, {Last, "last"}, {Next, "next"}, {Offset(42), "offset:42"}} {
		if c.s.String() != c.want {
			t.Errorf("%v != %s", c.s, c.want)
		}
	}
}

// gormqs.h declares each of its helpers once, outside the version checks' #error branches
// (a stray copy there once sat between #if and #endif, twice).
func TestHelperHeaderDeclaresEachHelperOnce(t *testing.T) {
	src, err := os.ReadFile("gormqs.h")
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^[a-z_][a-z_ *]*\b(gormqs_[a-z_]+)\(`)
	seen := map[string]int{}
	for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
		seen[m[1]]++
	}
	if len(seen) == 0 {
		t.Fatal("no gormqs_ declaration found")
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s is declared %d times", name, n)
		}
	}
	// Between a version check's #if and its #endif there is only the #error.
	block := regexp.MustCompile(`(?s)#if RMQS_VERSION_[A-Z]+ [^\n]*\n(.*?)#endif`)
	for _, m := range block.FindAllStringSubmatch(string(src), -1) {
		if body := strings.TrimSpace(m[1]); !strings.HasPrefix(body, "#error") || strings.Count(body, "\n") != 0 {
			t.Errorf("version check holds more than its #error:\n%s", body)
		}
	}
}

// Every Go type a Message value may have survives the binding's encoding both ways, and the
// compound values only the library writes (lists, maps, described) decode to []any,
// map[any]any and Described.
func TestValueEncoding(t *testing.T) {
	for _, v := range []any{nil, true, false, uint8(255), uint16(65535), uint32(1 << 31), uint64(1<<64 - 1),
		int8(-128), int16(-32768), int32(-1 << 31), int64(-1 << 63), float32(-0.5), 1e300,
		time.UnixMilli(-1), UUID{1, 2, 3}, "", "é", Symbol("s"), []byte{}, []byte{0, 255}, Char('€'),
		Decimal32{1, 2, 3, 4}, Decimal64{8}, Decimal128{16}} {
		var e encoder
		if !e.value(v) {
			t.Fatalf("%T not encoded", v)
		}
		d := decoder{b: e.b}
		got := d.value()
		if tm, ok := v.(time.Time); ok {
			if g, ok := got.(time.Time); !ok || !g.Equal(tm) {
				t.Errorf("%v read back as %#v", v, got)
			}
		} else if !reflect.DeepEqual(got, v) || d.bad || len(d.b) != 0 {
			t.Errorf("%T %#v read back as %T %#v", v, v, got, got)
		}
	}
	var e encoder
	e.value(int(7)) // int is sent as a long
	if d := (decoder{b: e.b}); d.value() != int64(7) {
		t.Error("int is not a long")
	}
	// a list ["a", map{"k": true}] and a described value (kind codes of rmqs_value_type_code)
	const list, mapKind, described = 21, 22, 24
	e = encoder{}
	e.i32(list)
	e.u64(0)
	e.u32(2)
	e.value("a")
	e.i32(mapKind)
	e.u64(0)
	e.u32(1)
	e.value(Symbol("k"))
	e.value(true)
	e.i32(described)
	e.u64(0)
	e.u32(2)
	e.value(uint64(0x70))
	e.value("v")
	d := decoder{b: e.b}
	if got := d.value(); !reflect.DeepEqual(got, []any{"a", map[any]any{Symbol("k"): true}}) {
		t.Errorf("list read back as %#v", got)
	}
	if got := d.value(); !reflect.DeepEqual(got, Described{Descriptor: uint64(0x70), Value: "v"}) {
		t.Errorf("described read back as %#v", got)
	}
	// a truncated input stops the decoder without a panic or a large allocation
	d = decoder{b: e.b[:10]}
	d.value()
	if !d.bad {
		t.Error("truncated input not noticed")
	}
	var bad encoder
	bad.i32(list)
	bad.u64(0)
	bad.u32(1 << 30)
	d = decoder{b: bad.b}
	if l, ok := d.value().([]any); !ok || len(l) != 0 || cap(l) != 0 || !d.bad {
		t.Errorf("a huge count: %v", l)
	}
}
