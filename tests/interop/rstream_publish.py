#!/usr/bin/env python3
"""Publishes AMQP 1.0 messages to a stream with the Python client rstream and prints a JSON
manifest of exactly what was sent (stdout; logs go to stderr).

Used by tests/interop_rstream.rs: the Rust side reads the stream with rmqstream and checks
every record against the manifest. Run it with the venv of scripts/install-deps:

    ~/.rmqstream/venv/bin/python tests/interop/rstream_publish.py --stream S --count 24 \
        --sub-entry none,gzip

Messages (in this order, which is the stream's offset order on a fresh stream):
  * --count simple messages, published with Producer.send_batch in batches of --batch,
    every batch confirmed before the next;
  * for each codec of --sub-entry, one sub-entry batch of --sub-entry-size messages
    (Producer.send_sub_entry), confirmed before the next. rstream 1.1.1 ships the "none"
    and "gzip" codecs only.

The messages vary by index: message-id and correlation-id of every type rstream's encoder
offers (string, ulong, uuid, binary), header on some, message annotations on some, delivery
annotations and footer on a few (pyamqp writes both after the body, delivery annotations
last), no properties or no application properties on a few, application properties of many
AMQP types (string, str32, symbol, int, long, byte, short, ubyte, ushort, uint, ulong,
boolean, float, double, binary, uuid, timestamp, null), bodies of 1 byte to 70 000 bytes.

Manifest (one JSON object):
  {"rstream_version": "1.1.1", "stream": S, "confirmed": n,
   "messages": [{"index": i, "entry": "simple" | "sub-entry", "codec": null | "none" | "gzip",
                 "publishing_id": int | null, "encoded_hex": bytes(message).hex(),
                 "body_hex": hex, "header": {field: TV} | null,
                 "properties": {field: TV} | null, "application_properties": [[key, TV]] | null,
                 "message_annotations": [[symbol, TV]] | null,
                 "delivery_annotations": [[symbol, TV]] | null,
                 "footer": [[symbol, TV]] | null}]}
where TV, a typed value, is {"type": AMQP type name, "value": V}: V is null for null, a
boolean for boolean, an integer for the integer types and timestamp (ms), the big-endian IEEE
754 bits as hex for float and double, hex for binary and uuid, a string for string and symbol.
Only fields that were set appear in "header" and "properties".
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import struct
import sys
import uuid
from typing import Any, Optional

from rstream import AMQPMessage, CompressionType, ConfirmationStatus, Producer
from rstream._pyamqp.message import Header, Properties  # type: ignore
from rstream._pyamqp.types import TYPE, VALUE, AMQPTypes  # type: ignore

from interop_common import DEFAULT_URI, report, rstream_client, rstream_version

CODECS = {"none": CompressionType.No, "gzip": CompressionType.Gzip}


class TV:
    """A value with the AMQP type it is encoded as: `amqp` is what pyamqp's encoder gets,
    `manifest` what the manifest says."""

    # Types pyamqp picks by itself for plain Python values (encode_unknown).
    NATIVE = {"null", "boolean", "string", "binary", "double", "uuid"}

    def __init__(self, type_: str, value: Any):
        self.type = type_
        self.value = value

    @property
    def amqp(self) -> Any:
        if self.type in self.NATIVE:
            return self.value
        if self.type == "int" and -(2**31) <= self.value < 2**31:
            return self.value
        if self.type == "long" and not -(2**31) <= self.value < 2**31:
            return self.value
        names = {
            "ubyte": AMQPTypes.ubyte,
            "byte": AMQPTypes.byte,
            "ushort": AMQPTypes.ushort,
            "short": AMQPTypes.short,
            "uint": AMQPTypes.uint,
            "int": AMQPTypes.int,
            "ulong": AMQPTypes.ulong,
            "long": AMQPTypes.long,
            "float": AMQPTypes.float,
            "timestamp": AMQPTypes.timestamp,
            "symbol": AMQPTypes.symbol,
        }
        return {TYPE: names[self.type], VALUE: self.value}

    @property
    def manifest(self) -> dict[str, Any]:
        v = self.value
        if self.type == "float":
            v = struct.pack(">f", v).hex()
        elif self.type == "double":
            v = struct.pack(">d", v).hex()
        elif self.type == "binary":
            v = bytes(v).hex()
        elif self.type == "uuid":
            v = v.hex
        return {"type": self.type, "value": v}


def message_id_tv(kind: int, i: int, salt: str) -> TV:
    """message-id / correlation-id of each type rstream's encoder offers (encode_message_id:
    int -> ulong, UUID -> uuid, bytes -> binary, str -> string)."""
    if kind == 0:
        return TV("string", f"{salt}-{i}-ünïcode")
    if kind == 1:
        return TV("ulong", 2**40 + i)
    if kind == 2:
        return TV("uuid", uuid.UUID(int=(0x0123456789ABCDEF << 64) | (i * 0x1F1F + len(salt))))
    return TV("binary", bytes([0xFF, 0x00, i & 0xFF]) + salt.encode())


def properties_for(i: int) -> Optional[dict[str, TV]]:
    if i % 6 == 5:
        return None
    p: dict[str, TV] = {
        "message_id": message_id_tv(i % 4, i, "msg"),
        "correlation_id": message_id_tv((i + 1) % 4, i, "corr"),
        "content_type": TV("symbol", "application/octet-stream" if i % 2 else "text/plain"),
        "subject": TV("string", f"subject #{i} ✓"),
        "creation_time": TV("timestamp", 1_700_000_000_000 + i * 1001),
    }
    if i % 2 == 0:
        p.update(
            {
                "user_id": TV("binary", b"guest"),
                "to": TV("string", f"/queues/to-{i}"),
                "reply_to": TV("string", "reply-here"),
                "content_encoding": TV("symbol", "identity"),
                "absolute_expiry_time": TV("timestamp", 1_800_000_000_000 + i),
                "group_id": TV("string", f"group-{i % 3}"),
                "group_sequence": TV("uint", 4_000_000_000 + i),
                "reply_to_group_id": TV("string", "reply-group"),
            }
        )
    return p


def header_for(i: int) -> Optional[dict[str, TV]]:
    if i % 2 != 0:
        return None
    h = {"durable": TV("boolean", i % 4 == 0), "priority": TV("ubyte", i % 10)}
    if i % 4 == 0:
        h["ttl"] = TV("uint", 60_000 + i)
        h["first_acquirer"] = TV("boolean", True)
        h["delivery_count"] = TV("uint", i)
    return h


def app_properties_for(i: int) -> Optional[list[tuple[str, TV]]]:
    if i % 8 == 7:
        return None
    props = [
        ("string", TV("string", f"héllo wörld ✓ {i}")),
        ("int", TV("int", i * 1000 - 5)),
        ("long", TV("long", -(2**40) - i)),
        ("bool", TV("boolean", i % 2 == 0)),
        ("double", TV("double", 3.25 + i / 8)),
        ("binary", TV("binary", bytes(range(i % 7, i % 7 + 9)))),
        ("null", TV("null", None)),
    ]
    if i % 3 == 0:
        props += [
            ("uuid", TV("uuid", uuid.UUID(int=i * 0x1000000000000000000000001 + 7))),
            ("timestamp", TV("timestamp", 1_650_000_000_123 + i)),
            ("ubyte", TV("ubyte", 200 + i % 50)),
            ("byte", TV("byte", -100 - i % 20)),
            ("ushort", TV("ushort", 65_000 + i)),
            ("short", TV("short", -30_000 - i)),
            ("uint", TV("uint", 4_000_000_000 + i)),
            ("ulong", TV("ulong", 2**63 + i)),
            ("float", TV("float", 1.5 + i)),
            ("symbol", TV("symbol", f"sym-{i}")),
            ("small long", TV("long", i)),
            ("str32", TV("string", "long string " + "x" * 300)),
        ]
    return props


def annotations_for(i: int, which: str) -> Optional[list[tuple[str, TV]]]:
    if which == "message" and i % 3 == 0:
        return [("x-opt-index", TV("int", i)), ("x-opt-origin", TV("string", "rstream"))]
    if which == "delivery" and i % 5 == 1:
        return [("x-opt-delivery", TV("string", f"da-{i}"))]
    if which == "footer" and i % 7 == 2:
        return [("x-opt-footer", TV("boolean", True))]
    return None


def body_for(i: int) -> bytes:
    if i == 3:
        return bytes(range(256)) * 2  # > 255 bytes: vbin32
    if i == 5:
        return bytes((k * 31 + 7) & 0xFF for k in range(70_000))
    if i == 6:
        return b"\x00"
    return f"body of rstream message {i}: ".encode() + bytes([i & 0xFF, 0x80, 0xFF])


def build(i: int) -> tuple[AMQPMessage, dict[str, Any]]:
    header = header_for(i)
    props = properties_for(i)
    app = app_properties_for(i)
    ma = annotations_for(i, "message")
    da = annotations_for(i, "delivery")
    footer = annotations_for(i, "footer")
    body = body_for(i)
    msg = AMQPMessage(
        body=body,
        header=Header(**{k: v.value for k, v in header.items()}) if header else None,
        properties=Properties(**{k: v.value for k, v in props.items()}) if props else None,
        application_properties={k: v.amqp for k, v in app} if app else None,
        message_annotations={k: v.amqp for k, v in ma} if ma else None,
        delivery_annotations={k: v.amqp for k, v in da} if da else None,
        footer={k: v.amqp for k, v in footer} if footer else None,
    )
    pairs = lambda kv: [[k, v.manifest] for k, v in kv] if kv else None  # noqa: E731
    entry = {
        "index": i,
        "encoded_hex": bytes(msg).hex(),
        "body_hex": body.hex(),
        "header": {k: v.manifest for k, v in header.items()} if header else None,
        "properties": {k: v.manifest for k, v in props.items()} if props else None,
        "application_properties": pairs(app),
        "message_annotations": pairs(ma),
        "delivery_annotations": pairs(da),
        "footer": pairs(footer),
    }
    return msg, entry


class Confirms:
    def __init__(self) -> None:
        self.ok: set[int] = set()
        self.failed: dict[int, int] = {}
        self.changed = asyncio.Event()

    def __call__(self, status: ConfirmationStatus) -> None:
        if status.is_confirmed:
            self.ok.add(status.message_id)
        else:
            self.failed[status.message_id] = status.response_code
        self.changed.set()

    async def wait(self, total: int, timeout: float, what: str) -> None:
        async def until_all() -> None:
            while len(self.ok) + len(self.failed) < total:
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(until_all(), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(
                f"{what}: {len(self.ok)} of {total} confirmed after {timeout}s"
            ) from None
        if self.failed:
            raise RuntimeError(f"{what}: publish errors (publishing id: code) {self.failed}")


async def publish(args: argparse.Namespace) -> dict[str, Any]:
    manifest: list[dict[str, Any]] = []
    confirms = Confirms()
    async with rstream_client(Producer, args.uri, "rstream_publish.py") as producer:
        if args.create:
            await producer.create_stream(args.stream, exists_ok=True)
        i = 0
        while i < args.count:
            batch = []
            for k in range(i, min(i + args.batch, args.count)):
                msg, entry = build(k)
                entry.update({"entry": "simple", "codec": None})
                batch.append(msg)
                manifest.append(entry)
            await producer.send_batch(args.stream, batch, on_publish_confirm=confirms)
            await confirms.wait(len(manifest), args.timeout, f"messages {i}..{i + len(batch) - 1}")
            for msg, entry in zip(batch, manifest[i:]):
                entry["publishing_id"] = msg.publishing_id
            i += len(batch)
        batches = 0
        for name in [c for c in args.sub_entry.split(",") if c]:
            codec = CODECS.get(name)
            if codec is None:
                raise ValueError(f"rstream {rstream_version()} has no {name!r} codec: {list(CODECS)}")
            msgs = []
            for k in range(i, i + args.sub_entry_size):
                msg, entry = build(k)
                entry.update({"entry": "sub-entry", "codec": name, "publishing_id": None})
                msgs.append(msg)
                manifest.append(entry)
            i += args.sub_entry_size
            await producer.send_sub_entry(
                args.stream, msgs, compression_type=codec, on_publish_confirm=confirms
            )
            batches += 1
            await confirms.wait(args.count + batches, args.timeout, f"{name} sub-entry batch")
    return {
        "rstream_version": rstream_version(),
        "stream": args.stream,
        "confirmed": len(confirms.ok),
        "messages": manifest,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uri", default=DEFAULT_URI)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--count", type=int, default=24, help="simple messages")
    ap.add_argument("--batch", type=int, default=10, help="messages per send_batch")
    ap.add_argument("--sub-entry", default="", help="codecs of sub-entry batches: none,gzip")
    ap.add_argument("--sub-entry-size", type=int, default=5, help="messages per sub-entry batch")
    ap.add_argument("--create", action="store_true", help="create the stream if missing")
    ap.add_argument("--timeout", type=float, default=30, help="seconds to wait for each confirm")
    args = ap.parse_args()
    if args.count < 0 or args.batch < 1 or args.sub_entry_size < 1:
        ap.error("--count must be >= 0, --batch and --sub-entry-size >= 1")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    return report("rstream_publish.py", lambda: asyncio.run(publish(args)))


if __name__ == "__main__":
    sys.exit(main())
