#!/usr/bin/env python3
"""Consumes a stream from its first offset as an AMQP 1.0 client (python-qpid-proton) on the
broker's AMQP port (RabbitMQ 4 speaks AMQP 1.0 natively) and prints a JSON report of every
section of each message (stdout; logs go to stderr).

Used by tests/interop_messages.rs: rmqstream publishes AMQP 1.0 messages to a stream with the
stream protocol; an AMQP 1.0 receiver of the same stream (address /queues/<stream>, source
filter rabbitmq:stream-offset-spec = "first") must read every section with equal values.

    ~/.rmqstream/venv/bin/python tests/interop/proton_consume.py --stream S --count 3

Report: {"proton_version": "0.40.0", "messages": [{"header": {field: TV}, "properties":
{field: TV}, "application_properties": [[key, TV]] | null, "message_annotations": [[key, TV]]
| null, "delivery_annotations": [[key, TV]] | null, "body": TV}]} where TV is {"t": the proton
/ Python type name, "v": value}: bytes and uuids as hex, floats as the hex of their
big-endian double bits, symbols and strings as text, lists and maps recursively.
"""

from __future__ import annotations

import argparse
import struct
import sys
import urllib.parse
import uuid
from typing import Any

import proton
from proton import symbol
from proton.reactor import Filter
from proton.utils import BlockingConnection

from interop_common import amqp_consumer_args, report

# proton's names of the AMQP 1.0 header and properties fields
HEADER = "durable priority ttl first_acquirer delivery_count".split()
PROPERTIES = """id user_id address subject reply_to correlation_id content_type content_encoding
expiry_time creation_time group_id group_sequence reply_to_group_id""".split()


def tv(x: Any) -> Any:
    if x is None:
        return None
    name = type(x).__name__
    if isinstance(x, bool):
        return {"t": name, "v": x}
    if isinstance(x, int):
        return {"t": name, "v": int(x)}
    if isinstance(x, float):
        return {"t": name, "v": struct.pack(">d", x).hex()}
    if isinstance(x, uuid.UUID):
        return {"t": name, "v": x.hex}
    if isinstance(x, (bytes, bytearray, memoryview)):
        return {"t": name, "v": bytes(x).hex()}
    if isinstance(x, str):
        return {"t": name, "v": str(x)}
    if isinstance(x, (list, tuple)):
        return {"t": name, "v": [tv(e) for e in x]}
    if isinstance(x, dict):
        return {"t": name, "v": [[tv(k), tv(v)] for k, v in x.items()]}
    return {"t": name, "v": repr(x)}


def pairs(d: Any) -> Any:
    return None if not d else [[str(k), tv(v)] for k, v in d.items()]


def consume(args: argparse.Namespace) -> dict[str, Any]:
    u = urllib.parse.urlsplit(args.amqp_uri)
    url = f"amqp://{u.hostname or 'localhost'}:{u.port or 5672}"
    got: list[dict[str, Any]] = []
    conn = BlockingConnection(
        url,
        timeout=args.timeout,
        user=urllib.parse.unquote(u.username or "guest"),
        password=urllib.parse.unquote(u.password or "guest"),
        allowed_mechs="PLAIN",
        virtual_host="vhost:/",
    )
    offset = Filter(
        {
            symbol("rabbitmq:stream-offset-spec"): proton.Described(
                symbol("rabbitmq:stream-offset-spec"), "first"
            )
        }
    )
    receiver = conn.create_receiver(
        "/queues/" + urllib.parse.quote(args.stream, safe=""), credit=10, options=offset
    )
    while len(got) < args.count:
        m = receiver.receive(timeout=args.timeout)
        receiver.accept()
        got.append(
            {
                "header": {h: tv(getattr(m, h)) for h in HEADER},
                "properties": {p: tv(getattr(m, p)) for p in PROPERTIES},
                "application_properties": pairs(m.properties),
                "message_annotations": pairs(m.annotations),
                "delivery_annotations": pairs(m.instructions),
                "body": tv(m.body),
            }
        )
    conn.close()
    return {"proton_version": ".".join(map(str, proton.VERSION)), "messages": got}


def main() -> int:
    args = amqp_consumer_args(__doc__)
    return report("proton_consume.py", lambda: consume(args))


if __name__ == "__main__":
    sys.exit(main())
