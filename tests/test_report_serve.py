"""The archive and the report in the running app: the periodic sweep, the
dashboard's CSV downloads (the report and the audit trail), and the clerk
from the ticket to the report.

The whole app runs in-process against the test Redis, with a clock the test
moves; the archive is a SQLite file in the test's tmp_path (or an
unreachable PostgreSQL, for the failures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from qms.app import create_app
from qms.archiving import ArchiveHandle, Sweeper, sweep_once
from queue_core.archive import open_archive
from queue_core.config import HallConfig, load_hall_config
from queue_core.keys import HallKeys
from queue_core.models import WindowStatus
from queue_core.operations import Hall
from queue_core.redis_client import RedisClient, create_redis
from queue_core.store import HallStore
from tests.conftest import HallFactory, delete_hall
from tests.support import TOKENS, Clock
from tests.test_cli import free_port
from tests.test_report import NINE_MS
from tests.test_report_cli import clerk_id, write_report_hall

pytestmark = pytest.mark.redis

HEADER = (
    "hall,day,dimension,key,label,issued,served,no_show,cancelled,expired,"
    "mean_wait_min,p90_wait_min,mean_service_min,breaches,target_min,rated,satisfied_share,"
    "very_satisfied,satisfied,neutral,dissatisfied,very_dissatisfied"
    ",calls_place,calls_credit,calls_appointment,calls_ratio,calls_order,calls_out_of_turn,calls_resume"
)


@dataclass
class Served:
    client: httpx.AsyncClient
    state: dict[str, Any]
    config: HallConfig

    @property
    def base(self) -> str:
        return f"/api/v1/halls/{self.config.id}"

    @property
    def sweeper(self) -> Sweeper:
        sweeper = self.state["sweeper"]
        assert isinstance(sweeper, Sweeper)
        return sweeper

    async def post(self, path: str, role: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
        response = await self.client.post(self.base + path, headers=headers, **kwargs)
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    async def report(self, day: str, role: str = "manager") -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
        return await self.client.get(f"{self.base}/reports/{day}.csv", headers=headers)

    async def audit(self, day: str, role: str = "manager") -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
        return await self.client.get(f"{self.base}/reports/{day}-audit.csv", headers=headers)

    @property
    def hall(self) -> Hall:
        hall = self.state["halls"][self.config.id]
        assert isinstance(hall, Hall)
        return hall


@contextlib.asynccontextmanager
async def serving(
    config: HallConfig,
    redis_url: str,
    clock: Clock,
    archive_url: str | None,
    archive_interval_s: float = 3600.0,
) -> AsyncIterator[Served]:
    """The whole app, lifespan run, as tests/conftest.py's `api_client`, with an archive."""
    app = create_app(
        [config],
        redis_url,
        clock=clock,
        metrics_interval_s=3600,
        archive_url=archive_url,
        archive_interval_s=archive_interval_s,
    )
    async with app.router.lifespan_context(app) as state:
        lifespan_state = dict(state or {})

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(lifespan_state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qms.test") as client:
            yield Served(client, lifespan_state, config)


async def first_round(served: Served) -> None:
    await asyncio.wait_for(served.sweeper.wait_rounds(1), timeout=30)


REASON_COLUMNS = 7
"""calls_place … calls_resume, the report's last columns (`reason_counts`)."""


def csv_lines(response: httpx.Response) -> list[str]:
    """The CSV's lines up to the calls by reason (checked by `reason_counts`)."""
    assert response.content.startswith(b"\xef\xbb\xbf")
    lines = response.content[3:].decode("utf-8").split("\r\n")
    assert lines[0] == HEADER
    assert lines[-1] == ""
    return [line.rsplit(",", REASON_COLUMNS)[0] for line in lines[1:-1]]


def reason_counts(response: httpx.Response, line: int = 0) -> list[int]:
    """The calls by reason of one line (0: the hall's)."""
    rows = response.content[3:].decode("utf-8").split("\r\n")[1:-1]
    return [int(n) for n in rows[line].split(",")[-REASON_COLUMNS:]]


@pytest.fixture
async def report_hall(tmp_path: Path, redis: RedisClient) -> AsyncIterator[HallConfig]:
    """A hall of its own with targets and clerks' names; its keys deleted afterwards."""
    config = load_hall_config(write_report_hall(tmp_path))
    yield config
    await delete_hall(redis, HallKeys(config.id))


# ------------------------------------------------------------------ the sweep


async def _yesterday_and_today(store: HallStore, clock: Clock) -> dict[str, str]:
    """2026-11-21: a completed, a cancelled, a called and a waiting ticket;
    then 2026-11-22: one completed. Ticket ids by what became of them."""
    ids: dict[str, str] = {}
    await store.set_window("2", WindowStatus.OPEN)
    for name in ("completed", "called", "cancelled", "waiting"):
        ids[name] = (await store.issue("social-security")).value.ticket.id
        clock.advance(minutes=1)
    await store.call_next("2")
    await store.complete("2")
    await store.call_next("2")  # still at the window when the day ends
    await store.cancel(ids["cancelled"])
    clock.advance(minutes=24 * 60)
    await store.set_window("3", WindowStatus.OPEN)
    ids["today"] = (await store.issue("business-licence")).value.ticket.id
    await store.call_next("3")
    await store.complete("3")
    return ids


async def test_the_sweep_at_start_moves_finished_tickets_of_past_days(
    hall_factory: HallFactory, redis: RedisClient, redis_url: str, tmp_path: Path
) -> None:
    hall = await hall_factory()
    ids = await _yesterday_and_today(hall.store, hall.clock)
    url = f"sqlite:///{tmp_path}/archive.db"

    async with serving(hall.config, redis_url, hall.clock, url) as served:
        await first_round(served)
        left = set(await redis.hkeys(hall.keys.tickets))

    # Yesterday's day ended before qms served (its keeper ran first): what
    # waited expired, what was still called was finished at midnight, and
    # all of it is archived and gone from Redis. Today's ticket stays.
    assert left == {ids["today"]}
    archive = open_archive(url)
    try:
        archived = {t.id: t.status.value for t in archive.day(hall.config.id, "2026-11-21")}
    finally:
        archive.close()
    assert archived == {
        ids["completed"]: "completed",
        ids["cancelled"]: "cancelled",
        ids["called"]: "completed",
        ids["waiting"]: "expired",
    }


async def test_no_archive_url_no_sweep_and_no_file(
    hall_factory: HallFactory, redis: RedisClient, redis_url: str, tmp_path: Path
) -> None:
    hall = await hall_factory()
    await _yesterday_and_today(hall.store, hall.clock)
    before = set(await redis.hkeys(hall.keys.tickets))
    async with serving(hall.config, redis_url, hall.clock, None) as served:
        assert served.state["sweeper"] is None
        assert (await served.report("2026-11-21")).status_code == 200  # Redis alone
    # yesterday's leftovers expired, but every ticket is still in Redis
    assert set(await redis.hkeys(hall.keys.tickets)) == before
    assert await asyncio.to_thread(lambda: list(tmp_path.glob("**/*.db"))) == []


async def test_a_failed_round_is_one_log_line_and_the_next_round_retries(
    hall_factory: HallFactory,
    redis: RedisClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hall = await hall_factory()
    ids = await _yesterday_and_today(hall.store, hall.clock)
    down = ArchiveHandle(f"postgresql://qms@127.0.0.1:{free_port()}/qms")
    dead_redis = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=3.0)
    other = load_hall_config(write_report_hall(tmp_path))
    try:
        with caplog.at_level(logging.WARNING, logger="qms.archive"):
            # A hall whose Redis is down, then this one, with the database down.
            moved = await sweep_once([(other, dead_redis), (hall.config, redis)], down, hall.clock)
        assert moved == 0
        failures = [r.getMessage() for r in caplog.records if r.name == "qms.archive"]
        assert len(failures) == 2, failures
        assert failures[0].startswith(f"qms: archiving hall {other.id} failed, next try")
        assert failures[1].startswith(f"qms: archiving hall {hall.config.id} failed, next try")
        assert all("\n" not in f for f in failures)
        assert await redis.hexists(hall.keys.tickets, ids["completed"])

        # The database is back (here: another archive): the next round moves them.
        archive = ArchiveHandle(f"sqlite:///{tmp_path}/archive.db")
        try:
            assert await sweep_once([(hall.config, redis)], archive, hall.clock) == 2
        finally:
            archive.close()
        assert not await redis.hexists(hall.keys.tickets, ids["completed"])
    finally:
        down.close()
        await dead_redis.aclose()


async def test_the_sweep_runs_again_every_interval(
    hall_factory: HallFactory, redis: RedisClient, redis_url: str, tmp_path: Path
) -> None:
    hall = await hall_factory()
    url = f"sqlite:///{tmp_path}/archive.db"
    async with serving(hall.config, redis_url, hall.clock, url, archive_interval_s=1) as served:
        await first_round(served)
        # A ticket finished after the first round, on a day that then ends.
        await hall.store.set_window("2", WindowStatus.OPEN)
        done = (await hall.store.issue("social-security")).value.ticket.id
        await hall.store.call_next("2")
        await hall.store.complete("2")
        hall.clock.advance(minutes=24 * 60)
        # +2: a round under way while the clock moved may have missed it.
        rounds = served.sweeper.rounds
        await asyncio.wait_for(served.sweeper.wait_rounds(rounds + 2), timeout=30)
        assert not await redis.hexists(hall.keys.tickets, done)


# ------------------------------------------------------------- the download


async def _a_day_at_the_hall(served: Served, clock: Clock) -> dict[str, str]:
    """2026-11-21 through the API. Minutes after 09:00:

    A001 social-security: issued 0, called 5 at window 1 by clerk-1, done 15, very satisfied
    A002 social-security: issued 1, called 5 at window 2 by clerk-2, no-show at 15
    C001 business-licence: issued 2, called 20 at window 1 by clerk-1 (18 > 15: breach), done 25
    C002 business-licence: issued 3, still waiting at the end of the day
    """
    numbers: dict[str, str] = {}
    await served.post("/windows/1/open", "clerk")
    await served.post("/windows/2/open", "clerk2")
    for number in ("A001", "A002", "C001", "C002"):
        service = "social-security" if number[0] == "A" else "business-licence"
        ticket = await served.post("/tickets", "kiosk", json={"service": service})
        assert ticket["number"] == number
        numbers[number] = ticket["id"]
        clock.advance(minutes=1)
    clock.advance(minutes=1)  # 09:05
    assert (await served.post("/windows/1/call-next", "clerk"))["number"] == "A001"
    assert (await served.post("/windows/2/call-next", "clerk2"))["number"] == "A002"
    clock.advance(minutes=10)  # 09:15
    await served.post("/windows/1/complete", "clerk")
    await served.post("/windows/2/no-show", "clerk2")
    await served.post(f"/tickets/{numbers['A001']}/rating", "", json={"score": "very_satisfied"})
    clock.advance(minutes=5)  # 09:20
    assert (await served.post("/windows/1/call-next", "clerk"))["number"] == "C001"
    clock.advance(minutes=5)  # 09:25
    await served.post("/windows/1/complete", "clerk")
    return numbers


async def test_download_merges_the_archive_and_redis(
    report_hall: HallConfig, redis: RedisClient, redis_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    url = f"sqlite:///{tmp_path}/archive.db"
    hid = report_hall.id
    async with serving(report_hall, redis_url, clock, url) as served:
        numbers = await _a_day_at_the_hall(served, clock)
        clock.advance(minutes=24 * 60)  # 2026-11-22 09:25
        halls = [(report_hall, redis)]
        assert await sweep_once(halls, served.state["archive"], clock) == 3
        # C002, issued yesterday, was still waiting: it gives up this morning,
        # and its line comes from Redis while the others come from the archive.
        await served.post(f"/tickets/{numbers['C002']}/cancel", "")
        # Today's first visitor, served at window 2 by clerk-2.
        await served.post("/tickets", "kiosk", json={"service": "social-security"})
        clock.advance(minutes=2)
        await served.post("/windows/2/call-next", "clerk2")
        clock.advance(minutes=3)
        await served.post("/windows/2/complete", "clerk2")
        await served.post("/tickets", "kiosk", json={"service": "household"})  # waits on

        yesterday = await served.report("2026-11-21", role="admin")
        today = await served.report("2026-11-22")

    assert yesterday.status_code == 200, yesterday.text
    assert yesterday.headers["content-type"] == "text/csv; charset=utf-8"
    assert yesterday.headers["content-disposition"] == (
        f'attachment; filename="{hid}-2026-11-21.csv"'
    )
    lines = csv_lines(yesterday)
    day = f"{hid},2026-11-21"
    # Waits 5, 4, 18; service 10 and 5; breaches C001 (18 > 15) and C002 (gave
    # up after a night); targets from the config: 10 and 15 minutes.
    # Three were called, each in turn.
    assert reason_counts(yesterday) == [3, 0, 0, 0, 0, 0, 0]
    assert lines[:6] == [
        f"{day},hall,{hid},测试政务服务中心,4,2,1,1,0,9.0,18.0,7.5,2,,1,1.000,1,0,0,0,0",
        f"{day},service,business-licence,营业执照,2,1,0,1,0,18.0,18.0,5.0,2,15,0,,0,0,0,0,0",
        f"{day},service,social-security,社保医保,2,1,1,0,0,4.5,5.0,10.0,0,10,1,1.000,1,0,0,0,0",
        f"{day},window,1,1号窗口,2,2,0,0,0,11.5,18.0,7.5,1,,1,1.000,1,0,0,0,0",
        f"{day},window,2,2号窗口,1,0,1,0,0,4.0,4.0,,0,,0,,0,0,0,0,0",
        f"{day},window,,,1,0,0,1,0,,,,1,,0,,0,0,0,0,0",
    ]
    # Per clerk: needs the scripts to record the clerk on the ticket. A named
    # credential's label is its name, so that is the key (and the label).
    assert lines[6:] == [
        f"{day},clerk,张三,张三,1,0,1,0,0,4.0,4.0,,0,,0,,0,0,0,0,0",
        f"{day},clerk,李四,李四,2,2,0,0,0,11.5,18.0,7.5,1,,1,1.000,1,0,0,0,0",
        f"{day},clerk,,,1,0,0,1,0,,,,1,,0,,0,0,0,0,0",
    ]
    # No hash of a token in the report: not the credential ids tickets once carried.
    ids = [c.digest_id for c in report_hall.credentials] + [clerk_id(report_hall, "张三")]
    assert not [i for i in ids if i in yesterday.text or i.split(":")[1] in yesterday.text]

    assert today.status_code == 200, today.text
    assert today.headers["content-disposition"] == f'attachment; filename="{hid}-2026-11-22.csv"'
    day = f"{hid},2026-11-22"
    measures = "1,1,0,0,0,2.0,2.0,3.0,0,,0,,0,0,0,0,0"
    assert csv_lines(today) == [
        f"{day},hall,{hid},测试政务服务中心,{measures}",
        f"{day},service,social-security,社保医保,1,1,0,0,0,2.0,2.0,3.0,0,10,0,,0,0,0,0,0",
        f"{day},window,2,2号窗口,{measures}",
        f"{day},clerk,张三,张三,{measures}",
    ]


async def test_the_clerk_flows_from_the_ticket_to_the_archive(
    report_hall: HallConfig, redis: RedisClient, redis_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    url = f"sqlite:///{tmp_path}/archive.db"
    async with serving(report_hall, redis_url, clock, url) as served:
        numbers = await _a_day_at_the_hall(served, clock)
        clock.advance(minutes=24 * 60)
        assert await sweep_once([(report_hall, redis)], served.state["archive"], clock) == 3
    archive = open_archive(url)
    try:
        clerks = {t.number: t.clerk for t in archive.day(report_hall.id, "2026-11-21")}
    finally:
        archive.close()
    assert numbers.keys() >= clerks.keys()
    # The credential's name (its audit label), not its id: a token's hash never leaves.
    assert clerks == {"A001": "李四", "A002": "张三", "C001": "李四"}


async def test_an_empty_day_is_the_header_and_the_hall_line(
    report_hall: HallConfig, redis_url: str
) -> None:
    async with serving(report_hall, redis_url, Clock(), None) as served:
        response = await served.report("2026-01-05", role="admin")
    assert response.status_code == 200
    hid = report_hall.id
    assert csv_lines(response) == [
        f"{hid},2026-01-05,hall,{hid},测试政务服务中心,0,0,0,0,0,,,,0,,0,,0,0,0,0,0"
    ]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("role", "day", "status", "code"),
    [
        ("", "2026-11-21", 401, "unauthorized"),
        ("wrong", "2026-11-21", 401, "unauthorized"),
        ("kiosk", "2026-11-21", 403, "forbidden"),
        ("clerk", "2026-11-21", 403, "forbidden"),
        ("display", "2026-11-21", 403, "forbidden"),
        ("manager", "2026-11-31", 422, "invalid_day"),
        ("manager", "20261121", 422, "invalid_day"),
        ("admin", "yesterday", 422, "invalid_day"),
    ],
)
async def test_download_refusals(
    report_hall: HallConfig, redis_url: str, role: str, day: str, status: int, code: str
) -> None:
    token = {"wrong": "not-a-token"}.get(role, TOKENS.get(role, ""))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with serving(report_hall, redis_url, Clock(), None) as served:
        response = await served.client.get(f"{served.base}/reports/{day}.csv", headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_download_of_an_unknown_hall(report_hall: HallConfig, redis_url: str) -> None:
    async with serving(report_hall, redis_url, Clock(), None) as served:
        response = await served.client.get(
            "/api/v1/halls/no-such-hall/reports/2026-11-21.csv",
            headers={"Authorization": f"Bearer {TOKENS['manager']}"},
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "hall_not_found"


async def test_download_when_the_archive_is_down_is_503(
    report_hall: HallConfig, redis_url: str
) -> None:
    url = f"postgresql://qms:s3cret@127.0.0.1:{free_port()}/qms?connect_timeout=3"
    async with serving(report_hall, redis_url, Clock(), url) as served:
        await first_round(served)  # logged, not raised
        response = await served.report("2026-11-21")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "archive_unavailable"


# ---------------------------------------------------- the audit trail download

AUDIT_HEADER = "at,actor,role,action,window,number,client"


def audit_lines(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.content.startswith(b"\xef\xbb\xbf")
    lines = response.content[3:].decode("utf-8").split("\r\n")
    assert lines[0] == AUDIT_HEADER
    assert lines[-1] == ""
    return lines[1:-1]


async def test_audit_download_merges_the_archive_and_redis(
    report_hall: HallConfig, redis: RedisClient, redis_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    url = f"sqlite:///{tmp_path}/archive.db"
    hid = report_hall.id
    keys = HallKeys(hid)
    async with serving(report_hall, redis_url, clock, url) as served:
        await _a_day_at_the_hall(served, clock)
        clock.advance(minutes=24 * 60)  # 2026-11-22 09:25
        assert await sweep_once([(report_hall, redis)], served.state["archive"], clock) == 3
        # Yesterday's entries leave Redis, as the trim does three days on:
        # the archive alone has them now.
        await redis.xtrim(keys.audit, minid=f"{NINE_MS + 86_400_000}-0")
        assert await redis.xlen(keys.audit) == 0

        # Today: the manager pauses window 1, the sweep copies that, then
        # window 2 serves today's first visitor (only in Redis).
        await served.post("/windows/1/pause", "manager")
        await sweep_once([(report_hall, redis)], served.state["archive"], clock)
        await served.post("/tickets", "kiosk", json={"service": "social-security"})
        clock.advance(minutes=2)
        await served.post("/windows/2/call-next", "clerk2")
        manager = next(c for c in report_hall.credentials if c.role.value == "manager")
        manager_label = served.hall.credentials.label(manager)

        yesterday = await served.audit("2026-11-21")
        today = await served.audit("2026-11-22", role="admin")
        empty = await served.audit("2026-11-20")

    assert yesterday.headers["content-disposition"] == (
        f'attachment; filename="{hid}-2026-11-21-audit.csv"'
    )
    client = "127.0.0.1"  # httpx's ASGI transport
    assert audit_lines(yesterday) == [
        f"2026-11-21T09:00:00.000+08:00,李四,clerk,open_window,1,,{client}",
        f"2026-11-21T09:00:00.000+08:00,张三,clerk,open_window,2,,{client}",
        f"2026-11-21T09:05:00.000+08:00,李四,clerk,call_next,1,A001,{client}",
        f"2026-11-21T09:05:00.000+08:00,张三,clerk,call_next,2,A002,{client}",
        f"2026-11-21T09:15:00.000+08:00,李四,clerk,complete,1,A001,{client}",
        f"2026-11-21T09:15:00.000+08:00,张三,clerk,no_show,2,A002,{client}",
        f"2026-11-21T09:20:00.000+08:00,李四,clerk,call_next,1,C001,{client}",
        f"2026-11-21T09:25:00.000+08:00,李四,clerk,complete,1,C001,{client}",
    ]
    # An unnamed credential: its role and a keyed short id, never its token's hash.
    assert re.fullmatch(r"manager-[0-9a-f]{8}", manager_label)
    assert manager_label[-8:] not in manager.token_sha256
    assert today.headers["content-disposition"] == (
        f'attachment; filename="{hid}-2026-11-22-audit.csv"'
    )
    assert audit_lines(today) == [
        f"2026-11-22T09:25:00.000+08:00,{manager_label},manager,pause_window,1,,{client}",
        f"2026-11-22T09:27:00.000+08:00,张三,clerk,call_next,2,A001,{client}",
    ]
    assert audit_lines(empty) == []


@pytest.mark.parametrize(
    ("role", "day", "status", "code"),
    [
        ("", "2026-11-21", 401, "unauthorized"),
        ("wrong", "2026-11-21", 401, "unauthorized"),
        ("kiosk", "2026-11-21", 403, "forbidden"),
        ("clerk", "2026-11-21", 403, "forbidden"),
        ("display", "2026-11-21", 403, "forbidden"),
        ("manager", "2026-11-31", 422, "invalid_day"),
        ("admin", "today", 422, "invalid_day"),
    ],
)
async def test_audit_download_refusals(
    report_hall: HallConfig, redis_url: str, role: str, day: str, status: int, code: str
) -> None:
    token = {"wrong": "not-a-token"}.get(role, TOKENS.get(role, ""))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with serving(report_hall, redis_url, Clock(), None) as served:
        path = f"{served.base}/reports/{day}-audit.csv"
        response = await served.client.get(path, headers=headers)
        unknown = await served.client.get(
            "/api/v1/halls/no-such-hall/reports/2026-11-21-audit.csv",
            headers={"Authorization": f"Bearer {TOKENS['manager']}"},
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "hall_not_found"


async def test_audit_download_when_the_archive_is_down_is_503(
    report_hall: HallConfig, redis_url: str
) -> None:
    url = f"postgresql://qms:s3cret@127.0.0.1:{free_port()}/qms?connect_timeout=3"
    async with serving(report_hall, redis_url, Clock(), url) as served:
        await first_round(served)  # logged, not raised
        response = await served.audit("2026-11-21")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "archive_unavailable"
