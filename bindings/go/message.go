package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"time"
)

// Message is an AMQP 1.0 message: what a consumer receives and what SendMessage publishes.
//
// Values of ApplicationProperties, MessageAnnotations, DeliveryAnnotations and Footer (and
// Properties.MessageID, Properties.CorrelationID and BodyValue) are typed: Go types map to
// AMQP types as nil = null, bool = boolean, uint8/uint16/uint32/uint64 = ubyte/ushort/uint/
// ulong, int8/int16/int32/int64 = byte/short/int/long, float32 = float, float64 = double,
// time.Time = timestamp (ms), UUID = uuid, string = string, Symbol = symbol, []byte =
// binary, Char = char, Decimal32/64/128 = decimal32/64/128. A received value has the Go type
// of its AMQP type, so an int 5 (int64(5) for a long) and a string "5" stay apart. Publishing
// also takes int and uint (as long and ulong). Received lists and arrays are []any, maps
// map[any]any (binary keys as string), described values Described; they cannot be published
// (the library takes compound values only as their AMQP encoding).
type Message struct {
	// Set on received messages.
	Stream    string    // the stream (the partition, for a super consumer)
	Partition int       // for a SuperConsumer, the partition's index; -1 for a Consumer
	Offset    uint64    // the message's offset in the stream
	ChunkID   uint64    // offset of the first record of its chunk
	Timestamp time.Time // when the broker wrote its chunk (millisecond precision)

	// Body is the application payload: the message's single data section (or its amqp-value
	// when that is a binary or a string), else the whole record (a message sent with Raw).
	// Published as one data section unless Data or BodyValue is set.
	Body []byte
	// Data are the data sections of a body made of several (received: only then; published:
	// instead of Body when not nil).
	Data [][]byte
	// BodyValue is an amqp-value body (received: whatever it holds; published: instead of
	// Body when not nil).
	BodyValue any
	// Sequence are the amqp-sequence sections of a received body (not publishable).
	Sequence [][]any

	Header                *Header
	Properties            *Properties
	ApplicationProperties map[string]any
	MessageAnnotations    map[string]any // symbol keys
	DeliveryAnnotations   map[string]any // symbol keys
	Footer                map[string]any // symbol keys

	// Publishing options (not part of the AMQP message; not set on received messages).
	//
	// FilterValue, when not empty, is the message's value for broker-side filtering
	// (RabbitMQ 3.13+; see Filter).
	FilterValue string
	// PublishingID is used when UsePublishingID is set: it must be above every id the
	// producer (for a super producer: the partition) used before.
	PublishingID    uint64
	UsePublishingID bool
	// Tag comes back in the message's Confirm.
	Tag uint64
	// Raw stores Body as it is, not wrapped in an AMQP message (only Body, FilterValue and
	// the publishing id apply).
	Raw bool

	core *consumerCore
}

// Header is the AMQP header section. On publish, fields at their zero value are not sent.
type Header struct {
	Durable       bool
	Priority      uint8
	TTL           uint32 // ms
	FirstAcquirer bool
	DeliveryCount uint32
}

// Properties is the AMQP properties section. On publish, fields at their zero value are not
// sent. MessageID and CorrelationID are a string, a uint64, a UUID or a []byte.
type Properties struct {
	MessageID          any
	UserID             []byte
	To                 string
	Subject            string
	ReplyTo            string
	CorrelationID      any
	ContentType        string // a symbol
	ContentEncoding    string // a symbol
	AbsoluteExpiryTime time.Time
	CreationTime       time.Time
	GroupID            string
	GroupSequence      uint32
	ReplyToGroupID     string
}

// Symbol is an AMQP symbol (an ASCII string of another type than string).
type Symbol string

// UUID is an AMQP uuid, its 16 bytes in network order.
type UUID [16]byte

// String is the 8-4-4-4-12 hex form.
func (u UUID) String() string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b.WriteByte('-')
		}
		b.WriteByte(hex[x>>4])
		b.WriteByte(hex[x&15])
	}
	return b.String()
}

// Char is an AMQP char (a Unicode code point).
type Char rune

// Decimal32, Decimal64 and Decimal128 are AMQP decimals, as their IEEE 754 bytes on the wire.
type (
	Decimal32  [4]byte
	Decimal64  [8]byte
	Decimal128 [16]byte
)

// Described is a received AMQP described value.
type Described struct {
	Descriptor any
	Value      any
}

// --- encoding (see "Message encoding" in gormqs.h) -----------------------------------------

type encoder struct{ b []byte }

func (e *encoder) u8(v byte)    { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) i32(v int32)  { e.u32(uint32(v)) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }

func (e *encoder) bytes(p []byte) { e.u32(uint32(len(p))); e.b = append(e.b, p...) }

// key appends a NUL-terminated key; false when it holds a NUL.
func (e *encoder) key(k string) bool {
	if strings.IndexByte(k, 0) >= 0 {
		return false
	}
	e.u32(uint32(len(k)))
	e.b = append(e.b, k...)
	e.b = append(e.b, 0)
	return true
}

func (e *encoder) scalar(kind int32, bits uint64) { e.i32(kind); e.u64(bits); e.u32(0) }

func (e *encoder) str(kind int32, s string) {
	e.i32(kind)
	e.u64(0)
	e.u32(uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) raw(kind int32, p []byte) { e.i32(kind); e.u64(0); e.bytes(p) }

// value appends v; false for a Go type with no AMQP counterpart here.
func (e *encoder) value(v any) bool {
	switch x := v.(type) {
	case nil:
		e.scalar(C.RMQS_VALUE_NULL, 0)
	case bool:
		var b uint64
		if x {
			b = 1
		}
		e.scalar(C.RMQS_VALUE_BOOL, b)
	case uint8:
		e.scalar(C.RMQS_VALUE_UBYTE, uint64(x))
	case uint16:
		e.scalar(C.RMQS_VALUE_USHORT, uint64(x))
	case uint32:
		e.scalar(C.RMQS_VALUE_UINT, uint64(x))
	case uint64:
		e.scalar(C.RMQS_VALUE_ULONG, x)
	case uint:
		e.scalar(C.RMQS_VALUE_ULONG, uint64(x))
	case int8:
		e.scalar(C.RMQS_VALUE_BYTE, uint64(int64(x)))
	case int16:
		e.scalar(C.RMQS_VALUE_SHORT, uint64(int64(x)))
	case int32:
		e.scalar(C.RMQS_VALUE_INT, uint64(int64(x)))
	case int64:
		e.scalar(C.RMQS_VALUE_LONG, uint64(x))
	case int:
		e.scalar(C.RMQS_VALUE_LONG, uint64(int64(x)))
	case float32:
		e.scalar(C.RMQS_VALUE_FLOAT, math.Float64bits(float64(x)))
	case float64:
		e.scalar(C.RMQS_VALUE_DOUBLE, math.Float64bits(x))
	case time.Time:
		e.scalar(C.RMQS_VALUE_TIMESTAMP, uint64(x.UnixMilli()))
	case Char:
		e.scalar(C.RMQS_VALUE_CHAR, uint64(x))
	case UUID:
		e.raw(C.RMQS_VALUE_UUID, x[:])
	case string:
		e.str(C.RMQS_VALUE_STRING, x)
	case Symbol:
		e.str(C.RMQS_VALUE_SYMBOL, string(x))
	case []byte:
		e.raw(C.RMQS_VALUE_BINARY, x)
	case Decimal32:
		e.raw(C.RMQS_VALUE_DECIMAL32, x[:])
	case Decimal64:
		e.raw(C.RMQS_VALUE_DECIMAL64, x[:])
	case Decimal128:
		e.raw(C.RMQS_VALUE_DECIMAL128, x[:])
	default:
		return false
	}
	return true
}

func invalid(msg string) error { return &Error{Status: StatusInvalidArgument, Message: msg} }

// encode appends m's encoding (one message).
func (e *encoder) encode(m *Message) error {
	switch {
	case m.BodyValue != nil:
		e.u8(C.GORMQS_OP_BODY_VALUE)
		if !e.value(m.BodyValue) {
			return invalid("BodyValue: unsupported Go type")
		}
	case m.Data != nil:
		for _, d := range m.Data {
			e.u8(C.GORMQS_OP_DATA)
			e.bytes(d)
		}
	case m.Body != nil:
		e.u8(C.GORMQS_OP_BODY)
		e.bytes(m.Body)
	}
	if h := m.Header; h != nil {
		for _, f := range []struct {
			code int32
			v    any
			set  bool
		}{{C.RMQS_HEADER_DURABLE, true, h.Durable}, {C.RMQS_HEADER_PRIORITY, h.Priority, h.Priority != 0},
			{C.RMQS_HEADER_TTL, h.TTL, h.TTL != 0}, {C.RMQS_HEADER_FIRST_ACQUIRER, true, h.FirstAcquirer},
			{C.RMQS_HEADER_DELIVERY_COUNT, h.DeliveryCount, h.DeliveryCount != 0}} {
			if f.set {
				e.u8(C.GORMQS_OP_HEADER)
				e.i32(f.code)
				e.value(f.v)
			}
		}
	}
	if p := m.Properties; p != nil {
		for _, f := range []struct {
			code int32
			v    any
			set  bool
		}{{C.RMQS_PROP_MESSAGE_ID, p.MessageID, p.MessageID != nil},
			{C.RMQS_PROP_USER_ID, p.UserID, p.UserID != nil},
			{C.RMQS_PROP_TO, p.To, p.To != ""}, {C.RMQS_PROP_SUBJECT, p.Subject, p.Subject != ""},
			{C.RMQS_PROP_REPLY_TO, p.ReplyTo, p.ReplyTo != ""},
			{C.RMQS_PROP_CORRELATION_ID, p.CorrelationID, p.CorrelationID != nil},
			{C.RMQS_PROP_CONTENT_TYPE, Symbol(p.ContentType), p.ContentType != ""},
			{C.RMQS_PROP_CONTENT_ENCODING, Symbol(p.ContentEncoding), p.ContentEncoding != ""},
			{C.RMQS_PROP_ABSOLUTE_EXPIRY_TIME, p.AbsoluteExpiryTime, !p.AbsoluteExpiryTime.IsZero()},
			{C.RMQS_PROP_CREATION_TIME, p.CreationTime, !p.CreationTime.IsZero()},
			{C.RMQS_PROP_GROUP_ID, p.GroupID, p.GroupID != ""},
			{C.RMQS_PROP_GROUP_SEQUENCE, p.GroupSequence, p.GroupSequence != 0},
			{C.RMQS_PROP_REPLY_TO_GROUP_ID, p.ReplyToGroupID, p.ReplyToGroupID != ""}} {
			if f.set {
				e.u8(C.GORMQS_OP_PROPERTY)
				e.i32(f.code)
				if !e.value(f.v) {
					return invalid("property " + strconv.Itoa(int(f.code)) + ": unsupported Go type")
				}
			}
		}
	}
	for k, v := range m.ApplicationProperties {
		e.u8(C.GORMQS_OP_APP)
		if !e.key(k) || !e.value(v) {
			return invalid("application property " + strconv.Quote(k) + ": NUL in the key or unsupported Go type")
		}
	}
	for _, s := range []struct {
		code int32
		m    map[string]any
	}{{C.RMQS_SECTION_MESSAGE_ANNOTATIONS, m.MessageAnnotations},
		{C.RMQS_SECTION_DELIVERY_ANNOTATIONS, m.DeliveryAnnotations}, {C.RMQS_SECTION_FOOTER, m.Footer}} {
		for k, v := range s.m {
			e.u8(C.GORMQS_OP_ANNOTATION)
			e.i32(s.code)
			if !e.key(k) || !e.value(v) {
				return invalid("annotation " + strconv.Quote(k) + ": NUL in the key or unsupported Go type")
			}
		}
	}
	if m.FilterValue != "" {
		e.u8(C.GORMQS_OP_FILTER)
		if !e.key(m.FilterValue) {
			return invalid("the filter value holds a NUL")
		}
	}
	if m.UsePublishingID {
		e.u8(C.GORMQS_OP_PUBLISHING_ID)
		e.u64(m.PublishingID)
	}
	return nil
}

// plain reports whether m needs no builder: a body alone (or Raw).
func (m *Message) plain() bool {
	return m.Raw || (m.Data == nil && m.BodyValue == nil && m.Header == nil && m.Properties == nil &&
		m.ApplicationProperties == nil && m.MessageAnnotations == nil && m.DeliveryAnnotations == nil &&
		m.Footer == nil)
}

// --- decoding the sections of a received message ------------------------------------------

type decoder struct {
	b   []byte // C memory, valid during the decode
	bad bool
}

// take returns the next n bytes; after a short read, zeros (at most 8 bytes: callers that
// read more check their length) and the decoder stops.
func (d *decoder) take(n int) []byte {
	if d.bad || n < 0 || len(d.b) < n {
		d.bad = true
		if n > 0 && n <= 8 {
			return make([]byte, n)
		}
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

// room bounds a count read from the input by what the input can hold (a value takes at
// least 16 bytes), so that a bad count cannot allocate much.
func (d *decoder) room(n int) int {
	if max := len(d.b) / 16; n > max {
		return max
	}
	return n
}

func (d *decoder) u8() byte    { return d.take(1)[0] }
func (d *decoder) u32() uint32 { return binary.LittleEndian.Uint32(d.take(4)) }
func (d *decoder) i32() int32  { return int32(d.u32()) }
func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.take(8)) }

func (d *decoder) key() string {
	n := int(d.u32())
	s := string(d.take(n))
	d.take(1)
	return s
}

func (d *decoder) value() any {
	kind, bits, n := d.i32(), d.u64(), int(d.u32())
	switch kind {
	case C.RMQS_VALUE_NULL:
		return nil
	case C.RMQS_VALUE_BOOL:
		return bits != 0
	case C.RMQS_VALUE_UBYTE:
		return uint8(bits)
	case C.RMQS_VALUE_USHORT:
		return uint16(bits)
	case C.RMQS_VALUE_UINT:
		return uint32(bits)
	case C.RMQS_VALUE_ULONG:
		return bits
	case C.RMQS_VALUE_BYTE:
		return int8(bits)
	case C.RMQS_VALUE_SHORT:
		return int16(bits)
	case C.RMQS_VALUE_INT:
		return int32(bits)
	case C.RMQS_VALUE_LONG:
		return int64(bits)
	case C.RMQS_VALUE_FLOAT:
		return float32(math.Float64frombits(bits))
	case C.RMQS_VALUE_DOUBLE:
		return math.Float64frombits(bits)
	case C.RMQS_VALUE_TIMESTAMP:
		return time.UnixMilli(int64(bits))
	case C.RMQS_VALUE_CHAR:
		return Char(bits)
	case C.RMQS_VALUE_UUID:
		var u UUID
		copy(u[:], d.take(n))
		return u
	case C.RMQS_VALUE_STRING:
		return string(d.take(n))
	case C.RMQS_VALUE_SYMBOL:
		return Symbol(d.take(n))
	case C.RMQS_VALUE_BINARY:
		return append([]byte{}, d.take(n)...)
	case C.RMQS_VALUE_DECIMAL32:
		var x Decimal32
		copy(x[:], d.take(n))
		return x
	case C.RMQS_VALUE_DECIMAL64:
		var x Decimal64
		copy(x[:], d.take(n))
		return x
	case C.RMQS_VALUE_DECIMAL128:
		var x Decimal128
		copy(x[:], d.take(n))
		return x
	case C.RMQS_VALUE_LIST, C.RMQS_VALUE_ARRAY:
		l := make([]any, 0, d.room(n))
		for i := 0; i < n; i++ {
			v := d.value()
			if d.bad {
				break
			}
			l = append(l, v)
		}
		return l
	case C.RMQS_VALUE_MAP:
		m := make(map[any]any, d.room(n))
		for i := 0; i < n; i++ {
			k := d.value()
			if b, ok := k.([]byte); ok {
				k = string(b)
			}
			v := d.value()
			if d.bad {
				break
			}
			if !isComparable(k) {
				continue
			}
			m[k] = v
		}
		return m
	case C.RMQS_VALUE_DESCRIBED:
		if n != 2 {
			return Described{}
		}
		desc := d.value()
		return Described{Descriptor: desc, Value: d.value()}
	}
	d.take(n) // a kind this binding does not know: skipped
	return nil
}

func isComparable(k any) bool {
	switch k.(type) {
	case []any, map[any]any:
		return false
	}
	return true
}

func setMap(m *map[string]any, k string, v any) {
	if *m == nil {
		*m = map[string]any{}
	}
	(*m)[k] = v
}

// decodeSections fills m's sections from their encoding (gormqs_chunk_messages).
func (m *Message) decodeSections(enc []byte) {
	d := decoder{b: enc}
	for len(d.b) > 0 && !d.bad {
		switch d.u8() {
		case C.GORMQS_OP_HEADER:
			f, v := d.i32(), d.value()
			if m.Header == nil {
				m.Header = &Header{}
			}
			setHeader(m.Header, f, v)
		case C.GORMQS_OP_PROPERTY:
			f, v := d.i32(), d.value()
			if m.Properties == nil {
				m.Properties = &Properties{}
			}
			setProperty(m.Properties, f, v)
		case C.GORMQS_OP_APP:
			k := d.key()
			setMap(&m.ApplicationProperties, k, d.value())
		case C.GORMQS_OP_ANNOTATION:
			s, k := d.i32(), d.key()
			v := d.value()
			switch s {
			case C.RMQS_SECTION_MESSAGE_ANNOTATIONS:
				setMap(&m.MessageAnnotations, k, v)
			case C.RMQS_SECTION_DELIVERY_ANNOTATIONS:
				setMap(&m.DeliveryAnnotations, k, v)
			case C.RMQS_SECTION_FOOTER:
				setMap(&m.Footer, k, v)
			}
		case C.GORMQS_OP_DATA:
			m.Data = append(m.Data, append([]byte{}, d.take(int(d.u32()))...))
		case C.GORMQS_OP_BODY_VALUE:
			m.BodyValue = d.value()
		case C.GORMQS_OP_SEQUENCE:
			l, _ := d.value().([]any)
			m.Sequence = append(m.Sequence, l)
		default:
			return
		}
	}
}

func asUint(v any) uint64 {
	switch x := v.(type) {
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	case uint64:
		return x
	case int8, int16, int32, int64:
		if i := asInt(v); i >= 0 {
			return uint64(i)
		}
	}
	return 0
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	}
	return int64(asUint(v))
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case Symbol:
		return string(x)
	case []byte:
		return string(x)
	}
	return ""
}

func asTime(v any) time.Time {
	if t, ok := v.(time.Time); ok {
		return t
	}
	return time.UnixMilli(asInt(v))
}

func setHeader(h *Header, f int32, v any) {
	switch f {
	case C.RMQS_HEADER_DURABLE:
		h.Durable, _ = v.(bool)
	case C.RMQS_HEADER_PRIORITY:
		h.Priority = uint8(asUint(v))
	case C.RMQS_HEADER_TTL:
		h.TTL = uint32(asUint(v))
	case C.RMQS_HEADER_FIRST_ACQUIRER:
		h.FirstAcquirer, _ = v.(bool)
	case C.RMQS_HEADER_DELIVERY_COUNT:
		h.DeliveryCount = uint32(asUint(v))
	}
}

func setProperty(p *Properties, f int32, v any) {
	switch f {
	case C.RMQS_PROP_MESSAGE_ID:
		p.MessageID = v
	case C.RMQS_PROP_USER_ID:
		p.UserID, _ = v.([]byte)
		if s, ok := v.(string); ok {
			p.UserID = []byte(s)
		}
	case C.RMQS_PROP_TO:
		p.To = asString(v)
	case C.RMQS_PROP_SUBJECT:
		p.Subject = asString(v)
	case C.RMQS_PROP_REPLY_TO:
		p.ReplyTo = asString(v)
	case C.RMQS_PROP_CORRELATION_ID:
		p.CorrelationID = v
	case C.RMQS_PROP_CONTENT_TYPE:
		p.ContentType = asString(v)
	case C.RMQS_PROP_CONTENT_ENCODING:
		p.ContentEncoding = asString(v)
	case C.RMQS_PROP_ABSOLUTE_EXPIRY_TIME:
		p.AbsoluteExpiryTime = asTime(v)
	case C.RMQS_PROP_CREATION_TIME:
		p.CreationTime = asTime(v)
	case C.RMQS_PROP_GROUP_ID:
		p.GroupID = asString(v)
	case C.RMQS_PROP_GROUP_SEQUENCE:
		p.GroupSequence = uint32(asUint(v))
	case C.RMQS_PROP_REPLY_TO_GROUP_ID:
		p.ReplyToGroupID = asString(v)
	}
}
