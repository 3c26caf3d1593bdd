"""Hall configuration: TOML in, frozen typed objects out.

`load_hall_config` reads and validates one file and raises `ConfigError`
listing every problem found at once (file, key, what is wrong), so an
operator fixes a config in one pass instead of one error per restart.
`load_halls` does the same for several files and also catches two files
claiming the same hall id.

A problem's key is a dotted path into the file; arrays of tables are
indexed from 0 in file order, so `service[2].group` is the `group` key of
the third `[[service]]`. Messages never repeat a token: problem lists end
up in logs and terminals.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from queue_core.calendar import DAY_MINUTES, WEEKDAYS, CallingRules, Hours, Span
from queue_core.models import NORMAL, Role


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists everything wrong with it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    name: str
    group: str
    prefix: str
    expected_minutes: float
    target_minutes: float | None = None
    """The service level: a wait longer than this is a breach (None: no target)."""
    daily_cap: int | None = None
    """Tickets of the service a hall day may hold (kiosk, phone and check-in
    together); past it the kiosk and the phone get 409 `service_full`, while a
    booked appointment still checks in. None: no cap."""


@dataclass(frozen=True, slots=True)
class Window:
    id: str
    name: str
    groups: tuple[str, ...]
    order: str = "place"
    """How it picks among its groups (`WINDOW_ORDERS`): "place", the earliest
    place across them; "groups", its first group (in `groups` order) with
    anyone waiting: the window's work profile."""


RULES: Final = ("credit", "fifo", "ratio")
"""`[dispatch] rule`: "credit", the classes' time credits; "fifo", arrival
order, credits ignored; "ratio", per group `ratio.normal` normal tickets then
`ratio.priority` of any priority class, each side in arrival order
(`dispatcher/dispatch.py`)."""
WINDOW_ORDERS: Final = ("place", "groups")


@dataclass(frozen=True, slots=True)
class DispatchRules:
    """`[dispatch]`: the hall's rule for who is called next."""

    rule: str = "credit"
    ratio_normal: int = 2
    ratio_priority: int = 1


@dataclass(frozen=True, slots=True)
class Credential:
    """A bearer credential. `token_sha256` is the lowercase hex digest; a plain
    `token` in the file is hashed at load so only digests are kept."""

    role: Role
    token_sha256: str
    windows: frozenset[str]
    name: str = ""
    """Who holds it (a clerk's name), for reports; never used to authenticate."""

    @property
    def digest_id(self) -> str:
        """`role:<first 16 hex of the token's SHA-256>`: what scopes an
        idempotency key (hashed again there). Internal only: never shown,
        logged or stored, since a weak token can be found from it by trying
        tokens; what leaves the process is `auth.Credentials.label`. Tickets
        archived before labels (issue 14) recorded it as their clerk, and
        reports relabel those (`auth.Credentials.relabel`)."""
        return f"{self.role.value}:{self.token_sha256[:16]}"


@dataclass(frozen=True, slots=True)
class AppointmentRules:
    early_minutes: float = 30.0
    grace_minutes: float = 10.0


@dataclass(frozen=True, slots=True)
class RemoteRules:
    """Remote tickets (taken on a phone, without a kiosk) and their guards."""

    enabled: bool = False
    require_phone: bool = False
    """Ask for a mobile number; one active remote ticket per number."""
    daily_cap: int = 200
    """Remote tickets per service per local day."""
    per_client_per_hour: int = 3
    """Remote tickets one client address may take in a clock hour."""


class LimitKind(StrEnum):
    """What a `[limits]` entry counts."""

    ISSUE = "issue"
    """Tickets a credential issues (and appointments it checks in)."""
    PUBLIC = "public"
    """Requests a client address makes to the endpoints that take no token."""


@dataclass(frozen=True, slots=True)
class Limits:
    """`[limits]`: requests a minute past which qms answers 429 `rate_limited`."""

    issue_per_minute: int = 120
    """Tickets issued (and appointments checked in) per credential: a real
    kiosk issues a few a minute, even at a hall's peak."""
    public_per_minute: int = 300
    """Requests per client address to the endpoints that take no token."""

    def per_minute(self, kind: LimitKind) -> int:
        return self.issue_per_minute if kind is LimitKind.ISSUE else self.public_per_minute


@dataclass(frozen=True, slots=True)
class IssuingRules:
    """`[issuing]`: rules on who may hold a ticket."""

    one_active_per_person: bool = False
    """A resident identity number may hold one waiting, called or parked
    ticket at a time (tickets issued with `id_number`)."""


MIN_SNOOZE_MINUTES: Final = 5.0
MAX_SNOOZE_MINUTES: Final = 30.0
"""The bounds of a snooze (`POST /tickets/{id}/snooze`), whatever the hall says."""


@dataclass(frozen=True, slots=True)
class NotifyRules:
    """`[notify]`: the hall's own gateway (SMS, WeChat, app push), which qms
    calls with a signed webhook when a ticket that asked for it nears its
    turn or is called."""

    url: str = ""
    """Where deliveries are POSTed; empty: the hall has no gateway."""
    secret_env: str = "QMS_NOTIFY_SECRET"
    """The environment variable holding the HMAC-SHA256 key (never the file)."""
    ahead: tuple[int, ...] = (5, 1)
    """Notify when this many are ahead, largest first (then when called)."""
    kiosk_ask_minutes: float = 20.0
    """The kiosk offers to text a visitor whose service's estimated wait is
    at least this long (0: always)."""

    @property
    def enabled(self) -> bool:
        return bool(self.url)


NOTIFY_MAX_THRESHOLDS: Final = 5
NOTIFY_MAX_AHEAD: Final = 50


DEFAULT_ELDERLY_AGE: Final = 60
ELDERLY_AGES: Final = range(50, 101)
ELDERLY_AGE_KEY: Final = "elderly_age"
"""In `[priority]`, beside the classes' credits: not a class."""


@dataclass(frozen=True, slots=True)
class HallConfig:
    id: str
    name: str
    timezone: ZoneInfo
    priority: dict[str, float]  # class -> credit in minutes; math.inf = strict
    appointments: AppointmentRules
    groups: tuple[Group, ...]
    services: tuple[Service, ...]
    windows: tuple[Window, ...]
    credentials: tuple[Credential, ...]
    remote: RemoteRules = RemoteRules()
    source: str = ""
    hours: Hours | None = None
    """`[hours]`; None (no such section): open all day, every day."""
    calling: CallingRules = field(default_factory=CallingRules)
    dispatch: DispatchRules = field(default_factory=DispatchRules)
    language: str = "zh"
    """The language of what the hall's visitors read ("zh" or "en")."""
    elderly_age: int = DEFAULT_ELDERLY_AGE
    """`[priority] elderly_age`: from this age on (on the hall's day) an
    identity number makes a ticket `elderly`, where the hall has that class."""
    issuing: IssuingRules = IssuingRules()
    notify: NotifyRules = NotifyRules()
    limits: Limits = Limits()
    group_by_id: dict[str, Group] = field(init=False, repr=False, compare=False)
    service_by_id: dict[str, Service] = field(init=False, repr=False, compare=False)
    window_by_id: dict[str, Window] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_by_id", {g.id: g for g in self.groups})
        object.__setattr__(self, "service_by_id", {s.id: s for s in self.services})
        object.__setattr__(self, "window_by_id", {w.id: w for w in self.windows})

    def credit_minutes(self, priority: str) -> float:
        """The time credit a class gets in the queue under the hall's rule: its
        configured credit (0 when absent, `math.inf` for strict priority);
        under "fifo" none; under "ratio" none for normal tickets and an
        infinite one for every priority class."""
        if self.dispatch.rule == "fifo":
            return 0.0
        if self.dispatch.rule == "ratio":
            # Two sides, each in arrival order: the priority side leads the queue.
            return 0.0 if priority == NORMAL else math.inf
        return self.priority.get(priority, 0.0)

    def kiosk_classes(self) -> frozenset[str]:
        """Classes a kiosk may ask for: those configured, plus normal, minus appointment."""
        return frozenset({"normal", *self.priority}) - {"appointment"}

    def windows_serving(self, group: str) -> tuple[Window, ...]:
        return tuple(w for w in self.windows if group in w.groups)


def load_hall_config(path: str | Path) -> HallConfig:
    """Read and validate one hall file; raise `ConfigError` with every problem."""
    checked = _check_file(path)
    if checked.config is None:
        raise ConfigError(checked.problems)
    return checked.config


def load_halls(paths: Iterable[str | Path]) -> tuple[HallConfig, ...]:
    """Load several hall files, in order; raise `ConfigError` with the problems
    of every file, and one more for each hall id already used by an earlier file."""
    problems: list[Problem] = []
    halls: list[HallConfig] = []
    file_of_hall: dict[str, str] = {}
    for path in paths:
        checked = _check_file(path)
        problems.extend(checked.problems)
        hall_id = checked.hall_id
        if hall_id is not None and hall_id in file_of_hall:
            problems.append(
                Problem(
                    str(path),
                    "hall.id",
                    f"hall id {hall_id!r} is also used by {file_of_hall[hall_id]}; "
                    "every hall needs its own id",
                )
            )
        elif hall_id is not None:
            file_of_hall[hall_id] = str(path)
        if checked.config is not None:
            halls.append(checked.config)
    if problems:
        raise ConfigError(problems)
    return tuple(halls)


# --- rules ------------------------------------------------------------------

_ID: Final = re.compile(r"[a-z0-9-]{1,32}")
_ID_RULE: Final = "use 1 to 32 lowercase letters a-z, digits or '-'"
_WINDOW_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_WINDOW_ID_RULE: Final = "use 1 to 32 letters, digits, '_' or '-'"
_CLASS_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CLASS_NAME_RULE: Final = "use a lowercase letter, then up to 31 lowercase letters, digits or '_'"
_PREFIX: Final = re.compile(r"[A-Z]{1,2}")
_PREFIX_RULE: Final = "use 1 or 2 uppercase letters A-Z"
_SHA256_HEX: Final = re.compile(r"[0-9a-fA-F]{64}")
MIN_TOKEN_CHARS: Final = 8

_SECTIONS: Final = (
    "hall", "priority", "appointments", "remote", "hours", "calling", "dispatch", "issuing",
    "notify", "limits", "group", "service", "window", "credential",
)  # fmt: skip
_LANGUAGES: Final = ("zh", "en")  # the first is the default
_LANGUAGE: Final = re.compile("|".join(_LANGUAGES))
_LANGUAGE_RULE: Final = 'use "zh" (Chinese) or "en" (English)'
_SPAN: Final = re.compile(r"\s*([^-\s]+)\s*-\s*([^-\s]+)\s*")
_SPAN_EXAMPLE: Final = '"08:30-12:00"'
_CLOCK: Final = re.compile(r"([0-9]{2}):([0-9]{2})")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_RULE: Final = 'write YYYY-MM-DD, such as "2026-10-01"'
_FILE_KEY: Final = "(file)"
_MISSING: Final = object()

_T = TypeVar("_T")


# --- reading ----------------------------------------------------------------


class _Report:
    """The problems found so far in one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, key, message))


@dataclass(frozen=True, slots=True)
class _Checked:
    config: HallConfig | None
    problems: list[Problem]
    hall_id: str | None  # known even for a broken file, so load_halls can spot duplicates


def _check_file(path: str | Path) -> _Checked:
    report = _Report(str(path))
    doc = _read_toml(report, path)
    if doc is None:
        return _Checked(None, report.problems, None)
    _reject_unknown(report, "", doc, _SECTIONS, "section")
    hall_id, name, timezone, language = _hall(report, doc)
    priority = _priority(report, doc)
    elderly_age = _elderly_age(report, doc, priority)
    issuing = _issuing(report, doc)
    appointments = _appointments(report, doc)
    remote = _remote(report, doc)
    hours = _hours(report, doc)
    calling = _calling(report, doc)
    dispatch = _dispatch(report, doc)
    notify = _notify(report, doc)
    limits = _limits(report, doc)
    groups = _groups(report, doc)
    # Without a usable [[group]] section no group exists: every reference to
    # one is a problem of its own, listed along with the section's.
    group_ids = set() if groups is None else set(groups.ids)
    services = _services(report, doc, group_ids)
    windows = _windows(report, doc, group_ids)
    credentials = _credentials(report, doc, None if windows is None else set(windows.ids))
    if groups is not None:
        _check_group_coverage(report, groups, services, windows)
    if report.problems:
        return _Checked(None, report.problems, hall_id)
    # Every part below was reported as a problem if it were missing.
    assert hall_id is not None and name is not None and timezone is not None
    assert groups is not None and services is not None and windows is not None
    config = HallConfig(
        id=hall_id,
        name=name,
        timezone=timezone,
        priority=priority,
        appointments=appointments,
        groups=tuple(groups.built),
        services=tuple(services.built),
        windows=tuple(windows.built),
        credentials=tuple(credentials.built),
        remote=remote,
        source=str(path),
        hours=hours,
        calling=calling,
        dispatch=dispatch,
        language=language,
        elderly_age=elderly_age,
        issuing=issuing,
        notify=notify,
        limits=limits,
    )
    return _Checked(config, [], hall_id)


def _read_toml(report: _Report, path: str | Path) -> dict[str, object] | None:
    try:
        # utf-8-sig: hall staff edit these files on Windows, whose editors may add a BOM.
        return tomllib.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        report.add(_FILE_KEY, "file not found")
    except OSError as e:
        report.add(_FILE_KEY, f"cannot read the file: {e.strerror or e}")
    except UnicodeDecodeError:
        report.add(_FILE_KEY, "the file is not UTF-8 text")
    except tomllib.TOMLDecodeError as e:
        report.add(_FILE_KEY, f"not valid TOML: {e}")
    return None


def _kind(value: object) -> str:
    """The TOML name of a value's type, for 'must be X, not Y' messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date or time"


def _to_float(value: object) -> float | None:
    """A TOML integer or float as a float, else None (TOML booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float
        return math.inf


def _raw_id(data: dict[str, object]) -> str | None:
    """An entry's id as written, valid or not, so references to an entry whose
    id breaks a rule are not reported a second time. An integer counts as its
    digits: `id = 1` for window "1" is a likely slip, reported once."""
    value = data.get("id")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _reject_unknown(
    report: _Report, where: str, data: dict[str, object], allowed: Sequence[str], what: str
) -> None:
    for name in data:
        if name in allowed:
            continue
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
        report.add(f"{where}.{name}" if where else name, f"unknown {what}; {hint}")


def _table(report: _Report, doc: dict[str, object], name: str) -> dict[str, object] | None:
    """The top-level table `[name]`, or None when absent or not a table."""
    value = doc.get(name, _MISSING)
    if value is _MISSING:
        return None
    if isinstance(value, dict):
        return value
    report.add(name, f"must be a table [{name}], not {_kind(value)}")
    return None


def _array_of_tables(
    report: _Report, doc: dict[str, object], name: str, *, required: bool
) -> list[tuple[str, dict[str, object]]] | None:
    """The entries of `[[name]]` with their keys `name[i]`; None when the
    section is missing or unusable (reported when required)."""
    value = doc.get(name, _MISSING)
    if value is _MISSING or value == []:
        if required:
            report.add(name, f"at least one [[{name}]] is required")
            return None
        return []
    if isinstance(value, dict):
        report.add(name, f"must be an array of tables: write [[{name}]], not [{name}]")
        return None
    if not isinstance(value, list):
        report.add(name, f"must be an array of tables [[{name}]], not {_kind(value)}")
        return None
    entries: list[tuple[str, dict[str, object]]] = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            entries.append((f"{name}[{i}]", item))
        else:
            report.add(f"{name}[{i}]", f"must be a table, not {_kind(item)}")
    return entries


class _Table:
    """One TOML table under check. Each accessor returns the value when it is
    valid and None otherwise, having reported why under the table's key."""

    def __init__(
        self, report: _Report, where: str, data: dict[str, object], allowed: Sequence[str]
    ) -> None:
        self.report = report
        self.where = where
        self.data = data
        _reject_unknown(report, where, data, allowed, "key")

    def key(self, name: str) -> str:
        return f"{self.where}.{name}"

    def _get(self, name: str, *, required: bool) -> object:
        value = self.data.get(name, _MISSING)
        if value is _MISSING and required:
            self.report.add(self.key(name), "is required but missing")
        return value

    def text(
        self,
        name: str,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
        *,
        secret: bool = False,
    ) -> str | None:
        value = self._get(name, required=True)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            hint = ""
            if isinstance(value, int) and not isinstance(value, bool) and not secret:
                hint = f' (put it in quotes: "{value}")'
            self.report.add(self.key(name), f"must be a string, not {_kind(value)}{hint}")
            return None
        if not value.strip():
            self.report.add(self.key(name), "must not be empty")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            shown = "the value" if secret else repr(value)
            self.report.add(self.key(name), f"{shown} is not valid: {rule}")
            return None
        return value

    def minutes(self, name: str, *, positive: bool, default: float | None = None) -> float | None:
        value = self._get(name, required=default is None)
        if value is _MISSING:
            return default
        number = _to_float(value)
        if number is None:
            hint = (
                " (remove the quotes)" if isinstance(value, str) and _looks_numeric(value) else ""
            )
            self.report.add(
                self.key(name), f"must be a number of minutes, not {_kind(value)}{hint}"
            )
        elif not math.isfinite(number):
            self.report.add(self.key(name), "must be a finite number of minutes")
        elif positive and number <= 0:
            self.report.add(self.key(name), f"must be greater than 0, not {value}")
        elif number < 0:
            self.report.add(self.key(name), f"must be 0 or more, not {value}")
        else:
            return number
        return None

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, required=False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.report.add(self.key(name), f"must be true or false, not {_kind(value)}")
            return default
        return value

    def choice(self, name: str, options: Sequence[str], default: str) -> str:
        value = self._get(name, required=False)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or value not in options:
            shown = repr(value) if isinstance(value, str) else _kind(value)
            allowed = " or ".join(f'"{o}"' for o in options)
            self.report.add(self.key(name), f"must be {allowed}, not {shown}")
            return default
        return value

    def count(self, name: str, default: int, *, minimum: int) -> int:
        value = self._get(name, required=False)
        if value is _MISSING:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self.report.add(self.key(name), f"must be a whole number, not {_kind(value)}")
            return default
        if value < minimum:
            self.report.add(self.key(name), f"must be {minimum} or more, not {value}")
            return default
        return value

    def text_list(self, name: str, *, required: bool) -> list[str] | None:
        """A list of strings, each at most once; the strings of a list with
        problems are still returned so references in them can be checked."""
        value = self._get(name, required=required)
        if value is _MISSING:
            return None
        if not isinstance(value, list):
            self.report.add(
                self.key(name), f'must be an array such as ["a", "b"], not {_kind(value)}'
            )
            return None
        items: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.report.add(f"{self.key(name)}[{i}]", f"must be a string, not {_kind(item)}")
            elif item in items:
                self.report.add(f"{self.key(name)}[{i}]", f"{item!r} is listed twice")
            else:
                items.append(item)
        return items


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class _Entries(Generic[_T]):
    """What one `[[...]]` section yielded. `ids` and `groups_named` record what
    the file declares and references, valid or not, for cross-checks."""

    built: list[_T] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)  # id -> key of the entry declaring it
    groups_named: set[str] = field(default_factory=set)

    def declare(self, report: _Report, key: str, data: dict[str, object], kind: str) -> None:
        ident = _raw_id(data)
        if ident is None:
            return
        if ident in self.ids:
            report.add(f"{key}.id", f"duplicate {kind} id {ident!r}: {self.ids[ident]} has it too")
        else:
            self.ids[ident] = key


# --- sections ---------------------------------------------------------------


def _hall(
    report: _Report, doc: dict[str, object]
) -> tuple[str | None, str | None, ZoneInfo | None, str]:
    default_language = _LANGUAGES[0]
    data = _table(report, doc, "hall")
    if data is None:
        if "hall" not in doc:
            report.add("hall", "the [hall] table is required")
        return None, None, None, default_language
    t = _Table(report, "hall", data, ("id", "name", "timezone", "language"))
    hall_id = t.text("id", _ID, _ID_RULE)
    name = t.text("name")
    zone_name = t.text("timezone")
    language = (
        t.text("language", _LANGUAGE, _LANGUAGE_RULE) if "language" in data else default_language
    )
    return hall_id, name, _zone(t, zone_name), language or default_language


def _zone(t: _Table, name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        t.report.add(
            t.key("timezone"), f"{name!r} is not an IANA time zone name such as 'Asia/Shanghai'"
        )
        return None


def _priority(report: _Report, doc: dict[str, object]) -> dict[str, float]:
    credits: dict[str, float] = {}
    for name, value in (_table(report, doc, "priority") or {}).items():
        if name == ELDERLY_AGE_KEY:
            continue  # an age, not a class (`_elderly_age`)
        key = f"priority.{name}"
        if not _CLASS_NAME.fullmatch(name):
            report.add(key, f"{name!r} is not a valid class name: {_CLASS_NAME_RULE}")
        credit = _credit(report, key, value)
        if credit is None:
            continue
        if name == NORMAL and credit != 0:
            report.add(key, "normal is the class without credit; it can only be 0")
            continue
        credits[name] = credit
    return credits


def _credit(report: _Report, key: str, value: object) -> float | None:
    """Minutes of credit; TOML `inf` or the string "inf" for strict priority."""
    if isinstance(value, str) and value.strip().lower() == "inf":
        return math.inf
    number = _to_float(value)
    if number is None:
        report.add(key, f"must be a number of minutes or inf, not {_kind(value)}")
    elif math.isnan(number) or number < 0:
        report.add(key, f"must be 0 or more minutes, or inf, not {value}")
    else:
        return number
    return None


def _elderly_age(report: _Report, doc: dict[str, object], credits: dict[str, float]) -> int:
    data = doc.get("priority")
    if not isinstance(data, dict) or ELDERLY_AGE_KEY not in data:
        return DEFAULT_ELDERLY_AGE
    key = f"priority.{ELDERLY_AGE_KEY}"
    value = data[ELDERLY_AGE_KEY]
    low, high = ELDERLY_AGES[0], ELDERLY_AGES[-1]
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (remove the quotes)" if isinstance(value, str) and value.isdigit() else ""
        report.add(key, f"must be a whole number of years, not {_kind(value)}{hint}")
    elif value not in ELDERLY_AGES:
        report.add(key, f"must be from {low} to {high} years, not {value}")
    elif "elderly" not in credits and "elderly" not in data:
        # Without the class the age would never make a ticket elderly.
        report.add(
            key,
            "the hall has no elderly class for it to apply to: "
            "add `elderly = <minutes of credit>` to [priority], or remove elderly_age",
        )
    else:
        return value
    return DEFAULT_ELDERLY_AGE


def _issuing(report: _Report, doc: dict[str, object]) -> IssuingRules:
    defaults = IssuingRules()
    data = _table(report, doc, "issuing")
    if data is None:
        return defaults
    t = _Table(report, "issuing", data, ("one_active_per_person",))
    return IssuingRules(
        one_active_per_person=t.flag("one_active_per_person", defaults.one_active_per_person)
    )


def _appointments(report: _Report, doc: dict[str, object]) -> AppointmentRules:
    defaults = AppointmentRules()
    data = _table(report, doc, "appointments")
    if data is None:
        return defaults
    t = _Table(report, "appointments", data, ("early_minutes", "grace_minutes"))
    early = t.minutes("early_minutes", positive=False, default=defaults.early_minutes)
    grace = t.minutes("grace_minutes", positive=False, default=defaults.grace_minutes)
    return AppointmentRules(
        early_minutes=defaults.early_minutes if early is None else early,
        grace_minutes=defaults.grace_minutes if grace is None else grace,
    )


def _remote(report: _Report, doc: dict[str, object]) -> RemoteRules:
    defaults = RemoteRules()
    data = _table(report, doc, "remote")
    if data is None:
        return defaults
    t = _Table(
        report, "remote", data, ("enabled", "require_phone", "daily_cap", "per_client_per_hour")
    )
    return RemoteRules(
        enabled=t.flag("enabled", defaults.enabled),
        require_phone=t.flag("require_phone", defaults.require_phone),
        daily_cap=t.count("daily_cap", defaults.daily_cap, minimum=0),
        per_client_per_hour=t.count("per_client_per_hour", defaults.per_client_per_hour, minimum=1),
    )


def _limits(report: _Report, doc: dict[str, object]) -> Limits:
    defaults = Limits()
    data = _table(report, doc, "limits")
    if data is None:
        return defaults
    t = _Table(report, "limits", data, ("issue_per_minute", "public_per_minute"))
    return Limits(
        issue_per_minute=t.count("issue_per_minute", defaults.issue_per_minute, minimum=1),
        public_per_minute=t.count("public_per_minute", defaults.public_per_minute, minimum=1),
    )


def _hours(report: _Report, doc: dict[str, object]) -> Hours | None:
    """`[hours]`, or None without one (open all day, every day). With it, a
    weekday it leaves out is closed."""
    data = _table(report, doc, "hours")
    if data is None:
        return None
    t = _Table(report, "hours", data, (*WEEKDAYS, "closed", "open", "issue_until_minutes"))
    weekly = tuple(_day_spans(t, day) if day in data else () for day in WEEKDAYS)
    closed = _dates(t, "closed")
    opened = _open_dates(t, closed)
    until = t.minutes("issue_until_minutes", positive=False, default=0.0)
    return Hours(
        weekly=weekly,
        closed=frozenset(closed),
        open=opened,
        issue_until_minutes=0.0 if until is None else until,
    )


def _day_spans(t: _Table, name: str) -> tuple[Span, ...]:
    """The valid spans of the day `t[name]`, sorted by start: an array of
    "HH:MM-HH:MM" strings. A day's spans may touch (12:00-13:00 then
    13:00-14:00) but not overlap."""
    value = t.data[name]
    if isinstance(value, str):  # the brackets forgotten: mon = "08:30-12:00"
        t.report.add(t.key(name), f'must be an array of spans, not a string: write ["{value}"]')
        return ()
    if not isinstance(value, list):
        t.report.add(
            t.key(name), f"must be an array of spans such as [{_SPAN_EXAMPLE}], not {_kind(value)}"
        )
        return ()
    spans: list[tuple[Span, str]] = []
    for i, item in enumerate(value):
        span = _span(t.report, f"{t.key(name)}[{i}]", item)
        if span is not None:
            spans.append((span, str(item).strip()))  # as written, for messages
    spans.sort()
    reach: tuple[Span, str] | None = None  # the span ending last so far
    for span, text in spans:
        if reach is not None and span.start < reach[0].end:
            if span == reach[0]:
                t.report.add(t.key(name), f"{text!r} is listed twice")
            else:
                t.report.add(t.key(name), f"{reach[1]!r} and {text!r} overlap")
        if reach is None or span.end > reach[0].end:
            reach = (span, text)
    return tuple(span for span, _ in spans)


def _span(report: _Report, key: str, value: object) -> Span | None:
    """One "HH:MM-HH:MM" span within a day; 24:00 only as its end."""
    if not isinstance(value, str):
        report.add(key, f"must be a string such as {_SPAN_EXAMPLE}, not {_kind(value)}")
        return None
    match = _SPAN.fullmatch(value)
    if match is None:
        report.add(key, f"{value!r} is not a span of time: write {_SPAN_EXAMPLE}")
        return None
    start = _clock(report, key, match[1], end=False)
    end = _clock(report, key, match[2], end=True)
    if start is None or end is None:
        return None
    if end <= start:
        hint = (
            " (a span cannot cross midnight: end it at 24:00, start the next day at 00:00)"
            if end < start
            else ""
        )
        report.add(key, f"{value!r} must end after it starts{hint}")
        return None
    return Span(start, end)


def _clock(report: _Report, key: str, text: str, *, end: bool) -> int | None:
    """Minutes after midnight of an "HH:MM" time."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        report.add(key, f"{text!r} is not a time: write HH:MM, such as 08:30")
        return None
    minutes = int(match[1]) * 60 + int(match[2])
    if int(match[2]) > 59 or minutes > DAY_MINUTES:
        report.add(key, f"{text!r} is not a time of day: use 00:00 to 23:59, or 24:00 as an end")
        return None
    if minutes == DAY_MINUTES and not end:
        report.add(key, f"{text!r} can only end a span: start at 00:00 instead")
        return None
    return minutes


def _dates(t: _Table, name: str) -> list[date]:
    """An array of dates, each a TOML date or a "YYYY-MM-DD" string, each once."""
    value = t.data.get(name, _MISSING)
    if value is _MISSING:
        return []
    if not isinstance(value, list):
        t.report.add(
            t.key(name), f'must be an array of dates such as ["2026-10-01"], not {_kind(value)}'
        )
        return []
    dates: list[date] = []
    for i, item in enumerate(value):
        key = f"{t.key(name)}[{i}]"
        day = _date(t.report, key, item)
        if day is None:
            continue
        if day in dates:
            t.report.add(key, f"{day.isoformat()} is listed twice")
        else:
            dates.append(day)
    return dates


def _date(report: _Report, key: str, value: object) -> date | None:
    if isinstance(value, datetime):  # a subclass of date: a TOML date-time
        report.add(key, f"must be a date without a time of day: {_DATE_RULE}")
        return None
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        report.add(key, f"must be a date ({_DATE_RULE}), not {_kind(value)}")
        return None
    return _date_text(report, key, value)


def _date_text(report: _Report, key: str, text: str) -> date | None:
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            report.add(key, f"{text!r} is not a day of the calendar")
            return None
    report.add(key, f"{text!r} is not a date: {_DATE_RULE}")
    return None


def _open_dates(t: _Table, closed: list[date]) -> dict[date, tuple[Span, ...]]:
    """`open`: date -> spans, for days the weekday rule would close (调休)."""
    value = t.data.get("open", _MISSING)
    if value is _MISSING:
        return {}
    if not isinstance(value, dict):
        t.report.add(
            t.key("open"),
            f'must be a table such as {{ "2026-09-27" = [{_SPAN_EXAMPLE}] }}, not {_kind(value)}',
        )
        return {}
    days = _Table(t.report, t.key("open"), value, tuple(value))  # each key a date, checked below
    opened: dict[date, tuple[Span, ...]] = {}
    for name in value:
        day = _date_text(t.report, days.key(name), name)
        spans = _day_spans(days, name)
        if value[name] == []:
            t.report.add(
                days.key(name),
                "must list at least one span; to close the day, list it in hours.closed",
            )
        if day is None:
            continue
        if day in closed:
            t.report.add(
                days.key(name), "this date is also in hours.closed; a date is either closed or open"
            )
        elif spans:
            opened[day] = spans
    return opened


def _calling(report: _Report, doc: dict[str, object]) -> CallingRules:
    defaults = CallingRules()
    data = _table(report, doc, "calling")
    if data is None:
        return defaults
    t = _Table(
        report, "calling", data, ("recall_limit", "late_return_minutes", "max_snooze_minutes")
    )
    recall_limit = t.count("recall_limit", defaults.recall_limit, minimum=0)
    late = t.minutes("late_return_minutes", positive=False, default=defaults.late_return_minutes)
    snooze = t.minutes("max_snooze_minutes", positive=False, default=defaults.max_snooze_minutes)
    if (
        snooze is not None
        and snooze != 0
        and not (MIN_SNOOZE_MINUTES <= snooze <= MAX_SNOOZE_MINUTES)
    ):
        report.add(
            t.key("max_snooze_minutes"),
            f"must be 0 (no snoozing) or from {MIN_SNOOZE_MINUTES:g} to "
            f"{MAX_SNOOZE_MINUTES:g} minutes, not {snooze:g}",
        )
        snooze = None
    return CallingRules(
        recall_limit=recall_limit,
        late_return_minutes=defaults.late_return_minutes if late is None else late,
        max_snooze_minutes=defaults.max_snooze_minutes if snooze is None else snooze,
    )


_ENV_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_ENV_NAME_RULE: Final = "use an environment variable name: A-Z, 0-9 and '_'"
_HTTP_URL: Final = re.compile(r"https?://[^\s/?#]+[^\s]*")
_HTTP_URL_RULE: Final = "use an http:// or https:// URL"


def _notify(report: _Report, doc: dict[str, object]) -> NotifyRules:
    defaults = NotifyRules()
    data = _table(report, doc, "notify")
    if data is None:
        return defaults
    t = _Table(report, "notify", data, ("url", "secret_env", "ahead", "kiosk_ask_minutes"))
    url = t.text("url", _HTTP_URL, _HTTP_URL_RULE)
    secret_env = defaults.secret_env
    if "secret_env" in data:
        secret_env = t.text("secret_env", _ENV_NAME, _ENV_NAME_RULE) or defaults.secret_env
    ask = t.minutes("kiosk_ask_minutes", positive=False, default=defaults.kiosk_ask_minutes)
    return NotifyRules(
        url=url or "",
        secret_env=secret_env,
        ahead=_thresholds(report, data.get("ahead", _MISSING), defaults.ahead),
        kiosk_ask_minutes=defaults.kiosk_ask_minutes if ask is None else ask,
    )


def _thresholds(report: _Report, value: object, default: tuple[int, ...]) -> tuple[int, ...]:
    """`[notify] ahead`: distinct counts of people ahead, largest first."""
    if value is _MISSING:
        return default
    key = "notify.ahead"
    if not isinstance(value, list) or not value:
        report.add(key, f"must be a non-empty array of counts such as [5, 1], not {_kind(value)}")
        return default
    if len(value) > NOTIFY_MAX_THRESHOLDS:
        report.add(key, f"may list at most {NOTIFY_MAX_THRESHOLDS} counts, not {len(value)}")
        return default
    counts: list[int] = []
    for i, item in enumerate(value):
        if not isinstance(item, int) or isinstance(item, bool):
            report.add(f"{key}[{i}]", f"must be a whole number, not {_kind(item)}")
        elif not 0 <= item <= NOTIFY_MAX_AHEAD:
            report.add(f"{key}[{i}]", f"must be from 0 to {NOTIFY_MAX_AHEAD}, not {item}")
        elif item in counts:
            report.add(f"{key}[{i}]", f"{item} is listed twice")
        else:
            counts.append(item)
    return tuple(sorted(counts, reverse=True)) if len(counts) == len(value) else default


def _dispatch(report: _Report, doc: dict[str, object]) -> DispatchRules:
    data = _table(report, doc, "dispatch")
    if data is None:
        return DispatchRules()
    t = _Table(report, "dispatch", data, ("rule", "ratio"))
    rule = t.choice("rule", RULES, RULES[0])
    defaults = DispatchRules()
    ratio = data.get("ratio", _MISSING)
    if ratio is _MISSING:
        return DispatchRules(rule)
    if not isinstance(ratio, dict):
        report.add(
            "dispatch.ratio", f"must be a table {{normal = 2, priority = 1}}, not {_kind(ratio)}"
        )
        return DispatchRules(rule)
    r = _Table(report, "dispatch.ratio", ratio, ("normal", "priority"))
    return DispatchRules(
        rule,
        r.count("normal", defaults.ratio_normal, minimum=1),
        r.count("priority", defaults.ratio_priority, minimum=1),
    )


def _groups(report: _Report, doc: dict[str, object]) -> _Entries[Group] | None:
    entries = _array_of_tables(report, doc, "group", required=True)
    if entries is None:
        return None
    groups: _Entries[Group] = _Entries()
    for key, data in entries:
        t = _Table(report, key, data, ("id", "name"))
        groups.declare(report, key, data, "group")
        group_id = t.text("id", _ID, _ID_RULE)
        name = t.text("name")
        if group_id is not None and name is not None:
            groups.built.append(Group(group_id, name))
    return groups


def _services(
    report: _Report, doc: dict[str, object], group_ids: set[str]
) -> _Entries[Service] | None:
    entries = _array_of_tables(report, doc, "service", required=True)
    if entries is None:
        return None
    services: _Entries[Service] = _Entries()
    for key, data in entries:
        t = _Table(
            report,
            key,
            data,
            ("id", "name", "group", "prefix", "expected_minutes", "target_minutes", "daily_cap"),
        )
        services.declare(report, key, data, "service")
        service_id = t.text("id", _ID, _ID_RULE)
        name = t.text("name")
        group = t.text("group")
        if group is not None:
            services.groups_named.add(group)
            _check_group_exists(report, t.key("group"), group, group_ids)
        prefix = t.text("prefix", _PREFIX, _PREFIX_RULE)
        minutes = t.minutes("expected_minutes", positive=True)
        target = t.minutes("target_minutes", positive=True) if "target_minutes" in data else None
        cap = t.count("daily_cap", 0, minimum=1) or None  # 0: absent (or refused, reported)
        if (
            service_id is not None
            and name is not None
            and group is not None
            and prefix is not None
            and minutes is not None
        ):
            services.built.append(Service(service_id, name, group, prefix, minutes, target, cap))
    _check_prefixes(report, entries)
    return services


def _check_prefixes(report: _Report, entries: list[tuple[str, dict[str, object]]]) -> None:
    """Tickets of one prefix share one daily counter and a number like A023
    must say where to queue, so one prefix may only serve one group."""
    first_use: dict[str, tuple[str, str]] = {}  # prefix -> (group, key of first service)
    for key, data in entries:
        prefix, group = data.get("prefix"), data.get("group")
        if not isinstance(prefix, str) or not isinstance(group, str):
            continue
        first_group, first_key = first_use.setdefault(prefix, (group, key))
        if first_group != group:
            report.add(
                f"{key}.prefix",
                f"prefix {prefix!r} is already used by {first_key} in group {first_group!r}; "
                "services of different groups need different prefixes",
            )


def _windows(
    report: _Report, doc: dict[str, object], group_ids: set[str]
) -> _Entries[Window] | None:
    entries = _array_of_tables(report, doc, "window", required=True)
    if entries is None:
        return None
    windows: _Entries[Window] = _Entries()
    for key, data in entries:
        t = _Table(report, key, data, ("id", "name", "groups", "order"))
        windows.declare(report, key, data, "window")
        order = t.choice("order", WINDOW_ORDERS, WINDOW_ORDERS[0])
        window_id = t.text("id", _WINDOW_ID, _WINDOW_ID_RULE)
        name = t.text("name")
        served = t.text_list("groups", required=True)
        if served is not None:
            windows.groups_named.update(served)
            for group in served:
                _check_group_exists(report, t.key("groups"), group, group_ids)
            if not data["groups"]:
                report.add(
                    t.key("groups"),
                    "must name at least one group: a window serving no group calls nobody",
                )
        if window_id is not None and name is not None and served:
            windows.built.append(Window(window_id, name, tuple(served), order))
    return windows


def _check_group_exists(report: _Report, key: str, group: str, group_ids: set[str]) -> None:
    if group in group_ids:
        return
    known = ", ".join(repr(g) for g in sorted(group_ids)) or "none"
    report.add(key, f"there is no group {group!r}; the groups are: {known}")


def _credentials(
    report: _Report, doc: dict[str, object], window_ids: set[str] | None
) -> _Entries[Credential]:
    credentials: _Entries[Credential] = _Entries()
    entries = _array_of_tables(report, doc, "credential", required=False)
    key_of_digest: dict[str, str] = {}
    for key, data in entries or []:
        t = _Table(report, key, data, ("role", "token", "token_sha256", "windows", "name"))
        role = _role(t)
        holder = t.text("name") if "name" in data else ""
        digest = _digest(t)
        windows = _credential_windows(t, role, window_ids)
        if digest is not None:
            token_key = t.key("token" if "token" in data else "token_sha256")
            other = key_of_digest.setdefault(digest, key)
            if other != key:
                report.add(token_key, f"same token as {other}; every credential needs its own")
        if role is not None and digest is not None and windows is not None and holder is not None:
            credentials.built.append(Credential(role, digest, windows, holder))
    return credentials


def _role(t: _Table) -> Role | None:
    name = t.text("role")
    if name is None:
        return None
    try:
        return Role(name)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        t.report.add(t.key("role"), f"{name!r} is not a role; use one of {roles}")
        return None


def _digest(t: _Table) -> str | None:
    """The lowercase sha256 hex digest of the credential's token: a plain
    token is hashed here so that only digests stay in memory."""
    has_token, has_digest = "token" in t.data, "token_sha256" in t.data
    if has_token and has_digest:
        t.report.add(t.where, "has both token and token_sha256; give exactly one")
        return None
    if not has_token and not has_digest:
        t.report.add(t.where, "needs a token or a token_sha256")
        return None
    if has_digest:
        digest = t.text("token_sha256", _SHA256_HEX, "use 64 hexadecimal digits", secret=True)
        return None if digest is None else digest.lower()
    token = t.text("token", secret=True)
    if token is None:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        t.report.add(t.key("token"), f"must be at least {MIN_TOKEN_CHARS} characters long")
        return None
    return token_sha256(token)


def token_sha256(token: str) -> str:
    """A credential's `token_sha256`: the lowercase hex SHA-256 of its UTF-8 token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _credential_windows(
    t: _Table, role: Role | None, window_ids: set[str] | None
) -> frozenset[str] | None:
    """The windows a clerk operates; other roles name none (managers and
    admins reach every window, the rest reach none)."""
    if role is None:
        return None  # which rule applies depends on the role, already reported as wrong
    if role is not Role.CLERK:
        if "windows" in t.data:
            t.report.add(
                t.key("windows"), f"only a clerk credential names windows, not a {role.value}"
            )
            return None
        return frozenset()
    if "windows" not in t.data:
        t.report.add(t.key("windows"), "is required: name the windows this clerk operates")
        return None
    windows = t.text_list("windows", required=True)
    if windows is None:
        return None
    if not t.data["windows"]:
        t.report.add(t.key("windows"), "must name at least one window the clerk operates")
        return None
    unknown = [w for w in windows if window_ids is not None and w not in window_ids]
    for window in unknown:
        t.report.add(t.key("windows"), f"there is no window {window!r}")
    return None if unknown else frozenset(windows)


def _check_group_coverage(
    report: _Report,
    groups: _Entries[Group],
    services: _Entries[Service] | None,
    windows: _Entries[Window] | None,
) -> None:
    """A group without services is dead config; a group no window serves
    would take tickets that nobody can ever call."""
    for group, key in groups.ids.items():
        if services is not None and group not in services.groups_named:
            report.add(key, f"no service belongs to group {group!r}")
        if windows is not None and group not in windows.groups_named:
            report.add(key, f"no window serves group {group!r}; its tickets could never be called")
