"""Hall config loading: valid files become frozen objects, and every problem
in a file is reported at once under the key where it is."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from queue_core.config import (
    AppointmentRules,
    ConfigError,
    Credential,
    Group,
    HallConfig,
    Limits,
    Problem,
    RemoteRules,
    Service,
    Window,
    load_hall_config,
    load_halls,
)
from queue_core.models import Role

DEMO = Path(__file__).resolve().parents[1] / "qms" / "demo_hall.toml"

KIOSK_TOKEN = "kiosk-secret"
CLERK_TOKEN = "clerk-secret"
CLERK_DIGEST = hashlib.sha256(CLERK_TOKEN.encode()).hexdigest()

# Each line an edit below targets occurs exactly once, so a case can change
# one thing by replacing one line.
VALID = f"""
[hall]
id = "testhall"
name = "测试政务服务中心"
timezone = "Asia/Shanghai"

[priority]
appointment = 30
elderly = 20

[appointments]
early_minutes = 15
grace_minutes = 5

[[group]]
id = "natural"
name = "自然人综合窗口"

[[group]]
id = "legal"
name = "法人综合窗口"

[[service]]
id = "social-security"
name = "社保医保"
group = "natural"
prefix = "A"
expected_minutes = 8

[[service]]
id = "housing-fund"
name = "住房公积金"
group = "natural"
prefix = "A"
expected_minutes = 6.5

[[service]]
id = "business-license"
name = "营业执照"
group = "legal"
prefix = "C"
expected_minutes = 12

[[window]]
id = "1"
name = "1号窗口"
groups = ["natural", "legal"]

[[window]]
id = "w_2"
name = "2号窗口"
groups = ["legal"]

[[credential]]
role = "kiosk"
token = "{KIOSK_TOKEN}"

[[credential]]
role = "clerk"
token_sha256 = "{CLERK_DIGEST.upper()}"
windows = ["1", "w_2"]
"""


def edited(old: str, new: str, text: str = VALID) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def write(tmp_path: Path, text: str, name: str = "hall.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_hall_config(write(tmp_path, text))
    assert caught.value.problems, "a ConfigError must list its problems"
    return caught.value.problems


def keys_of(problems: list[Problem]) -> list[str]:
    return [p.key for p in problems]


# --- valid files ------------------------------------------------------------


def test_valid_config_loads_into_frozen_objects(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    hall = load_hall_config(path)

    assert hall.id == "testhall"
    assert hall.name == "测试政务服务中心"
    assert hall.timezone == ZoneInfo("Asia/Shanghai")
    assert hall.priority == {"appointment": 30.0, "elderly": 20.0}
    assert hall.appointments == AppointmentRules(early_minutes=15.0, grace_minutes=5.0)
    assert hall.groups == (Group("natural", "自然人综合窗口"), Group("legal", "法人综合窗口"))
    assert hall.services == (
        Service("social-security", "社保医保", "natural", "A", 8.0),
        Service("housing-fund", "住房公积金", "natural", "A", 6.5),
        Service("business-license", "营业执照", "legal", "C", 12.0),
    )
    assert hall.windows == (
        Window("1", "1号窗口", ("natural", "legal")),
        Window("w_2", "2号窗口", ("legal",)),
    )
    assert hall.credentials == (
        Credential(Role.KIOSK, hashlib.sha256(KIOSK_TOKEN.encode()).hexdigest(), frozenset()),
        Credential(Role.CLERK, CLERK_DIGEST, frozenset({"1", "w_2"})),
    )
    assert hall.source == str(path)
    assert hall.service_by_id["housing-fund"].group == "natural"
    assert [w.id for w in hall.windows_serving("legal")] == ["1", "w_2"]
    assert hall.kiosk_classes() == {"normal", "elderly"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        hall.id = "other"  # type: ignore[misc]


def test_only_token_digests_are_kept(tmp_path: Path) -> None:
    hall = load_hall_config(write(tmp_path, VALID))
    assert KIOSK_TOKEN not in repr(hall)
    assert all(c.token_sha256 == c.token_sha256.lower() for c in hall.credentials)


def test_source_is_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, VALID)
    monkeypatch.chdir(tmp_path)
    assert load_hall_config("hall.toml").source == "hall.toml"


def test_demo_config_loads() -> None:
    hall = load_hall_config(DEMO)
    assert hall.id == "daye"
    assert hall.name == "大冶市政务服务中心"
    assert hall.timezone == ZoneInfo("Asia/Shanghai")
    assert hall.priority == {"appointment": 30.0, "elderly": 20.0, "disabled": 20.0}
    assert {g.id for g in hall.groups} == {"natural", "legal", "police", "tax"}
    assert 8 <= len(hall.services) <= 10
    assert all(5 <= s.expected_minutes <= 20 for s in hall.services)
    assert any(set(w.groups) == {"natural", "legal"} for w in hall.windows)
    digests = {c.token_sha256: c for c in hall.credentials}
    for role in ("kiosk", "display", "manager", "admin"):
        assert digests[hashlib.sha256(f"demo-{role}".encode()).hexdigest()].role == role
    for window in hall.windows:
        clerk = digests[hashlib.sha256(f"demo-clerk-{window.id}".encode()).hexdigest()]
        assert clerk.role is Role.CLERK
        assert clerk.windows == {window.id}


def test_optional_sections_take_their_defaults(tmp_path: Path) -> None:
    text = edited("[appointments]\nearly_minutes = 15\ngrace_minutes = 5\n", "")
    text = edited("[priority]\nappointment = 30\nelderly = 20\n", "", text)
    hall = load_hall_config(write(tmp_path, text))
    assert hall.appointments == AppointmentRules(early_minutes=30.0, grace_minutes=10.0)
    assert hall.priority == {}
    assert hall.credit_minutes("elderly") == 0.0


def test_inf_means_strict_priority_as_toml_or_string(tmp_path: Path) -> None:
    text = edited("elderly = 20", 'elderly = inf\ndisabled = "inf"\nnormal = 0')
    hall = load_hall_config(write(tmp_path, text))
    assert hall.priority["elderly"] == math.inf
    assert hall.priority["disabled"] == math.inf
    assert hall.credit_minutes("normal") == 0.0


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_hall_config(path).id == "testhall"


# --- one mistake at a time ---------------------------------------------------


def case(old: str, new: str, *expected: tuple[str, str], id: str) -> object:
    """A one-line edit of VALID and every (key, message fragment) it must cause."""
    return pytest.param(old, new, list(expected), id=id)


TOKEN_LINE = f'token = "{KIOSK_TOKEN}"'
DIGEST_LINE = f'token_sha256 = "{CLERK_DIGEST.upper()}"'
EXTRA_GROUP = '[[group]]\nid = "natural"\nname = "又一个"\n\n[[service]]\nid = "social-security"'

CASES = [
    # hall
    case('id = "testhall"', 'id = "Test_Hall"', ("hall.id", "not valid"), id="hall-id"),
    case('id = "testhall"', "", ("hall.id", "required"), id="hall-id-missing"),
    case('name = "测试政务服务中心"', 'name = " "', ("hall.name", "empty"), id="hall-name"),
    case(
        'timezone = "Asia/Shanghai"',
        'timezone = "Mars/Olympus"',
        ("hall.timezone", "not an IANA time zone"),
        id="timezone",
    ),
    case('timezone = "Asia/Shanghai"', "timezone = 8", ("hall.timezone", "string"), id="tz-type"),
    case("[hall]\n", "[hall]\nfloor = 2\n", ("hall.floor", "unknown key"), id="hall-key"),
    case("[hall]\n", "[[hall]]\n", ("hall", "must be a table"), id="hall-array"),
    # priority
    case("elderly = 20", "elderly = -5", ("priority.elderly", "0 or more"), id="negative"),
    case("elderly = 20", "elderly = -inf", ("priority.elderly", "0 or more"), id="minus-inf"),
    case("elderly = 20", "elderly = nan", ("priority.elderly", "0 or more"), id="nan"),
    case("elderly = 20", 'elderly = "lots"', ("priority.elderly", "number"), id="credit-str"),
    case("elderly = 20", "elderly = true", ("priority.elderly", "number"), id="credit-bool"),
    case(
        "elderly = 20",
        "elderly = { minutes = 20 }",
        ("priority.elderly", "not a table"),
        id="credit-table",
    ),
    case("elderly = 20", "Elderly = 20", ("priority.Elderly", "class name"), id="class-name"),
    case("elderly = 20", "normal = 5", ("priority.normal", "only be 0"), id="normal-credit"),
    # appointments
    case(
        "early_minutes = 15",
        "early_minutes = -1",
        ("appointments.early_minutes", "0 or more"),
        id="early",
    ),
    case(
        "grace_minutes = 5",
        'grace_minutes = "5"',
        ("appointments.grace_minutes", "remove the quotes"),
        id="grace-type",
    ),
    case(
        "grace_minutes = 5",
        "grace_minute = 5",
        ("appointments.grace_minute", "did you mean 'grace_minutes'"),
        id="appointments-key",
    ),
    # top level
    case(
        "[appointments]",
        "[appointment]",
        ("appointment", "did you mean 'appointments'"),
        id="unknown-table",
    ),
    case(
        '[[window]]\nid = "w_2"',
        '[[windows]]\nid = "w_2"',
        ("windows", "did you mean 'window'"),
        ("credential[1].windows", "no window 'w_2'"),
        id="unknown-array",
    ),
    # groups
    case(
        'id = "natural"',
        'id = "natural"\ncolour = "red"',
        ("group[0].colour", "unknown key"),
        id="group-key",
    ),
    case('name = "法人综合窗口"', 'name = ""', ("group[1].name", "empty"), id="group-name"),
    case(
        '[[service]]\nid = "social-security"',
        EXTRA_GROUP,
        ("group[2].id", "duplicate group id 'natural': group[0] has it too"),
        id="group-dup",
    ),
    case(
        '[[service]]\nid = "business-license"\nname = "营业执照"\ngroup = "legal"',
        '[[service]]\nid = "business-license"\nname = "营业执照"\ngroup = "natural"',
        ("group[1]", "no service belongs to group 'legal'"),
        id="group-without-service",
    ),
    case(
        'groups = ["natural", "legal"]',
        'groups = ["legal"]',
        ("group[0]", "no window serves group 'natural'"),
        id="group-without-window",
    ),
    # services
    case('id = "housing-fund"', 'id = "Housing Fund"', ("service[1].id", "not valid"), id="sid"),
    case(
        'id = "housing-fund"',
        'id = "social-security"',
        ("service[1].id", "duplicate service id 'social-security'"),
        id="service-dup",
    ),
    case('name = "住房公积金"', "", ("service[1].name", "required"), id="service-name"),
    case(
        'group = "legal"',
        'group = "legl"',
        ("service[2].group", "no group 'legl'"),
        ("group[1]", "no service belongs to group 'legal'"),
        id="service-group",
    ),
    case('prefix = "C"', 'prefix = "c"', ("service[2].prefix", "uppercase"), id="prefix-case"),
    case('prefix = "C"', 'prefix = "ABC"', ("service[2].prefix", "uppercase"), id="prefix-long"),
    case(
        'prefix = "C"',
        'prefix = "A"',
        ("service[2].prefix", "already used by service[0] in group 'natural'"),
        id="prefix-cross-group",
    ),
    case(
        "expected_minutes = 12",
        "expected_minutes = 0",
        ("service[2].expected_minutes", "greater than 0"),
        id="minutes-zero",
    ),
    case(
        "expected_minutes = 12",
        "expected_minutes = inf",
        ("service[2].expected_minutes", "finite"),
        id="minutes-inf",
    ),
    case(
        "expected_minutes = 12",
        'expected_minutes = "twelve"',
        ("service[2].expected_minutes", "not a string"),
        id="minutes-type",
    ),
    case(
        "expected_minutes = 12",
        "expected_minute = 12",
        ("service[2].expected_minute", "did you mean 'expected_minutes'"),
        ("service[2].expected_minutes", "required"),
        id="service-key",
    ),
    # windows
    # (the clerk's credential still names "w_2", so it gets reported too)
    case(
        'id = "w_2"',
        "id = 2",
        ("window[1].id", 'quotes: "2"'),
        ("credential[1].windows", "no window 'w_2'"),
        id="window-id-int",
    ),
    case(
        'id = "w_2"',
        'id = "w 2"',
        ("window[1].id", "not valid"),
        ("credential[1].windows", "no window 'w_2'"),
        id="window-id",
    ),
    case(
        'id = "w_2"',
        'id = "1"',
        ("window[1].id", "duplicate window id '1'"),
        ("credential[1].windows", "no window 'w_2'"),
        id="window-dup",
    ),
    case(
        'groups = ["legal"]',
        "groups = []",
        ("window[1].groups", "at least one group"),
        id="window-no-group",
    ),
    case(
        'groups = ["legal"]',
        'groups = ["legal", "tax"]',
        ("window[1].groups", "no group 'tax'"),
        id="window-unknown-group",
    ),
    case(
        'groups = ["legal"]',
        'groups = ["legal", "legal"]',
        ("window[1].groups[1]", "listed twice"),
        id="window-group-twice",
    ),
    case('groups = ["legal"]', 'groups = "legal"', ("window[1].groups", "array"), id="groups-str"),
    case(
        'groups = ["legal"]',
        "groups = { legal = true }",
        ("window[1].groups", "not a table"),
        id="groups-table",
    ),
    case('name = "2号窗口"', "name = 2", ("window[1].name", "string"), id="window-name"),
    # credentials
    case('role = "kiosk"', 'role = "boss"', ("credential[0].role", "not a role"), id="role"),
    case('role = "kiosk"', "", ("credential[0].role", "required"), id="role-missing"),
    case(
        'role = "clerk"',
        'role = "clerc"',
        ("credential[1].role", "'clerc' is not a role"),
        id="clerk-role-typo",
    ),
    case(
        TOKEN_LINE,
        'token = "short"',
        ("credential[0].token", "at least 8 characters"),
        id="token-short",
    ),
    case(TOKEN_LINE, "", ("credential[0]", "needs a token"), id="token-none"),
    case(
        TOKEN_LINE,
        f'{TOKEN_LINE}\ntoken_sha256 = "{"0" * 64}"',
        ("credential[0]", "exactly one"),
        id="token-both",
    ),
    case(
        DIGEST_LINE,
        'token_sha256 = "abc123"',
        ("credential[1].token_sha256", "64 hexadecimal"),
        id="digest",
    ),
    case(
        'windows = ["1", "w_2"]',
        "",
        ("credential[1].windows", "required"),
        id="clerk-no-windows",
    ),
    case(
        'windows = ["1", "w_2"]',
        "windows = []",
        ("credential[1].windows", "at least one window"),
        id="clerk-empty-windows",
    ),
    case(
        'windows = ["1", "w_2"]',
        'windows = ["1", "9"]',
        ("credential[1].windows", "no window '9'"),
        id="clerk-unknown-window",
    ),
    case(
        TOKEN_LINE,
        f'{TOKEN_LINE}\nwindows = ["1"]',
        ("credential[0].windows", "only a clerk"),
        id="kiosk-windows",
    ),
    case(
        TOKEN_LINE,
        f'token = "{CLERK_TOKEN}"',
        ("credential[1].token_sha256", "same token as credential[0]"),
        id="same-token",
    ),
    case(
        'role = "kiosk"',
        'role = "kiosk"\nlabel = "hall A"',
        ("credential[0].label", "unknown key"),
        id="credential-key",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_each_mistake_is_reported_under_its_key(
    tmp_path: Path, old: str, new: str, expected: list[tuple[str, str]]
) -> None:
    problems = problems_of(tmp_path, edited(old, new))
    assert len(problems) == len(expected), problems
    for problem, (key, fragment) in zip(problems, expected, strict=True):
        assert problem.key == key, problems
        assert fragment in problem.message, problems
        assert problem.file == str(tmp_path / "hall.toml")


# --- sections missing or of the wrong shape ---------------------------------


def test_an_empty_file_lists_every_required_section(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "")
    assert keys_of(problems) == ["hall", "group", "service", "window"]
    assert "[hall]" in problems[0].message
    assert "at least one [[group]]" in problems[1].message


def test_empty_arrays_count_as_missing(tmp_path: Path) -> None:
    text = "group = []\n[hall]\nid = 'x'\nname = 'X'\ntimezone = 'UTC'\n"
    assert keys_of(problems_of(tmp_path, text)) == ["group", "service", "window"]


def test_a_table_where_an_array_of_tables_belongs(tmp_path: Path) -> None:
    text = edited('[[group]]\nid = "legal"\nname = "法人综合窗口"\n', "")
    text = edited('[[group]]\nid = "natural"', '[group]\nid = "natural"', text)
    problems = problems_of(tmp_path, text)
    # Without a usable [[group]] section no group exists: every reference to
    # one is listed too, so one pass shows all there is to fix.
    assert keys_of(problems) == [
        "group",
        "service[0].group",
        "service[1].group",
        "service[2].group",
        "window[0].groups",
        "window[0].groups",
        "window[1].groups",
    ]
    assert "write [[group]], not [group]" in problems[0].message
    assert problems[1].message == "there is no group 'natural'; the groups are: none"


def test_a_non_table_entry_in_an_array(tmp_path: Path) -> None:
    without_credentials = VALID[: VALID.index("[[credential]]")]
    text = 'credential = ["kiosk", { role = "display", token = "display-token" }]\n'
    problems = problems_of(tmp_path, text + without_credentials)
    assert [(p.key, p.message) for p in problems] == [
        ("credential[0]", "must be a table, not a string")
    ]


def test_tokens_never_appear_in_problems(tmp_path: Path) -> None:
    text = edited(TOKEN_LINE, 'token = "s3cr3t"')
    text = edited(DIGEST_LINE, 'token_sha256 = "hunter2-is-not-hex"', text)
    problems = problems_of(tmp_path, text)
    assert keys_of(problems) == ["credential[0].token", "credential[1].token_sha256"]
    assert "s3cr3t" not in str(problems)
    assert "hunter2" not in str(problems)


# --- many problems at once --------------------------------------------------

MANY_MISTAKES = """
title = "demo"

[hall]
id = "Daye"
name = ""
timezone = "Asia/Shangai"

[priority]
elderly = -1
normal = 5

[appointments]
early_minute = 30
grace_minutes = "ten"

[[group]]
id = "natural"
name = "自然人"

[[group]]
id = "natural"
name = "重复"

[[group]]
id = "tax"
name = "税务"

[[service]]
id = "social security"
name = "社保"
group = "natural"
prefix = "A"
expected_minutes = 0

[[service]]
id = "tax-filing"
name = "纳税申报"
group = "tax"
prefix = "A"
expected_minutes = 10

[[window]]
id = "1"
name = "1号窗口"
groups = ["natural", "police"]

[[credential]]
role = "clerk"
token = "demo"

[[credential]]
role = "display"
token = "display-token"
windows = ["1"]
"""


def test_a_file_with_many_problems_lists_them_all_at_once(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, MANY_MISTAKES)
    assert keys_of(problems) == [
        "title",
        "hall.id",
        "hall.name",
        "hall.timezone",
        "priority.elderly",
        "priority.normal",
        "appointments.early_minute",
        "appointments.grace_minutes",
        "group[1].id",
        "service[0].id",
        "service[0].expected_minutes",
        "service[1].prefix",
        "window[0].groups",
        "credential[0].token",
        "credential[0].windows",
        "credential[1].windows",
        "group[2]",
    ]
    messages = {p.key: p.message for p in problems}
    assert messages["hall.timezone"] == (
        "'Asia/Shangai' is not an IANA time zone name such as 'Asia/Shanghai'"
    )
    assert messages["group[2]"] == "no window serves group 'tax'; its tickets could never be called"
    error = ConfigError(problems)
    assert str(error).count("hall.toml: ") == len(problems)


# --- unreadable files -------------------------------------------------------


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_hall_config(path)
    assert caught.value.problems == [Problem(str(path), "(file)", "file not found")]


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_hall_config(tmp_path)
    [problem] = caught.value.problems
    assert problem.key == "(file)"
    assert "cannot read" in problem.message


def test_a_toml_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[hall]\nid = "daye\n')
    with pytest.raises(ConfigError) as caught:
        load_hall_config(path)
    [problem] = caught.value.problems
    assert (problem.file, problem.key) == (str(path), "(file)")
    assert "not valid TOML" in problem.message
    assert "line 2" in problem.message


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes(VALID.encode("gbk"))
    with pytest.raises(ConfigError) as caught:
        load_hall_config(path)
    [problem] = caught.value.problems
    assert "UTF-8" in problem.message


# --- several halls ----------------------------------------------------------


def test_load_halls_returns_each_hall_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, VALID, "a.toml")
    second = write(tmp_path, edited('id = "testhall"', 'id = "other"'), "b.toml")
    halls = load_halls([first, second, DEMO])
    assert [h.id for h in halls] == ["testhall", "other", "daye"]
    assert [h.source for h in halls] == [str(first), str(second), str(DEMO)]
    assert load_halls([]) == ()


def test_load_halls_reports_a_hall_id_used_twice(tmp_path: Path) -> None:
    first = write(tmp_path, VALID, "a.toml")
    second = write(tmp_path, VALID, "b.toml")
    with pytest.raises(ConfigError) as caught:
        load_halls([first, second])
    assert caught.value.problems == [
        Problem(
            str(second),
            "hall.id",
            f"hall id 'testhall' is also used by {first}; every hall needs its own id",
        )
    ]


def test_load_halls_collects_the_problems_of_every_file(tmp_path: Path) -> None:
    good = write(tmp_path, VALID, "good.toml")
    # Same id as good.toml and a mistake of its own: both are reported.
    bad = write(tmp_path, edited('prefix = "C"', 'prefix = "c"'), "bad.toml")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        load_halls([good, bad, missing])
    assert [(p.file, p.key) for p in caught.value.problems] == [
        (str(bad), "service[2].prefix"),
        (str(bad), "hall.id"),
        (str(missing), "(file)"),
    ]


def test_hall_config_is_built_only_by_loading(tmp_path: Path) -> None:
    # HallConfig stays a plain frozen dataclass: equal files give equal configs.
    one = load_hall_config(write(tmp_path, VALID, "one.toml"))
    two = load_hall_config(write(tmp_path, VALID, "two.toml"))
    assert dataclasses.replace(one, source="") == dataclasses.replace(two, source="")
    assert isinstance(one, HallConfig)


# --- remote tickets ---------------------------------------------------------

APPOINTMENTS = "[appointments]\nearly_minutes = 15\ngrace_minutes = 5\n"


def test_remote_tickets_are_off_by_default(tmp_path: Path) -> None:
    hall = load_hall_config(write(tmp_path, VALID))
    assert hall.remote == RemoteRules(
        enabled=False, require_phone=False, daily_cap=200, per_client_per_hour=3
    )


def test_remote_rules_load(tmp_path: Path) -> None:
    remote = "[remote]\nenabled = true\nrequire_phone = true\ndaily_cap = 50\n"
    hall = load_hall_config(write(tmp_path, edited(APPOINTMENTS, APPOINTMENTS + remote)))
    assert hall.remote == RemoteRules(
        enabled=True, require_phone=True, daily_cap=50, per_client_per_hour=3
    )


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('enabled = "yes"', "remote.enabled", "must be true or false"),
        ("require_phone = 1", "remote.require_phone", "must be true or false"),
        ("daily_cap = -1", "remote.daily_cap", "must be 0 or more"),
        ("daily_cap = 2.5", "remote.daily_cap", "must be a whole number"),
        ("per_client_per_hour = 0", "remote.per_client_per_hour", "must be 1 or more"),
        ("per_client_per_hour = true", "remote.per_client_per_hour", "must be a whole number"),
        ("enable = true", "remote.enable", ""),
    ],
)
def test_remote_mistakes_are_reported_under_their_key(
    tmp_path: Path, body: str, key: str, fragment: str
) -> None:
    problems = problems_of(tmp_path, edited(APPOINTMENTS, f"{APPOINTMENTS}[remote]\n{body}\n"))
    assert keys_of(problems) == [key]
    assert fragment in problems[0].message


# --- rate limits ------------------------------------------------------------


def test_limits_default_to_the_contracts_figures(tmp_path: Path) -> None:
    hall = load_hall_config(write(tmp_path, VALID))
    assert hall.limits == Limits(issue_per_minute=120, public_per_minute=300)


def test_limits_load(tmp_path: Path) -> None:
    limits = "[limits]\nissue_per_minute = 30\n"
    hall = load_hall_config(write(tmp_path, edited(APPOINTMENTS, APPOINTMENTS + limits)))
    assert hall.limits == Limits(issue_per_minute=30, public_per_minute=300)


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ("issue_per_minute = 0", "limits.issue_per_minute", "must be 1 or more"),
        ("public_per_minute = 2.5", "limits.public_per_minute", "must be a whole number"),
        ('public_per_minute = "300"', "limits.public_per_minute", "must be a whole number"),
        ("per_minute = 10", "limits.per_minute", ""),
    ],
)
def test_limit_mistakes_are_reported_under_their_key(
    tmp_path: Path, body: str, key: str, fragment: str
) -> None:
    problems = problems_of(tmp_path, edited(APPOINTMENTS, f"{APPOINTMENTS}[limits]\n{body}\n"))
    assert keys_of(problems) == [key]
    assert fragment in problems[0].message
