"""`qms report` as a user runs it: the hand-computed day of tests/test_report.py
put into a real archive, the CSV checked line by line, and every usage or
runtime error as one line with the right exit code."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from queue_core.archive import ArchivedAudit, ArchivedTicket, open_archive
from queue_core.archive.redis_sweep import archive_audit, finished_tickets
from queue_core.config import HallConfig, load_hall_config
from queue_core.models import Actor, Rating, WindowStatus
from queue_core.redis_client import RedisClient, create_sync_redis
from tests.conftest import HallFactory
from tests.support import write_hall
from tests.test_archive import _postgres_schema
from tests.test_cli import (
    QMS,
    assert_one_clean_line,
    bearer,
    free_port,
    qms_env,
    run_qms,
    running_qms,
    wait_until,
)
from tests.test_report import DAY, DAY_TICKETS, EXPECTED_CSV, HALL, NINE_MS, NOISE

pytestmark = pytest.mark.slow  # every test here runs `python -m qms`

SHANGHAI = ZoneInfo("Asia/Shanghai")


def write_report_hall(directory: Path, hall: str | None = None) -> Path:
    """The test hall with what reports take from a config: service targets
    (social-security 10 min, business-licence 15), clerks' names (clerk-1
    李四, clerk-2 张三) and a window 10 (the hand-computed day uses it)."""
    path = write_hall(directory, hall=hall)
    text = path.read_text(encoding="utf-8")
    for old, new in [
        ("expected_minutes = 8\n", "expected_minutes = 8\ntarget_minutes = 10\n"),
        ("expected_minutes = 12\n", "expected_minutes = 12\ntarget_minutes = 15\n"),
        ('token = "clerk-1-token"\n', 'token = "clerk-1-token"\nname = "李四"\n'),
        ('token = "clerk-2-token"\n', 'token = "clerk-2-token"\nname = "张三"\n'),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    text += '\n[[window]]\nid = "10"\nname = "10号窗口"\ngroups = ["police"]\n'
    path.write_text(text, encoding="utf-8")
    return path


def clerk_id(config: HallConfig, token_name: str) -> str:
    """The credential id (`Credential.digest_id`) of a named clerk: what
    archived tickets held as their clerk before the audit label replaced it."""
    [credential] = [c for c in config.credentials if c.name == token_name]
    return credential.digest_id


def run_report(
    *args: object, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`qms report ARGS`, output as bytes: the CSV's BOM and CRLFs must survive."""
    return subprocess.run(
        [*QMS, "report", *map(str, args)],
        cwd=cwd,
        env=env if env is not None else qms_env(),
        capture_output=True,
        timeout=30,
    )


def expected_csv(config: HallConfig) -> bytes:
    """tests/test_report.py's CSV, its two clerks now real credentials with
    names: archived with their credential ids (`day_tickets`), reported by
    name, never by the id (a hash of the token)."""
    text = EXPECTED_CSV.replace("clerk,clerk:aaa,,", "clerk,张三,张三,")
    text = text.replace("clerk,clerk:bbb,,", "clerk,李四,李四,")
    for name in ("张三", "李四"):
        assert clerk_id(config, name).split(":")[1] not in text
    return b"\xef\xbb\xbf" + text.encode("utf-8")


def day_tickets(config: HallConfig) -> list[ArchivedTicket]:
    clerks = {"clerk:aaa": clerk_id(config, "张三"), "clerk:bbb": clerk_id(config, "李四")}
    return [
        dataclasses.replace(t, clerk=clerks.get(t.clerk or "", t.clerk))
        for t in DAY_TICKETS + NOISE
    ]


def fill_archive(url: str, tickets: list[ArchivedTicket]) -> None:
    archive = open_archive(url)
    try:
        archive.put(tickets)
    finally:
        archive.close()


@pytest.fixture
def hall_h1(tmp_path: Path) -> tuple[Path, HallConfig]:
    """Hall `h1` of the hand-computed day (no Redis involved: the id may repeat)."""
    path = write_report_hall(tmp_path, hall=HALL)
    return path, load_hall_config(path)


def assert_csv_lines(actual: bytes, expected: bytes) -> None:
    """Line by line first (a readable diff), then byte for byte."""
    assert actual.split(b"\r\n") == expected.split(b"\r\n")
    assert actual == expected


# ------------------------------------------------------------- the report


def test_report_of_an_archived_day_from_the_default_archive(
    tmp_path: Path, hall_h1: tuple[Path, HallConfig]
) -> None:
    path, config = hall_h1
    data_dir = tmp_path / "data"
    fill_archive(f"sqlite:///{data_dir}/archive.db", day_tickets(config))
    result = run_report("--config", path, "--date", DAY, "--data-dir", data_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert_csv_lines(result.stdout, expected_csv(config))


def test_report_to_a_file_from_qms_archive_url(
    tmp_path: Path, hall_h1: tuple[Path, HallConfig]
) -> None:
    path, config = hall_h1
    url = f"sqlite:///{tmp_path}/elsewhere/reports.db"
    fill_archive(url, day_tickets(config))
    out = tmp_path / "h1.csv"
    env = qms_env() | {"QMS_ARCHIVE_URL": url}
    result = run_report("--config", path, "--date", DAY, "--out", out, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert (result.stdout, result.stderr) == (b"", b"")
    assert_csv_lines(out.read_bytes(), expected_csv(config))
    assert not (tmp_path / ".qms-data").exists()  # the default archive was not touched


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_schema()


def test_report_from_postgresql(
    tmp_path: Path, hall_h1: tuple[Path, HallConfig], postgres_url: str
) -> None:
    path, config = hall_h1
    fill_archive(postgres_url, day_tickets(config))
    env = qms_env() | {"QMS_ARCHIVE_URL": postgres_url}
    result = run_report("--config", path, "--hall", HALL, "--date", DAY, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert_csv_lines(result.stdout, expected_csv(config))


def test_report_of_yesterday(tmp_path: Path, hall_h1: tuple[Path, HallConfig]) -> None:
    path, _ = hall_h1
    data_dir = tmp_path / "data"
    fill_archive(f"sqlite:///{data_dir}/archive.db", [])
    before = datetime.now(SHANGHAI).date() - timedelta(days=1)
    result = run_report("--config", path, "--date", "yesterday", "--data-dir", data_dir,
                        cwd=tmp_path)  # fmt: skip
    after = datetime.now(SHANGHAI).date() - timedelta(days=1)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode("utf-8-sig").split("\r\n")
    days = {f"{HALL},{d.isoformat()},hall,{HALL},测试政务服务中心," for d in (before, after)}
    assert any(lines[1].startswith(prefix) for prefix in days), lines
    assert lines[2:] == [""]


@pytest.mark.redis
async def test_report_merges_the_days_tickets_still_in_redis(
    tmp_path: Path, hall_factory: HallFactory, redis: RedisClient, redis_url: str
) -> None:
    """Archived, in Redis, and in both (the Redis copy, rated since, wins)."""
    hall = await hall_factory()
    store, clock = hall.store, hall.clock
    await store.set_window("2", WindowStatus.OPEN)
    first = (await store.issue("social-security")).value.ticket  # 09:00
    clock.advance(minutes=2)
    second = (await store.issue("social-security")).value.ticket  # 09:02
    clock.advance(minutes=3)
    await store.call_next("2")  # first, waited 5
    clock.advance(minutes=6)
    await store.complete("2")  # served 6
    await store.call_next("2")  # second, waited 9
    clock.advance(minutes=4)
    await store.complete("2")  # served 4
    await store.rate(second.id, Rating.VERY_SATISFIED, None)
    url = f"sqlite:///{tmp_path}/archive.db"
    archive = open_archive(url)
    try:
        both = await finished_tickets(redis, hall.config, clock_day(clock.now))
        by_id = {t.id: t for t in both}
        # The second ticket as archived before its rating; the first only in the archive
        # (deleted from Redis as a sweep would), plus one ticket never in Redis.
        archive.put([dataclasses.replace(by_id[second.id], rating=None, rated_ms=None)])
        archive.put([by_id[first.id]])
        await redis.hdel(hall.keys.tickets, first.id)
        only_archived = dataclasses.replace(
            by_id[first.id], id="archived-only", number="A099", rating=Rating.NEUTRAL.value
        )
        archive.put([only_archived])
    finally:
        archive.close()

    env = qms_env(redis_url) | {"QMS_ARCHIVE_URL": url}
    config_path = Path(hall.config.source)
    result = await asyncio.to_thread(
        run_report, "--config", config_path, "--date", "2026-11-21", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode("utf-8-sig").split("\r\n")
    hid = hall.config.id
    # Three tickets: waits 5, 9 and 5 (the copy of the first); served 6, 4, 6;
    # ratings: very_satisfied (Redis's copy of the second) and neutral.
    # All three called in turn (calls_place).
    measures = "3,3,0,0,0,6.3,9.0,5.3,0,,2,0.500,1,0,1,0,0,3,0,0,0,0,0,0"
    assert lines[1] == f"{hid},2026-11-21,hall,{hid},测试政务服务中心,{measures}"
    assert lines[2] == f"{hid},2026-11-21,service,social-security,社保医保,{measures}"
    assert lines[3] == f"{hid},2026-11-21,window,2,2号窗口,{measures}"
    # Redis was only read.
    assert await redis.hexists(hall.keys.tickets, second.id)


def clock_day(now_s: float) -> date:
    return datetime.fromtimestamp(now_s, SHANGHAI).date()


AUDIT_HEADER = b"\xef\xbb\xbfat,actor,role,action,window,number,client"


@pytest.mark.redis
async def test_audit_report_merges_the_archive_and_redis(
    tmp_path: Path, hall_factory: HallFactory, redis: RedisClient, redis_url: str
) -> None:
    """2026-11-21's audit trail: an entry only in the archive (trimmed from
    Redis), one in both, two only in Redis; other days' entries left out."""
    hall = await hall_factory()
    store, clock = hall.store, hall.clock
    clerk = Actor("李四", "clerk", "10.0.0.5")
    await store.issue("social-security")  # a kiosk's: no entry
    await store.set_window("2", WindowStatus.OPEN, actor=clerk)  # 09:00
    await store.call_next("2", actor=clerk)
    url = f"sqlite:///{tmp_path}/archive.db"
    archive = open_archive(url)
    try:
        assert await archive_audit(redis, hall.config, archive) == 2
        yesterday = ArchivedAudit(hall.config.id, "2026-11-20", f"{NINE_MS - 86_400_000}-0",
                                  NINE_MS - 86_400_000, "李四", "clerk", "open_window", "2",
                                  None, "10.0.0.5")  # fmt: skip
        archive.put_audit([yesterday])
    finally:
        archive.close()
    [opened, _] = await store.audit(None, 10)
    await redis.xdel(hall.keys.audit, opened.id)  # as the trim would, three days on
    clock.advance(minutes=5)
    await store.complete("2", actor=clerk)  # 09:05
    clock.advance(minutes=1)
    await store.set_window("2", WindowStatus.CLOSED, actor=Actor("admin-1a2b3c4d", "admin", "::1"))
    clock.advance(minutes=24 * 60)
    await store.set_window("2", WindowStatus.OPEN, actor=clerk)  # the next day

    out = tmp_path / "audit.csv"
    env = qms_env(redis_url) | {"QMS_ARCHIVE_URL": url}
    args = ["--config", hall.config.source, "--date", "2026-11-21", "--audit", "--out", out]
    result = await asyncio.to_thread(run_report, *args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert (result.stdout, result.stderr) == (b"", b"")
    assert_csv_lines(
        out.read_bytes(),
        b"\r\n".join(
            [
                AUDIT_HEADER,
                "2026-11-21T09:00:00.000+08:00,李四,clerk,open_window,2,,10.0.0.5".encode(),
                "2026-11-21T09:00:00.000+08:00,李四,clerk,call_next,2,A001,10.0.0.5".encode(),
                "2026-11-21T09:05:00.000+08:00,李四,clerk,complete,2,A001,10.0.0.5".encode(),
                b"2026-11-21T09:06:00.000+08:00,admin-1a2b3c4d,admin,close_window,2,,::1",
                b"",
            ]
        ),
    )


def test_audit_report_from_postgresql(
    tmp_path: Path, hall_h1: tuple[Path, HallConfig], postgres_url: str
) -> None:
    path, _ = hall_h1
    archive = open_archive(postgres_url)
    try:
        archive.put_audit(
            [
                ArchivedAudit(HALL, DAY, f"{NINE_MS + 60_000}-0", NINE_MS + 60_000, "张三",
                              "clerk", "no_show", "10", "C002", "10.0.0.6"),
                ArchivedAudit(HALL, DAY, f"{NINE_MS}-1", NINE_MS, "王主任", "manager",
                              "open_hall", None, None, "10.0.0.9"),
            ]
        )  # fmt: skip
    finally:
        archive.close()
    env = qms_env() | {"QMS_ARCHIVE_URL": postgres_url}
    result = run_report("--config", path, "--date", DAY, "--audit", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert_csv_lines(
        result.stdout,
        b"\r\n".join(
            [
                AUDIT_HEADER,
                "2026-11-21T09:00:00.000+08:00,王主任,manager,open_hall,,,10.0.0.9".encode(),
                "2026-11-21T09:01:00.000+08:00,张三,clerk,no_show,10,C002,10.0.0.6".encode(),
                b"",
            ]
        ),
    )


# ---------------------------------------------------------------- errors


def test_a_bad_date_is_a_usage_error(tmp_path: Path, hall_h1: tuple[Path, HallConfig]) -> None:
    path, _ = hall_h1
    for bad in ("2026-11-31", "20261121", "21.11.2026", "tomorrow"):
        result = run_qms("report", "--config", path, "--date", bad, cwd=tmp_path)
        line = assert_one_clean_line(result)
        assert result.returncode == 2
        assert line == (
            f"qms: --date {bad!r} is not a day: "
            "use YYYY-MM-DD (e.g. 2026-11-21), today or yesterday"
        )
        assert result.stdout == ""


def test_an_unknown_hall_is_a_usage_error(tmp_path: Path, hall_h1: tuple[Path, HallConfig]) -> None:
    path, _ = hall_h1
    result = run_qms("report", "--config", path, "--hall", "nope", "--date", DAY, cwd=tmp_path)
    line = assert_one_clean_line(result)
    assert line == f"qms: no hall 'nope' in the configs given (halls: {HALL})"
    assert result.returncode == 2


def test_two_configs_need_hall(tmp_path: Path, hall_h1: tuple[Path, HallConfig]) -> None:
    path, _ = hall_h1
    other = write_hall(tmp_path, hall="h2")
    result = run_qms("report", "--config", path, "--config", other, "--date", DAY, cwd=tmp_path)
    line = assert_one_clean_line(result)
    assert line == f"qms: the configs hold several halls ({HALL}, h2): name one with --hall"
    assert result.returncode == 2


def test_no_archive_and_no_redis_is_an_error(
    tmp_path: Path, hall_h1: tuple[Path, HallConfig]
) -> None:
    path, _ = hall_h1
    result = run_qms("report", "--config", path, "--date", DAY, cwd=tmp_path)
    line = assert_one_clean_line(result)
    assert result.returncode == 1
    assert line.startswith("qms: no archive at .qms-data/archive.db and QMS_REDIS_URL is unset")
    assert not (tmp_path / ".qms-data").exists()  # a report never creates an archive


def test_an_unreadable_archive_is_a_runtime_error(
    tmp_path: Path, hall_h1: tuple[Path, HallConfig]
) -> None:
    path, _ = hall_h1
    garbage = tmp_path / "data" / "archive.db"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a database, just some text " * 100)
    result = run_qms("report", "--config", path, "--date", DAY, "--data-dir", garbage.parent,
                     cwd=tmp_path)  # fmt: skip
    line = assert_one_clean_line(result)
    assert result.returncode == 1
    assert line == f"qms: cannot read the archive at sqlite:///{garbage}: file is not a database"


def test_an_unreachable_postgresql_is_a_runtime_error_without_its_password(
    tmp_path: Path, hall_h1: tuple[Path, HallConfig]
) -> None:
    path, _ = hall_h1
    url = f"postgresql://qms:s3cret-pw@127.0.0.1:{free_port()}/reports?connect_timeout=3"
    env = qms_env() | {"QMS_ARCHIVE_URL": url}
    result = run_qms("report", "--config", path, "--date", DAY, cwd=tmp_path, env=env)
    line = assert_one_clean_line(result)
    assert result.returncode == 1
    assert line.startswith("qms: cannot read the archive at postgresql://qms:***@127.0.0.1:")
    assert "s3cret-pw" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (
            "QMS_ARCHIVE_URL",
            "mysql://db/qms",
            "QMS_ARCHIVE_URL='mysql://db/qms' is not an archive URL: "
            "use sqlite:///path/to.db or postgresql://user@host/db",
        ),
        (
            "QMS_ARCHIVE_URL",
            "sqlite:///:memory:",
            "QMS_ARCHIVE_URL='sqlite:///:memory:' would lose the archive at exit",
        ),
        (
            "QMS_ARCHIVE_URL",
            "postgresql://u:pw@db:port/qms",
            "QMS_ARCHIVE_URL='postgresql://u:***@db:port/qms' has a port that is not a number",
        ),
        ("QMS_ARCHIVE_INTERVAL", "0", "QMS_ARCHIVE_INTERVAL='0' must be at least 1"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "report"])
def test_a_bad_archive_setting_is_one_clean_line(
    tmp_path: Path, name: str, value: str, says: str, command: str
) -> None:
    env = qms_env() | {name: value}
    args = ["--port", free_port()] if command == "serve" else ["--date", DAY]
    result = run_qms(command, "--config", write_hall(tmp_path), *args, cwd=tmp_path, env=env)
    assert assert_one_clean_line(result) == f"qms: {says}"
    assert result.returncode == 1


# ------------------------------------------------------------ qms serve


@pytest.mark.redis
async def test_serve_sweeps_past_days_into_the_default_archive_and_serves_the_csv(
    tmp_path: Path, hall_factory: HallFactory, redis: RedisClient, redis_url: str
) -> None:
    hall = await hall_factory()
    hall.clock.now = time.time() - 2 * 86_400  # the day before yesterday
    day = clock_day(hall.clock.now).isoformat()
    await hall.store.set_window("2", WindowStatus.OPEN)
    done = (await hall.store.issue("social-security")).value.ticket.id
    await hall.store.call_next("2")
    await hall.store.complete("2")
    data_dir = tmp_path / "d"
    port = free_port()
    args = ["serve", "--config", hall.config.source, "--port", port, "--data-dir", data_dir]

    def serve_and_download() -> httpx.Response:
        with running_qms(args, cwd=tmp_path, port=port, env=qms_env(redis_url)) as qms:
            gone = wait_until(lambda: not sync_hexists(redis_url, hall.keys.tickets, done), 20)
            assert gone, qms.stderr()
            return qms.get(f"/api/v1/halls/{hall.config.id}/reports/{day}.csv",
                           headers=bearer("manager"))  # fmt: skip

    response = await asyncio.to_thread(serve_and_download)
    assert response.status_code == 200, response.text
    lines = response.content.decode("utf-8-sig").split("\r\n")
    assert lines[1].startswith(
        f"{hall.config.id},{day},hall,{hall.config.id},测试政务服务中心,1,1,"
    )
    archive = open_archive(f"sqlite:///{data_dir}/archive.db")
    try:
        assert [t.id for t in archive.day(hall.config.id, day)] == [done]
    finally:
        archive.close()


def sync_hexists(redis_url: str, key: str, field: str) -> bool:
    with create_sync_redis(redis_url) as client:
        return bool(client.hexists(key, field))
