"""Every answer's security headers (API, pages, errors, /metrics, /healthz)
and the strict CORS default with its allow-list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from qms.http import unexpected
from qms.security import cors_origins
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import asgi_client, delete_hall, served_app
from tests.live import live_server
from tests.support import Clock, make_config
from tests.test_http_api import UNUSED_TICKET_ID, headers

pytestmark = pytest.mark.redis

ALLOWED = "https://app.example.gov.cn"


class Served:
    def __init__(self, hall: str, plain: httpx.AsyncClient, tls: httpx.AsyncClient) -> None:
        self.base = f"/api/v1/halls/{hall}"
        self.hall = hall
        self.plain = plain
        self.tls = tls


@pytest.fixture
async def served(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[Served]:
    config = make_config(tmp_path)
    async with (
        served_app([config], redis_url, Clock(), cors_origins=(ALLOWED,)) as app,
        asgi_client(app) as plain,
        asgi_client(app, base_url="https://qms.test") as tls,
    ):
        yield Served(config.id, plain, tls)
    await delete_hall(redis, HallKeys(config.id))


def assert_hardened(response: httpx.Response, *, tls: bool) -> None:
    h = response.headers
    assert h["x-content-type-options"] == "nosniff", response.request.url
    assert h["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert ("strict-transport-security" in h) is tls
    if tls:
        assert h["strict-transport-security"].startswith("max-age=")
    assert "access-control-allow-origin" not in h


async def test_every_kind_of_answer_carries_the_headers(served: Served) -> None:
    for client, tls in ((served.plain, False), (served.tls, True)):
        answers = {
            "api 200": await client.get(f"{served.base}/services"),
            "api 201": await client.post(
                f"{served.base}/tickets", json={"service": "social-security"}, headers=headers()
            ),
            "api 401": await client.post(f"{served.base}/tickets", json={}),
            "api 404": await client.get(f"{served.base}/tickets/{UNUSED_TICKET_ID}"),
            "api 405": await client.get(f"{served.base}/tickets"),
            "unknown path": await client.get("/nowhere"),
            "page": await client.get(f"/halls/{served.hall}/display"),
            "metrics": await client.get("/metrics"),
            "healthz": await client.get("/healthz"),
        }
        statuses = {name: r.status_code for name, r in answers.items()}
        assert statuses == {
            "api 200": 200,
            "api 201": 201,
            "api 401": 401,
            "api 404": 404,
            "api 405": 405,
            "unknown path": 404,
            "page": 200,
            "metrics": 200,
            "healthz": 200,
        }
        for response in answers.values():
            assert_hardened(response, tls=tls)
        # A page keeps its own policy (scripts from qms itself), not the default.
        assert "script-src 'self'" in answers["page"].headers["content-security-policy"]
        assert answers["api 200"].headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )


async def test_an_unhandled_error_carries_them_too() -> None:
    scope = {"type": "http", "method": "GET", "path": "/x", "scheme": "https", "headers": []}
    response = await unexpected(Request(scope), RuntimeError("boom"))
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_a_request_uvicorn_cannot_parse_is_refused_with_them_too(
    hall_config: HallConfig, redis_url: str
) -> None:
    """uvicorn answers 400 itself, before the app, for a request line it
    cannot parse (a raw space in a query value); it sent none of the headers
    (found by tests/test_fuzz_live.py)."""
    async with live_server([hall_config], redis_url) as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.write(b"GET /halls/x/display?screen=a b HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert lines[0].startswith("http/1.1 400"), answer
    assert body == b"Invalid HTTP request received."
    assert "x-content-type-options: nosniff" in lines
    assert "referrer-policy: no-referrer" in lines
    assert "content-security-policy: default-src 'none'; frame-ancestors 'none'" in lines


async def test_only_an_allowed_origin_may_read_answers(served: Served) -> None:
    url = f"{served.base}/services"
    allowed = await served.plain.get(url, headers={"Origin": ALLOWED})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    other = await served.plain.get(url, headers={"Origin": "https://evil.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def test_a_preflight_is_answered_for_allowed_origins_only(served: Served) -> None:
    url = f"{served.base}/tickets"
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    ok = await served.plain.options(url, headers={"Origin": ALLOWED, **ask})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in ok.headers["access-control-allow-methods"]
    refused = await served.plain.options(url, headers={"Origin": "https://evil.example", **ask})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "cors_origin_not_allowed"
    assert_hardened(refused, tls=False)


async def test_without_an_allow_list_no_origin_is_allowed(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    async with served_app([config], redis_url, Clock()) as app, asgi_client(app) as client:
        url = f"/api/v1/halls/{config.id}/services"
        answer = await client.get(url, headers={"Origin": ALLOWED})
        assert "access-control-allow-origin" not in answer.headers
        preflight = await client.options(
            url, headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
        )
        assert preflight.status_code == 405
        assert "access-control-allow-origin" not in preflight.headers
    await delete_hall(redis, HallKeys(config.id))


def test_the_allow_list_names_origins_exactly() -> None:
    assert cors_origins("") == ()
    assert cors_origins(" https://a.example , http://b.example:8080") == (
        "https://a.example",
        "http://b.example:8080",
    )
    for bad in ("*", "https://a.example/", "a.example", "https://A.example", "ftp://a.example"):
        with pytest.raises(ValueError, match="QMS_CORS_ORIGINS"):
            cors_origins(bad)
