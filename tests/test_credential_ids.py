"""No hash of a token leaves qms (issue 18, security review item 5).

A credential's `digest_id` is `role:<first 16 hex of the token's unsalted
SHA-256>`: anyone holding it can try tokens until one matches, and a weak
token falls. It scopes idempotency keys inside the process and nothing
else. Tickets and audit entries record the credential's label (its name,
or role and a short HMAC under the deployment key); tickets archived before
labels recorded the digest id, and reports relabel those.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qms.archiving import sweep_once
from queue_core.archive import ArchivedAudit, ArchivedTicket, open_archive
from queue_core.auth import Credentials
from queue_core.config import Credential, HallConfig, load_hall_config
from queue_core.keys import HallKeys
from queue_core.models import Role, TicketStatus
from queue_core.redis_client import RedisClient
from tests.conftest import ApiKit, delete_hall
from tests.support import TOKENS, Clock, make_config
from tests.test_http_api import hall_state
from tests.test_report import NINE_MS
from tests.test_report_cli import write_report_hall
from tests.test_report_serve import Served, serving

pytestmark = pytest.mark.redis

DAY = "2026-11-21"
UNKNOWN = "clerk:0123456789abcdef"
"""A credential id of a credential no longer in the config."""


def hashes(config: HallConfig) -> list[str]:
    """What must appear nowhere: each token's digest and its 16-hex prefix."""
    return [h for c in config.credentials for h in (c.token_sha256, c.token_sha256[:16])]


def credential(config: HallConfig, role: Role, name: str = "") -> Credential:
    return next(c for c in config.credentials if c.role is role and c.name == name)


@pytest.fixture
async def hall(tmp_path: Path, redis: RedisClient) -> AsyncIterator[HallConfig]:
    """The test hall: no credential has a name."""
    config = make_config(tmp_path)
    yield config
    await delete_hall(redis, HallKeys(config.id))


@pytest.fixture
async def named_hall(tmp_path: Path, redis: RedisClient) -> AsyncIterator[HallConfig]:
    """Clerks 1 and 2 named 李四 and 张三; the others unnamed."""
    config = load_hall_config(write_report_hall(tmp_path))
    yield config
    await delete_hall(redis, HallKeys(config.id))


async def _a_day(served: Served) -> None:
    """Every staff role changes something; a visitor rates."""
    kiosk = [await served.post("/tickets", "kiosk", json={"service": "social-security"})]
    kiosk += [await served.post("/tickets", "kiosk", json={"service": "business-licence"})]
    await served.post("/windows/1/open", "clerk")
    await served.post("/windows/1/call-next", "clerk")
    await served.post("/windows/1/complete", "clerk")
    await served.post("/windows/3/open", "clerk2")
    await served.post("/windows/3/call-next", "clerk2")
    await served.post("/windows/3/no-show", "clerk2")
    await served.post("/windows/1/pause", "manager")
    await served.post("/tickets", "admin", json={"service": "housing-fund"})
    await served.post("/windows/2/open", "admin")
    await served.post("/windows/2/call-next", "admin")
    await served.post("/windows/2/transfer", "admin", json={"service": "household"})
    await served.post("/close", "manager")
    await served.post(f"/tickets/{kiosk[0]['id']}/rating", "", json={"score": "satisfied"})


async def test_no_output_holds_a_hash_of_a_token(
    hall: HallConfig,
    redis: RedisClient,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis, the archive, the reports, the audit, the dashboard, the
    metrics and the logs of a day where every role acted."""
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    archive_path = tmp_path / "archive.db"
    async with serving(hall, redis_url, clock, f"sqlite:///{archive_path}") as served:
        await _a_day(served)
        auth = {"Authorization": f"Bearer {TOKENS['manager']}"}
        outputs = {
            "GET /audit": (await served.client.get(f"{served.base}/audit", headers=auth)).text,
            "GET /dashboard": (
                await served.client.get(f"{served.base}/dashboard", headers=auth)
            ).text,
            "report": (await served.report(DAY)).text,
            "audit CSV": (await served.audit(DAY)).text,
            "/metrics": (await served.client.get("/metrics")).text,
        }
        kit = ApiKit(served.client, hall, clock, redis, HallKeys(hall.id))
        outputs["Redis"] = repr(await hall_state(kit))
        labels = [served.hall.credentials.label(c) for c in hall.credentials]
        clock.advance(minutes=24 * 60)
        assert await sweep_once([(hall, redis)], served.state["archive"], clock) > 0
    with sqlite3.connect(archive_path) as db:
        outputs["archive"] = "\n".join(db.iterdump())
    outputs["logs"] = caplog.text

    for where, text in outputs.items():
        found = [h for h in hashes(hall) if h in text]
        assert not found, f"{where} holds {found}"
    # What they hold instead: each acting credential's keyed label.
    for role in ("clerk", "manager", "admin"):
        assert re.search(rf"\b{role}-[0-9a-f]{{8}}\b", outputs["audit CSV"]), role
    assert any(label in outputs["report"] for label in labels)


def _legacy_rows(config: HallConfig) -> list[ArchivedTicket]:
    """Three served tickets archived before labels: by a named clerk, by the
    (unnamed) admin, and by a credential since removed."""
    named = credential(config, Role.CLERK, "李四")
    admin = credential(config, Role.ADMIN)
    rows = []
    for i, clerk in enumerate((named.digest_id, admin.digest_id, UNKNOWN)):
        rows.append(
            ArchivedTicket(
                hall=config.id,
                day=DAY,
                id=f"legacy-{i}",
                number=f"A{i + 1:03d}",
                service="social-security",
                group="natural",
                priority="normal",
                status=TicketStatus.COMPLETED,
                issued_ms=NINE_MS,
                called_ms=NINE_MS + 60_000,
                finished_ms=NINE_MS + 300_000,
                window="1",
                clerk=clerk,
            )
        )
    return rows


async def test_reports_relabel_credential_ids_archived_before_labels(
    named_hall: HallConfig, redis_url: str, tmp_path: Path
) -> None:
    config = named_hall
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    archive = open_archive(url)
    admin = credential(config, Role.ADMIN)
    try:
        archive.put(_legacy_rows(config))
        archive.put_audit(
            [
                ArchivedAudit(
                    config.id,
                    DAY,
                    f"{NINE_MS}-{i}",
                    NINE_MS,
                    actor,
                    "clerk",
                    "call_next",
                    "1",
                    "A001",
                    "127.0.0.1",
                )
                for i, actor in enumerate((admin.digest_id, UNKNOWN))
            ]
        )
    finally:
        archive.close()

    async with serving(config, redis_url, Clock(), url) as served:
        report = (await served.report(DAY)).text
        audit = (await served.audit(DAY)).text
        admin_label = served.hall.credentials.label(admin)
        unknown_label = served.hall.credentials.relabel(UNKNOWN)

    for where, text in (("report", report), ("audit CSV", audit)):
        found = [h for h in [*hashes(config), UNKNOWN] if h in text]
        assert not found, f"{where} holds {found}"
    clerks = [line.split(",")[3:5] for line in report.splitlines() if ",clerk," in line]
    assert sorted(clerks) == sorted([["李四", "李四"], [admin_label, ""], [unknown_label, ""]])
    assert re.fullmatch(r"admin-[0-9a-f]{8}", admin_label)
    assert re.fullmatch(r"clerk-[0-9a-f]{8}", unknown_label)
    assert [admin_label, unknown_label] == [
        line.split(",")[1] for line in audit.splitlines()[1:] if line
    ]


def test_relabel() -> None:
    clerk = Credential(Role.CLERK, "a" * 64, frozenset({"1"}))
    named = Credential(Role.CLERK, "b" * 64, frozenset({"2"}), name="张三")
    keyed = Credentials([clerk, named], b"k" * 32)
    assert keyed.relabel(clerk.digest_id) == keyed.label(clerk) != clerk.digest_id
    assert keyed.relabel(named.digest_id) == "张三"
    assert keyed.relabel("张三") == "张三"
    assert keyed.relabel("clerk-1a2b3c4d") == "clerk-1a2b3c4d"  # a label already
    other = keyed.relabel(UNKNOWN)
    assert re.fullmatch(r"clerk-[0-9a-f]{8}", other) and other != keyed.label(clerk)
    # Another deployment's key gives other short ids.
    assert Credentials([clerk], b"j" * 32).relabel(clerk.digest_id) != keyed.label(clerk)
    # Without the key (a report from the archive alone): a name, else the role.
    bare = Credentials([clerk, named], None)
    assert bare.relabel(named.digest_id) == "张三"
    assert bare.relabel(clerk.digest_id) == "clerk"
    assert bare.relabel(UNKNOWN) == "clerk"
