#!/usr/bin/env python3
"""Consumes a stream from its first offset as an AMQP 0-9-1 client (pika) and prints a JSON
report of the messages (stdout; logs go to stderr).

Used by tests/interop_messages.rs: rmqstream publishes AMQP 1.0 messages to a stream, and an
AMQP 0-9-1 consumer of the same stream (basic.consume with x-stream-offset=first, manual acks,
a prefetch, as RabbitMQ requires for streams) must see the application properties as headers
and the properties as basic properties. Run it with the venv of scripts/install-deps:

    ~/.rmqstream/venv/bin/python tests/interop/pika_consume.py --stream S --count 3

Report: {"pika_version": "1.3.2", "messages": [{"properties": {name: TV | null},
"headers": [[key, TV]] | null, "body_hex": hex}]} where TV is {"t": Python type name,
"v": value} with bytes as hex, floats as repr, decimals and datetimes as str.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pika

from interop_common import amqp_consumer_args, report

# the basic properties of AMQP 0-9-1
PROPERTIES = """content_type content_encoding delivery_mode priority correlation_id reply_to
expiration message_id timestamp type user_id app_id""".split()


def tv(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, (bytes, bytearray)):
        return {"t": "bytes", "v": bytes(x).hex()}
    if isinstance(x, bool):
        return {"t": "bool", "v": x}
    if isinstance(x, int):
        return {"t": "int", "v": x}
    if isinstance(x, float):
        return {"t": "float", "v": repr(x)}
    if isinstance(x, str):
        return {"t": "str", "v": x}
    if isinstance(x, (list, tuple)):
        return {"t": "list", "v": [tv(e) for e in x]}
    if isinstance(x, dict):
        return {"t": "dict", "v": [[k, tv(v)] for k, v in x.items()]}
    return {"t": type(x).__name__, "v": str(x)}


def consume(args: argparse.Namespace) -> dict[str, Any]:
    params = pika.URLParameters(args.amqp_uri)
    params.socket_timeout = args.timeout
    got: list[dict[str, Any]] = []
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=100)
    for method, props, body in ch.consume(
        args.stream,
        auto_ack=False,
        arguments={"x-stream-offset": "first"},
        inactivity_timeout=args.timeout,
    ):
        if method is None:
            raise TimeoutError(f"timed out after {len(got)} messages")
        ch.basic_ack(method.delivery_tag)
        got.append(
            {
                "properties": {p: tv(getattr(props, p)) for p in PROPERTIES},
                "headers": None
                if props.headers is None
                else [[k, tv(v)] for k, v in props.headers.items()],
                "body_hex": body.hex(),
            }
        )
        if len(got) >= args.count:
            break
    ch.cancel()
    conn.close()
    return {"pika_version": pika.__version__, "messages": got}


def main() -> int:
    args = amqp_consumer_args(__doc__)
    return report("pika_consume.py", lambda: consume(args))


if __name__ == "__main__":
    sys.exit(main())
