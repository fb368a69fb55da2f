#!/usr/bin/env python3
"""Consumes a stream from its first offset with the Python client rstream and prints a JSON
report of every message it got (stdout; logs go to stderr).

Used by tests/interop_rstream.rs: the Rust side publishes with rmqstream, then checks what
rstream saw. Run it with the venv of scripts/install-deps:

    ~/.rmqstream/venv/bin/python tests/interop/rstream_consume.py --stream S --count 10

Stops after --count messages, or once a message whose raw bytes are --stop-at-hex arrived
(that message included), or after --timeout seconds ("timed_out": true); whichever comes first.

--decoder amqp (default) subscribes with a decoder that keeps the raw bytes and runs rstream's
own amqp_decoder on them (a decoding failure is reported per message instead of making rstream
drop the rest of the chunk); --decoder raw subscribes without decoder (bytes as delivered).

Report (one JSON object):
  {"rstream_version": "1.1.1", "stream": S, "decoder": "amqp" | "raw",
   "supported_codecs": sub-entry codecs rstream can decompress, e.g. ["none", "gzip"],
   "timed_out": bool,
   "messages": [{"offset": int, "raw_hex": hex,
                 "amqp": null | {"header": {field: PV} | null, "properties": {field: PV} | null,
                                 "application_properties": PV | null,
                                 "message_annotations": PV | null,
                                 "delivery_annotations": PV | null, "footer": PV | null,
                                 "body": PV, "sequence": PV, "value": PV},
                 "amqp_error": null | "ExceptionType: text"}],
   "handler_errors": ["ExceptionType: text", ...]}
"handler_errors" are the exceptions rstream logged while handling a Deliver frame (e.g. a
sub-entry codec it does not have: it then drops that whole chunk and goes on).
PV, a value as pyamqp decoded it, is {"t": T, "v": V}: "null" (no v), "bool", "int" (every
AMQP integer type and timestamp), "float" (float and double: V is the big-endian bits of the
Python float, a double, as hex), "bytes" (binary, string and symbol alike: pyamqp decodes all
three to bytes; V is hex), "str", "uuid" (hex), "list" (V a list of PV), "map" (V a list of
[PV, PV] pairs), "other" (V its repr).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import struct
import sys
import uuid
from typing import Any, Optional

from rstream import (
    AMQPMessage,
    CompressionType,
    ConsumerOffsetSpecification,
    MessageContext,
    OffsetType,
    amqp_decoder,
)
from rstream import Consumer
from rstream.compression import StreamCompressionCodecs

from interop_common import DEFAULT_URI, report, rstream_client, rstream_version

# rstream's (pyamqp's) names of the AMQP 1.0 header and properties fields
HEADER_FIELDS = "durable priority ttl first_acquirer delivery_count".split()
PROPERTY_FIELDS = """message_id user_id to subject reply_to correlation_id content_type
content_encoding absolute_expiry_time creation_time group_id group_sequence
reply_to_group_id""".split()


def pv(x: Any) -> dict[str, Any]:
    """A decoded value as JSON, tagged with its Python type."""
    if x is None:
        return {"t": "null"}
    if isinstance(x, bool):
        return {"t": "bool", "v": x}
    if isinstance(x, int):
        return {"t": "int", "v": x}
    if isinstance(x, float):
        return {"t": "float", "v": struct.pack(">d", x).hex()}
    if isinstance(x, (bytes, bytearray, memoryview)):
        return {"t": "bytes", "v": bytes(x).hex()}
    if isinstance(x, str):
        return {"t": "str", "v": x}
    if isinstance(x, uuid.UUID):
        return {"t": "uuid", "v": x.hex}
    if isinstance(x, (list, tuple)):
        return {"t": "list", "v": [pv(e) for e in x]}
    if isinstance(x, dict):
        return {"t": "map", "v": [[pv(k), pv(v)] for k, v in x.items()]}
    return {"t": "other", "v": repr(x)}


def fields(nt: Any, names: list[str]) -> Optional[dict[str, Any]]:
    if nt is None:
        return None
    return {n: pv(getattr(nt, n, None)) for n in names}


def describe(m: AMQPMessage) -> dict[str, Any]:
    opt = lambda x: None if x is None else pv(x)  # noqa: E731
    return {
        "header": fields(m.header, HEADER_FIELDS),
        "properties": fields(m.properties, PROPERTY_FIELDS),
        "application_properties": opt(m.application_properties),
        "message_annotations": opt(m.message_annotations),
        "delivery_annotations": opt(m.delivery_annotations),
        "footer": opt(m.footer),
        "body": pv(m.body),
        "sequence": pv(m.sequence),
        "value": pv(m.value),
    }


def supported_codecs() -> list[str]:
    names = {CompressionType.No: "none"}
    have = StreamCompressionCodecs.available_compress_codecs
    # `in` does not touch the defaultdict's factory.
    return [names.get(c, c.name.lower()) for c in CompressionType if c in have]


class HandlerErrors(logging.Handler):
    """Collects the exceptions rstream logs while it handles frames."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            self.errors.append(f"{type(e).__name__}: {e}")
        else:
            self.errors.append(record.getMessage())


class OneLine(logging.Formatter):
    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return ""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_text = ""
        return super().format(record).rstrip()


async def consume(args: argparse.Namespace, errors: HandlerErrors) -> dict[str, Any]:
    stop_at = bytes.fromhex(args.stop_at_hex) if args.stop_at_hex is not None else None
    got: list[dict[str, Any]] = []
    done = asyncio.Event()

    def decode(raw: bytes) -> tuple[bytes, Optional[dict[str, Any]], Optional[str]]:
        raw = bytes(raw)
        try:
            return raw, describe(amqp_decoder(raw)), None
        except Exception as e:  # pyamqp raises anything from KeyError to struct.error
            return raw, None, f"{type(e).__name__}: {e}"

    async def on_message(msg: Any, ctx: MessageContext) -> None:
        if done.is_set():
            return
        if args.decoder == "amqp":
            raw, amqp, err = msg
        else:
            raw, amqp, err = bytes(msg), None, None
        got.append({"offset": ctx.offset, "raw_hex": raw.hex(), "amqp": amqp, "amqp_error": err})
        if (args.count is not None and len(got) >= args.count) or (stop_at is not None and raw == stop_at):
            done.set()

    timed_out = False
    consumer = rstream_client(Consumer, args.uri, "rstream_consume.py")
    try:
        await consumer.start()
        await consumer.subscribe(
            args.stream,
            on_message,
            decoder=decode if args.decoder == "amqp" else None,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST, None),
            initial_credit=args.initial_credit,
        )
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except asyncio.TimeoutError:
            timed_out = True
    finally:
        await consumer.close()
    return {
        "rstream_version": rstream_version(),
        "stream": args.stream,
        "decoder": args.decoder,
        "supported_codecs": supported_codecs(),
        "timed_out": timed_out,
        "messages": got,
        "handler_errors": errors.errors,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uri", default=DEFAULT_URI)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--count", type=int, help="stop after this many messages")
    ap.add_argument("--stop-at-hex", help="stop after the message with these raw bytes")
    ap.add_argument("--timeout", type=float, default=30, help="seconds before giving up")
    ap.add_argument("--decoder", choices=("amqp", "raw"), default="amqp")
    ap.add_argument("--initial-credit", type=int, default=10)
    args = ap.parse_args()
    if args.count is None and args.stop_at_hex is None:
        ap.error("give --count or --stop-at-hex (or both)")
    if args.count is not None and args.count < 1:
        ap.error("--count must be >= 1")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    errors = HandlerErrors()
    # rstream's handler errors go to the report, and to stderr as one line each (no traceback).
    quiet = logging.StreamHandler(sys.stderr)
    quiet.setFormatter(OneLine("%(levelname)s:%(name)s:%(message)s"))
    log = logging.getLogger("rstream")
    log.addHandler(errors)
    log.addHandler(quiet)
    log.propagate = False
    return report("rstream_consume.py", lambda: asyncio.run(consume(args, errors)))


if __name__ == "__main__":
    sys.exit(main())
