"""`POST /tickets` with `id_number` (issue 16) through the whole app, on a real
Redis: a bad number is a 422 that changes nothing; the holder's age on the
hall's local day makes the ticket elderly; with `[issuing]
one_active_per_person` a person holds one active ticket, also under many
concurrent requests; and the number is nowhere in Redis, the logs, the
metrics or the archive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from qms.app import create_app
from qms.cli import main
from qms.settings import ID_DIGEST_KEY_ENV, Settings, SettingsError
from queue_core import calendar
from queue_core.archive import open_archive
from queue_core.archive.redis_sweep import archive_audit, archive_hall
from queue_core.config import load_hall_config
from queue_core.identity import check_character, person_digest
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.conftest import ApiKit, api_client, delete_hall
from tests.support import TOKENS, Clock, write_hall
from tests.test_http_api import hall_state

pytestmark = pytest.mark.redis

KEY = b"test-only-identity-digest-key-0123456789"
ONE_ACTIVE = "[issuing]\none_active_per_person = true"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The test clock starts on 2026-11-21 09:00 in the hall (Asia/Shanghai).
OLD = "11010519491231002X"  # 76 on the test day (GB 11643's own example)
OTHER_OLD = "440524188001010014"


def number_born(birth: str, sequence: str = "002") -> str:
    """A valid number for a birth date YYYYMMDD (its check character computed)."""
    first17 = f"110105{birth}{sequence}"
    return first17 + check_character(first17)


YOUNG = number_born("19900101")  # 36


def local_s(text: str) -> float:
    """Epoch seconds of a local time in the hall, "YYYY-MM-DD HH:MM:SS"."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


@dataclass
class Kit(ApiKit):
    async def issue(
        self, body: dict[str, Any], token: str = TOKENS["kiosk"], key: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post(f"{self.base}/tickets", json=body, headers=headers)

    async def post(self, path: str, token: str, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.client.post(f"{self.base}{path}", json=body or None, headers=headers)


KitFactory = Callable[..., Awaitable[Kit]]


@pytest.fixture
async def make_kit(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[KitFactory]:
    """Serves a hall of its own (with `extra_priority` / `extra` TOML) with
    the digest key; deletes its keys afterwards."""
    stack = contextlib.AsyncExitStack()
    made: list[HallKeys] = []

    async def make(
        extra_priority: str = "",
        extra: str = "",
        language: str = "zh",
        edits: dict[str, str] | None = None,
    ) -> Kit:
        path = write_hall(tmp_path, extra_priority=extra_priority, extra=extra)
        text = path.read_text(encoding="utf-8")
        zone = 'timezone = "Asia/Shanghai"\n'
        text = text.replace(zone, f'{zone}language = "{language}"\n')
        for old, new in (edits or {}).items():
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        path.write_text(text, "utf-8")
        config = load_hall_config(path)
        clock = Clock()
        client = await stack.enter_async_context(
            api_client([config], redis_url, clock, id_digest_key=KEY)
        )
        keys = HallKeys(config.id)
        made.append(keys)
        return Kit(client, config, clock, redis, keys)

    async with stack:
        yield make
    for keys in made:
        await delete_hall(redis, keys)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error object with this status and code (and its extra fields)."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"].strip()
    return error


# ------------------------------------------------------------ 422 bad_id_number


@pytest.mark.parametrize(
    ("value", "reason", "fragment"),
    [
        ("110105491231002", "old_format", "15 位的旧身份证号码不能使用"),
        ("11010519491231002", "length", "应为 18 位"),
        ("1101051949123100X2", "characters", "最后一位数字或 X"),
        ("110105194912310021", "check_digit", "校验不通过"),
        (number_born("20261122"), "birth_date", "出生日期不正确"),  # tomorrow in the hall
        (number_born("19490230"), "birth_date", "出生日期不正确"),
        (110105194912310021, "characters", "最后一位数字或 X"),  # not a string
        ("", "length", "应为 18 位"),
    ],
)
async def test_a_bad_number_is_422_and_changes_nothing(
    make_kit: KitFactory, value: object, reason: str, fragment: str
) -> None:
    kit = await make_kit(extra=ONE_ACTIVE)
    await kit.issue({"service": "social-security"})  # some state to compare
    before = await hall_state(kit)
    response = await kit.issue({"service": "social-security", "id_number": value}, key="k1")
    error = error_of(response, 422, "bad_id_number")
    assert error["reason"] == reason
    assert fragment in error["message"]  # the hall's language (zh)
    if isinstance(value, str) and value:
        assert value not in response.text
    assert await hall_state(kit) == before
    # Nothing was kept under the key either: the same key with a good number issues.
    good = await kit.issue({"service": "social-security", "id_number": OLD}, key="k1")
    assert good.status_code == 201, good.text


async def test_an_english_hall_says_it_in_english(make_kit: KitFactory) -> None:
    kit = await make_kit(language="en", extra=ONE_ACTIVE)
    response = await kit.issue({"service": "social-security", "id_number": "110105491231002"})
    error = error_of(response, 422, "bad_id_number")
    assert "old 15-digit identity number is not accepted" in error["message"]
    assert (await kit.issue({"service": "social-security", "id_number": OLD})).status_code == 201
    held = await kit.issue({"service": "household", "id_number": OLD})
    assert "already holds ticket A001" in error_of(held, 409, "already_waiting")["message"]


async def test_other_refusals_come_first_and_say_nothing_of_the_number(
    make_kit: KitFactory,
) -> None:
    kit = await make_kit()
    response = await kit.issue({"service": "no-such", "id_number": OLD})
    error_of(response, 404, "service_not_found")
    response = await kit.issue({"service": "social-security", "priority": "vip", "id_number": OLD})
    error_of(response, 422, "unknown_priority")
    response = await kit.issue({"service": "social-security", "id_numbr": OLD})
    error_of(response, 422, "unknown_field")
    assert OLD not in response.text


# ---------------------------------------------------------- elderly by birth date


async def test_elderly_by_age_on_the_halls_local_day(make_kit: KitFactory) -> None:
    """A holder born on 22 November 1966 turns 60 at the hall's local midnight
    (16:00 UTC on the 21st), not at UTC's."""
    kit = await make_kit()
    turning = number_born("19661122")

    async def priority_now() -> str:
        response = await kit.issue({"service": "social-security", "id_number": turning})
        assert response.status_code == 201, response.text
        return str(response.json()["priority"])

    assert await priority_now() == "normal"  # 09:00 on the 21st: 59
    kit.clock.now = local_s("2026-11-21 23:59:59")
    assert await priority_now() == "normal"
    kit.clock.now = local_s("2026-11-22 00:00:00")  # still the 21st in UTC
    assert await priority_now() == "elderly"
    ticket = (await kit.issue({"service": "social-security", "id_number": OLD})).json()
    assert ticket["priority"] == "elderly"
    # The ticket's place carries the elderly credit (20 minutes) like any elderly ticket.
    stored = await kit.redis.hget(kit.keys.tickets, ticket["id"])
    assert stored is not None and f'"e":{int(kit.clock.now * 1000) - 20 * 60_000}' in stored


async def test_younger_holders_keep_the_class_asked_for(make_kit: KitFactory) -> None:
    kit = await make_kit()
    young = await kit.issue({"service": "social-security", "id_number": YOUNG})
    assert young.json()["priority"] == "normal"
    # An identity number raises a class, never lowers one.
    asked = await kit.issue(
        {"service": "social-security", "priority": "elderly", "id_number": YOUNG}
    )
    assert asked.json()["priority"] == "elderly"
    disabled = await kit.issue(
        {"service": "housing-fund", "priority": "disabled", "id_number": OLD}
    )
    assert disabled.json()["priority"] == "disabled"  # the same 20-minute credit: kept


async def test_the_halls_elderly_age(make_kit: KitFactory) -> None:
    kit = await make_kit(extra_priority="elderly_age = 80")
    assert kit.config.elderly_age == 80
    seventy_six = await kit.issue({"service": "social-security", "id_number": OLD})
    assert seventy_six.json()["priority"] == "normal"
    born_1880 = await kit.issue({"service": "social-security", "id_number": OTHER_OLD})
    assert born_1880.json()["priority"] == "elderly"


async def test_elderly_replaces_a_class_of_less_credit(make_kit: KitFactory) -> None:
    kit = await make_kit(edits={"elderly = 20\n": "elderly = 30\n"})
    body = {"service": "social-security", "priority": "disabled", "id_number": OLD}
    assert (await kit.issue(body)).json()["priority"] == "elderly"
    body["id_number"] = YOUNG
    assert (await kit.issue(body)).json()["priority"] == "disabled"


async def test_no_elderly_class_no_elderly_ticket(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    path = write_hall(tmp_path)
    text = path.read_text(encoding="utf-8").replace("elderly = 20\n", "")
    path.write_text(text, "utf-8")
    config = load_hall_config(path)
    try:
        async with api_client([config], redis_url, Clock()) as client:
            response = await client.post(
                f"/api/v1/halls/{config.id}/tickets",
                json={"service": "social-security", "id_number": OLD},
                headers={"Authorization": f"Bearer {TOKENS['kiosk']}"},
            )
        assert response.status_code == 201, response.text
        assert response.json()["priority"] == "normal"
        # Without one_active_per_person nothing of the person is kept.
        assert await redis.exists(HallKeys(config.id).persons) == 0
    finally:
        await delete_hall(redis, HallKeys(config.id))


# ------------------------------------------------------ one active ticket per person


async def test_a_second_active_ticket_is_409_naming_the_number_held(make_kit: KitFactory) -> None:
    kit = await make_kit(extra=ONE_ACTIVE)
    first = await kit.issue({"service": "social-security", "id_number": OLD})
    assert first.status_code == 201 and first.json()["number"] == "A001"
    before = await hall_state(kit)
    # The same number, written another way, for another service.
    again = await kit.issue({"service": "household", "id_number": OLD.lower()})
    error = error_of(again, 409, "already_waiting")
    assert error["number"] == "A001"
    assert "A001" in error["message"] and OLD not in again.text
    assert await hall_state(kit) == before
    # Another person is not held back, nor is a ticket taken without a number.
    assert (await kit.issue({"service": "household", "id_number": OTHER_OLD})).status_code == 201
    assert (await kit.issue({"service": "household"})).status_code == 201
    # A retry of the first request (same Idempotency-Key) is its ticket, not a refusal.
    one = await kit.issue({"service": "social-security", "id_number": YOUNG}, key="retry")
    two = await kit.issue({"service": "social-security", "id_number": YOUNG}, key="retry")
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] == two.json()["id"]


async def test_called_and_parked_tickets_are_active_too(make_kit: KitFactory) -> None:
    kit = await make_kit(extra=ONE_ACTIVE)
    clerk = TOKENS["clerk2"]
    await kit.issue({"service": "social-security", "id_number": OLD})
    assert (await kit.post("/windows/2/open", clerk)).status_code == 200
    assert (await kit.post("/windows/2/call-next", clerk)).json()["number"] == "A001"
    refused = await kit.issue({"service": "social-security", "id_number": OLD})
    assert error_of(refused, 409, "already_waiting")["number"] == "A001"
    assert (await kit.post("/windows/2/park", clerk)).json()["status"] == "parked"
    refused = await kit.issue({"service": "social-security", "id_number": OLD})
    assert error_of(refused, 409, "already_waiting")["number"] == "A001"
    resumed = await kit.post("/windows/2/resume", clerk, number="A001")
    assert resumed.json()["status"] == "called"
    # A transfer keeps the ticket (and the person's hold) alive.
    moved = await kit.post("/windows/2/transfer", clerk, service="housing-fund")
    assert moved.json()["status"] == "waiting"
    refused = await kit.issue({"service": "social-security", "id_number": OLD})
    assert error_of(refused, 409, "already_waiting")["number"] == "A001"


@pytest.mark.parametrize("ending", ["complete", "no-show", "cancel", "hall-close"])
async def test_a_ticket_that_ends_frees_its_person(make_kit: KitFactory, ending: str) -> None:
    kit = await make_kit(extra=ONE_ACTIVE)
    clerk, manager = TOKENS["clerk2"], TOKENS["manager"]
    first = (await kit.issue({"service": "social-security", "id_number": OLD})).json()
    if ending in ("complete", "no-show"):
        await kit.post("/windows/2/open", clerk)
        await kit.post("/windows/2/call-next", clerk)
        assert (await kit.post(f"/windows/2/{ending}", clerk)).status_code == 200
    elif ending == "cancel":
        assert (await kit.post(f"/tickets/{first['id']}/cancel", "")).status_code == 200
    else:
        assert (await kit.post("/close", manager)).status_code == 200
        assert (await kit.post("/open", manager)).status_code == 200
    status = (await kit.client.get(f"{kit.base}/tickets/{first['id']}")).json()["status"]
    ended = {"complete": "completed", "no-show": "no_show", "cancel": "cancelled"}
    assert status == ended.get(ending, "expired")
    second = await kit.issue({"service": "social-security", "id_number": OLD})
    assert second.status_code == 201, second.text
    persons = {str(f): str(v) for f, v in (await kit.redis.hgetall(kit.keys.persons)).items()}
    # The new ticket is held; the old one's entries are gone (a no-show keeps
    # only its way back to the person, for a rejoin, until the day ends).
    held = {f: v for f, v in persons.items() if f.startswith("d:")}
    assert list(held.values()) == [second.json()["id"]]
    links = {f for f in persons if f.startswith("t:")}
    expected = {f"t:{second.json()['id']}"}
    if ending == "no-show":
        expected.add(f"t:{first['id']}")
    assert links == expected


async def pass_day_end(kit: Kit) -> int:
    """Pass the hall's latest calendar boundary (local midnight, for the test
    hall), as a replica's day keeper does; how many tickets expired."""
    store = HallStore(
        kit.redis, Scripts.register(kit.redis), kit.config, clock=kit.clock, id_digest_key=KEY
    )
    boundary = calendar.latest_boundary(kit.config.hours, kit.config.timezone, store.now_ms())
    passed, expired = await store.pass_boundary(boundary)
    assert passed
    return expired


async def test_the_days_end_leaves_no_digest_behind(make_kit: KitFactory) -> None:
    kit = await make_kit(extra=ONE_ACTIVE)
    clerk, clerk1 = TOKENS["clerk2"], TOKENS["clerk"]
    waiting = (await kit.issue({"service": "business-licence", "id_number": OLD})).json()
    missed = (await kit.issue({"service": "social-security", "id_number": OTHER_OLD})).json()
    at_window = (await kit.issue({"service": "social-security", "id_number": YOUNG})).json()
    await kit.post("/windows/2/open", clerk)
    await kit.post("/windows/2/call-next", clerk)
    await kit.post("/windows/2/no-show", clerk)  # missed: may rejoin for 10 minutes
    await kit.post("/windows/1/open", clerk1)
    assert (await kit.post("/windows/1/call", clerk1, number=at_window["number"])).is_success
    assert len(await kit.redis.hgetall(kit.keys.persons)) == 5  # 2 held, 3 ways back

    kit.clock.now = local_s("2026-11-22 08:00:00")
    assert await pass_day_end(kit) == 1
    statuses = [
        (await kit.client.get(f"{kit.base}/tickets/{t['id']}")).json()["status"]
        for t in (waiting, missed, at_window)
    ]
    assert statuses == ["expired", "no_show", "completed"]
    assert await kit.redis.exists(kit.keys.persons) == 0
    for number in (OLD, OTHER_OLD, YOUNG):
        response = await kit.issue({"service": "household", "id_number": number})
        assert response.status_code == 201, response.text


async def test_a_no_show_may_not_rejoin_while_its_person_holds_another(
    make_kit: KitFactory,
) -> None:
    kit = await make_kit(extra=ONE_ACTIVE)
    clerk, kiosk = TOKENS["clerk2"], TOKENS["kiosk"]
    first = (await kit.issue({"service": "social-security", "id_number": OLD})).json()
    await kit.post("/windows/2/open", clerk)
    await kit.post("/windows/2/call-next", clerk)
    await kit.post("/windows/2/no-show", clerk)
    second = (await kit.issue({"service": "household", "id_number": OLD})).json()
    refused = await kit.post(f"/tickets/{first['id']}/rejoin", kiosk)
    assert error_of(refused, 409, "already_waiting")["number"] == second["number"]
    assert (await kit.post(f"/tickets/{second['id']}/cancel", kiosk)).status_code == 200
    rejoined = await kit.post(f"/tickets/{first['id']}/rejoin", kiosk)
    assert rejoined.json()["status"] == "waiting"
    # Back in line, the first ticket holds its person again.
    refused = await kit.issue({"service": "household", "id_number": OLD})
    assert error_of(refused, 409, "already_waiting")["number"] == "A001"


async def test_many_kiosks_at_once_with_one_number_get_one_ticket(make_kit: KitFactory) -> None:
    kit = await make_kit(extra=ONE_ACTIVE)
    services = ["social-security", "housing-fund", "business-licence", "household"]
    responses = await asyncio.gather(
        *(
            kit.issue({"service": services[i % 4], "id_number": OLD}, key=f"kiosk-{i}")
            for i in range(40)
        )
    )
    created = [r for r in responses if r.status_code == 201]
    assert len(created) == 1, [r.text for r in responses]
    number = created[0].json()["number"]
    for r in responses:
        if r.status_code != 201:
            assert error_of(r, 409, "already_waiting")["number"] == number
    tickets = await kit.redis.hgetall(kit.keys.tickets)
    assert len(tickets) == 1


# ------------------------------------------------------------ the number is nowhere


async def test_the_number_is_nowhere_but_in_the_request(
    make_kit: KitFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Issue with identity numbers every way there is (kiosk and audited admin,
    refused, retried, called, finished, at a day's end, archived); then no
    value of any key of the hall, no log record, no metric and no archived
    byte holds a number, nor the keyed digest outside the persons index."""
    caplog.set_level(logging.DEBUG)
    kit = await make_kit(extra=ONE_ACTIVE)
    admin, clerk = TOKENS["admin"], TOKENS["clerk2"]
    typo = OLD[:-1] + "1"  # a check digit wrong: refused, and never kept either
    numbers = [OLD, OTHER_OLD, YOUNG, typo]

    assert (await kit.issue({"service": "social-security", "id_number": OLD}, key="a")).is_success
    assert (await kit.issue({"service": "social-security", "id_number": OLD}, key="a")).is_success
    assert (await kit.issue({"service": "household", "id_number": OLD})).status_code == 409
    assert (await kit.issue({"service": "household", "id_number": typo})).status_code == 422
    audited = await kit.issue({"service": "housing-fund", "id_number": OTHER_OLD}, token=admin)
    assert audited.status_code == 201
    kept = await kit.issue({"service": "household", "id_number": YOUNG.lower()})
    assert kept.status_code == 201
    await kit.post("/windows/2/open", clerk)
    await kit.post("/windows/2/call-next", clerk)
    await kit.post("/windows/2/complete", clerk)
    await kit.post("/windows/2/call-next", clerk)
    await kit.post("/windows/2/no-show", clerk)
    metrics = (await kit.client.get("/metrics")).text
    audit = await kit.client.get(f"{kit.base}/audit", headers={"Authorization": f"Bearer {admin}"})
    assert audit.json()["entries"], "the admin's issue is audited"

    digests = {person_digest(KEY, kit.config.id, n) for n in numbers[:3]}
    state = await hall_state(kit)
    assert state, "the scan sees the hall"
    for key, (kind, value) in state.items():
        text = repr(value).upper()
        for n in numbers:
            assert n not in text and n[:17] not in text, f"{kind} {key}"
        if key != kit.keys.persons:
            assert not any(d in repr(value) for d in digests), f"a digest in {kind} {key}"
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for text in (logged, metrics, audit.text):
        for n in numbers:
            assert n not in text.upper() and n[:17] not in text

    # The next day: the day's end, then the archive sweep of its tickets and audit.
    kit.clock.now = local_s("2026-11-22 08:00:00")
    await pass_day_end(kit)
    archive_file = tmp_path / "archive.db"
    archive = open_archive(f"sqlite:///{archive_file}")
    try:
        moved = await archive_hall(kit.redis, kit.config, archive, date(2026, 11, 22))
        assert moved == 3
        assert await archive_audit(kit.redis, kit.config, archive) >= 1
    finally:
        archive.close()
    archived = archive_file.read_bytes()
    for n in numbers:
        assert n.encode() not in archived and n[:17].encode() not in archived
    assert not any(d.encode() in archived for d in digests)
    assert await kit.redis.exists(kit.keys.persons) == 0


# ------------------------------------------------------------------ the key


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ID_DIGEST_KEY_ENV, raising=False)
    assert Settings.from_env(configs=()).id_digest_key is None
    monkeypatch.setenv(ID_DIGEST_KEY_ENV, KEY.decode())
    assert Settings.from_env(configs=()).id_digest_key == KEY
    monkeypatch.setenv(ID_DIGEST_KEY_ENV, "short-secret")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(configs=())
    assert "at least 32 characters" in str(caught.value)
    assert "short-secret" not in str(caught.value)


async def test_a_hall_with_one_active_per_person_needs_the_key(
    tmp_path: Path, redis: RedisClient
) -> None:
    config = load_hall_config(write_hall(tmp_path, extra=ONE_ACTIVE))
    with pytest.raises(SettingsError) as caught:
        create_app([config], "redis://127.0.0.1:1/0")
    assert ID_DIGEST_KEY_ENV in str(caught.value)
    with pytest.raises(ValueError, match="QMS_ID_DIGEST_KEY"):
        HallStore(redis, Scripts.register(redis), config)
    # Without the rule no key is needed: nothing of a person is kept.
    plain = load_hall_config(write_hall(tmp_path))
    create_app([plain], "redis://127.0.0.1:1/0")


def test_serve_refuses_to_start_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ID_DIGEST_KEY_ENV, raising=False)
    monkeypatch.delenv("QMS_REDIS_URL", raising=False)
    path = write_hall(tmp_path, extra=ONE_ACTIVE)
    data_dir = tmp_path / "data"
    code = main(["serve", "--config", str(path), "--port", "0", "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "one_active_per_person" in err and ID_DIGEST_KEY_ENV in err
    assert "Traceback" not in err
    assert not data_dir.exists()  # refused before starting anything
