"""What the interop scripts of tests/interop share: the stream URI, an rstream client for it,
the AMQP consumers' arguments, and the JSON report on stdout (or the failure on stderr).

The scripts import it from their own directory (Python puts a script's directory first on
sys.path).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import urllib.parse
from typing import Any, Callable

DEFAULT_URI = "rabbitmq-stream://guest:guest@localhost:5552/%2f"


def parse_uri(uri: str) -> dict[str, Any]:
    u = urllib.parse.urlsplit(uri)
    if u.scheme != "rabbitmq-stream":
        raise ValueError(f"not a rabbitmq-stream:// URI: {uri}")
    vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
    return {
        "host": u.hostname or "localhost",
        "port": u.port or 5552,
        "username": urllib.parse.unquote(u.username or "guest"),
        "password": urllib.parse.unquote(u.password or "guest"),
        "vhost": vhost,
    }


def rstream_client(cls: Any, uri: str, script: str) -> Any:
    """An rstream Producer or Consumer (`cls`) for the broker of `uri`, named after `script`."""
    ep = parse_uri(uri)
    return cls(
        ep["host"],
        ep["port"],
        username=ep["username"],
        password=ep["password"],
        vhost=ep["vhost"],
        connection_name=f"rmqstream interop: {script}",
    )


def rstream_version() -> str:
    return importlib.metadata.version("rstream")


def amqp_consumer_args(doc: str) -> argparse.Namespace:
    """The arguments of the AMQP consumers: --amqp-uri, --stream, --count, --timeout."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--amqp-uri", default="amqp://guest:guest@localhost:5672/%2f")
    ap.add_argument("--stream", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=30)
    return ap.parse_args()


def report(script: str, run: Callable[[], Any]) -> int:
    """Prints what `run` returns as one line of JSON (exit status 0), or, when it raises,
    `script: ExceptionType: text` on stderr (exit status 1; the caller shows stderr)."""
    try:
        result = run()
    except Exception as e:
        print(f"{script}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0
