"""A real qms server in the test's own event loop: uvicorn on a loopback
port, for tests that need real sockets (WebSockets, browsers)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from displays.gateway import Gateway, GatewaySettings
from qms.app import create_app
from qms.server import WS_SEND_BUFFER_BYTES, QmsServer, server_config
from queue_core.config import HallConfig
from tests.support import NOTIFY_SECRET


@dataclass
class LiveServer:
    app: Starlette
    server: QmsServer
    port: int
    api: httpx.AsyncClient
    """One keep-alive client for the test's requests (a client per request
    would build an SSL context each time, ~100 ms)."""

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Gateway:
        gateway = self.app.state.gateway
        assert isinstance(gateway, Gateway)
        return gateway

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http, timeout=10)


async def post(live: LiveServer, hall: str, path: str, token: str | None, **body: Any) -> Any:
    """POST to the hall's API (with `token`, if any) and demand a 2xx; its JSON or None."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = await live.api.post(f"/api/v1/halls/{hall}{path}", json=body or None, headers=headers)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def listening_socket(port: int = 0) -> socket.socket:
    # IPPROTO_TCP, as the CLI does, so accepted sockets get TCP_NODELAY.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


@contextlib.asynccontextmanager
async def live_server(
    configs: Sequence[HallConfig],
    redis_url: str,
    *,
    port: int = 0,
    clock: Callable[[], float] | None = None,
    gateway_settings: GatewaySettings | None = None,
    ws_send_buffer: int = WS_SEND_BUFFER_BYTES,
    id_digest_key: bytes | None = None,
    log_level: str = "warning",
    access_log: bool = False,
    trusted_proxies: Sequence[str] = (),
) -> AsyncIterator[LiveServer]:
    """Serve `configs` until the block ends, then shut down as SIGTERM would
    (screens are closed with 1001). uvicorn logs at `log_level`, with its
    access log if `access_log` (as `QMS_ACCESS_LOG=1`)."""
    app = create_app(
        configs,
        redis_url,
        clock=clock,
        metrics_interval_s=3600,
        gateway_settings=gateway_settings,
        estimate_max_age_s=0,
        id_digest_key=id_digest_key,
        notify_secrets={c.id: NOTIFY_SECRET for c in configs if c.notify.enabled},
    )
    sock = listening_socket(port)
    config = server_config(
        app,
        log_level=log_level,
        access_log=access_log,
        ws_send_buffer=ws_send_buffer,
        trusted_proxies=trusted_proxies,
    )
    server = QmsServer(config, app)
    # uvicorn installs signal handlers only in the main thread; it is
    # stopped here through should_exit, as its own handler would.
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            yield LiveServer(app, server, port, api)
    finally:
        server.should_exit = True
        await task
        sock.close()
