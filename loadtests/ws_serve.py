"""`qms serve` with another uvicorn WebSocket implementation (ws_bench's comparison).

    python -m loadtests.ws_serve --ws wsproto serve --config HALL.toml --port P ...

Everything after `--ws IMPL` is `qms`'s own command line, run by `qms.cli.main`
unchanged. Only the protocol class in the uvicorn config that
`qms.server.server_config` builds is replaced: by uvicorn's IMPL, wrapped the
way qms wraps its own (`qms.server.bounded_send_buffer`, when there is one),
so the comparison differs from a real `qms serve` in the WebSocket
implementation alone (deflate off, max size, pings, send buffer, shutdown).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from unittest import mock

import uvicorn
from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import import_from_string

import qms.cli
import qms.server

# uvicorn's names; its "auto" is websockets-sansio whenever websockets is installed.
WS_IMPLEMENTATIONS = ("websockets-sansio", "wsproto", "websockets")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.ws_serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ws", choices=WS_IMPLEMENTATIONS, required=True)
    args, qms_argv = parser.parse_known_args(argv)
    original = qms.server.server_config

    def config_with_ws(*a: Any, **kw: Any) -> uvicorn.Config:
        config = original(*a, **kw)
        wrap = getattr(qms.server, "bounded_send_buffer", None)
        if wrap is not None and not isinstance(config.ws, str):
            size = kw.get("ws_send_buffer", getattr(qms.server, "WS_SEND_BUFFER_BYTES", 65536))
            config.ws = wrap(import_from_string(WS_PROTOCOLS[args.ws]), size)
        else:
            config.ws = args.ws  # read by Config.load(), which uvicorn calls at startup
        print(f"ws_serve: uvicorn ws = {args.ws} ({config.ws})", file=sys.stderr, flush=True)
        return config

    # qms.cli looks `server_config` up in its own namespace when it starts
    # uvicorn, so patching that one name is enough.
    with mock.patch.object(qms.cli, "server_config", config_with_ws):
        return qms.cli.main(qms_argv)


if __name__ == "__main__":
    raise SystemExit(main())
