"""A real HTTP receiver standing in for a hall's gateway: uvicorn on a
loopback port, in the caller's event loop. It checks each delivery's
signature, records what came and when, and can be told to fail (an HTTP
status), to be slow (answer after a delay), or be stopped and started again
on the same port (down, then back). The tests and `loadtests.notify_bench`
use it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notify.signature import HEADER, verify


@dataclass
class Received:
    body: dict[str, Any]
    signed: bool
    delivery_header: str | None
    status: int
    """What the receiver answered."""
    delay_s: float
    """From the delivery's `at` (the change that caused it) to its arrival here."""
    arrival_at: float
    """When it arrived (epoch seconds)."""


@dataclass
class WebhookReceiver:
    secret: bytes
    status: int = 200
    """What it answers (after `delay_s`)."""
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    """Every request that reached it, answered well or not."""
    in_flight: dict[str, int] = field(default_factory=dict)
    """Requests being answered now, by delivery id."""
    overlaps: list[str] = field(default_factory=list)
    """Delivery ids received while another request for the same id was in flight."""
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies answered 2xx and correctly signed, in order of arrival."""
        return [r.body for r in self.received if r.signed and r.status < 300]

    async def _hook(self, request: Request) -> Response:
        arrival = time.time()
        raw = await request.body()
        body: dict[str, Any] = json.loads(raw)
        did = str(body.get("id"))
        if self.in_flight.get(did):
            self.overlaps.append(did)
        self.in_flight[did] = self.in_flight.get(did, 0) + 1
        status, delay = self.status, self.delay_s
        try:
            if delay:
                await asyncio.sleep(delay)  # the gateway being slow, on purpose
            signed = verify(self.secret, raw, request.headers.get(HEADER))
            status = status if signed else 401
            at = datetime.fromisoformat(str(body.get("at"))).timestamp()
            header = request.headers.get("X-QMS-Delivery")
            self.received.append(Received(body, signed, header, status, arrival - at, arrival))
            self.arrived.set()
            return Response(status_code=status)
        finally:
            self.in_flight[did] -= 1

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        # Listening before uvicorn starts: a post made at once waits in the
        # backlog instead of being refused.
        sock.listen(1024)
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Until `count` deliveries arrived (signed, 2xx), or the timeout."""
        async with asyncio.timeout(timeout_s):
            while len(self.delivered()) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.delivered()
