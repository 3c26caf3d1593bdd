"""`qms simulate` as a user runs it: a small day through the hall's scripts
on a scratch redis-server, an archived day replayed, the HTML report, and
every bad command line as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qms.cli import main
from queue_core.archive import ArchivedTicket, open_archive
from queue_core.models import TicketStatus
from tests.support import START_S, write_hall
from tests.test_cli import assert_one_clean_line, run_qms

pytestmark = pytest.mark.redis  # each run starts a scratch redis-server

NINE = round(START_S * 1000)
MIN = 60_000
DAY = "2026-11-21"


@pytest.fixture
def hall_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test hall, its appointments without a grace: a check-in counts
    from itself, so arrival order (fifo) lets nobody overtake."""
    monkeypatch.delenv("QMS_ARCHIVE_URL", raising=False)
    path = write_hall(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("grace_minutes = 10", "grace_minutes = 0"), encoding="utf-8")
    return path


def simulate(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["simulate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_small_day_under_each_rule(
    hall_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "report.html"
    code, out, err = simulate(
        capsys, "--config", hall_file, "--windows", 2, "--visitors", 150, "--seed", 5,
        "--json", "--html", page,
    )  # fmt: skip
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    assert list(result) == ["rules"]
    rules = result["rules"]
    assert list(rules) == ["fifo", "strict", "credit", "ratio"]  # every rule
    for r in rules.values():
        assert set(r) == {"classes", "max_overtaken_minutes", "utilisation"}
        assert set(r["classes"]) == {"normal", "elderly", "disabled", "appointment"}
        for w in r["classes"].values():
            assert set(w) == {"mean", "p50", "p90", "max", "count"}
            assert 0 <= w["p50"] <= w["p90"] <= w["max"]
        assert 0 < r["utilisation"]["min"] <= r["utilisation"]["max"] <= 1
    counts = {rule: {c: w["count"] for c, w in r["classes"].items()} for rule, r in rules.items()}
    # The same day each time.
    assert counts["fifo"] == counts["strict"] == counts["credit"] == counts["ratio"]
    # Strict priority serves the elderly sooner; arrival order lets nobody
    # overtake; a credit of at most 30 minutes overtakes by at most that.
    assert (
        rules["strict"]["classes"]["elderly"]["p90"] <= rules["fifo"]["classes"]["elderly"]["p90"]
    )
    assert rules["fifo"]["max_overtaken_minutes"] == 0
    assert 0 < rules["credit"]["max_overtaken_minutes"] <= 30
    assert rules["strict"]["max_overtaken_minutes"] >= rules["credit"]["max_overtaken_minutes"]
    for rule in rules:
        assert f"qms: {rule}: 150 visitors played in" in err
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 4
    for c in ("normal", "elderly", "disabled", "appointment"):
        assert f"<figcaption>{c}</figcaption>" in html


def test_the_table_names_each_rule_and_class(
    hall_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = simulate(capsys, "--config", hall_file, "--visitors", 40, "--rule", "credit")
    assert code == 0
    assert "40 generated visitors, seed 1; the hall's 4 windows" in out
    assert "credit: a normal ticket overtaken by at most" in out
    assert "fifo" not in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("  ") and
            line.split()[0] in ("normal", "elderly")] == ["normal", "elderly"]  # fmt: skip


def archived(i: int, minutes: float, **kw: Any) -> ArchivedTicket:
    """A ticket of the test day (`hall`), issued `minutes` after 09:00 and served 8 minutes."""
    issued = NINE + round(minutes * MIN)
    fields: dict[str, Any] = dict(
        day=DAY, id=f"t{i}", number=f"A{i:03}", service="social-security", group="natural",
        priority="normal", status=TicketStatus.COMPLETED, issued_ms=issued,
        called_ms=issued + 30 * MIN, finished_ms=issued + 38 * MIN, window="2",
    )  # fmt: skip
    fields.update(kw)
    return ArchivedTicket(**fields)


def test_an_archived_day_is_replayed(
    hall_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hall = hall_file.stem
    tickets = [archived(i, i * 2, hall=hall) for i in range(30)]
    tickets += [archived(100 + i, 5 + i * 7, hall=hall, priority="elderly") for i in range(6)]
    tickets += [
        archived(200, 3, hall=hall, status=TicketStatus.CANCELLED),
        archived(201, 4, hall=hall, status=TicketStatus.NO_SHOW),
        archived(202, 50, hall=hall, priority="appointment"),
        archived(203, 1, hall="another-hall"),
        archived(204, 1, hall=hall, day="2026-11-20", issued_ms=NINE - 86_400_000),
    ]
    archive = open_archive(f"sqlite:///{tmp_path / 'data' / 'archive.db'}")
    archive.put(tickets)
    archive.close()
    code, out, err = simulate(
        capsys, "--config", hall_file, "--data-dir", tmp_path / "data", "--day", DAY,
        "--rule", "fifo", "--rule", "strict", "--windows", 1, "--json",
    )  # fmt: skip
    assert code == 0, err
    rules = json.loads(out)["rules"]
    for r in rules.values():
        counts = {c: w["count"] for c, w in r["classes"].items()}
        assert counts == {"normal": 30, "elderly": 6, "appointment": 1}  # no cancel, no no-show
    # One window, 8-minute visits every 2 minutes: a queue, which strict
    # priority lets the elderly skip.
    assert rules["fifo"]["classes"]["normal"]["max"] > 60
    assert rules["strict"]["classes"]["elderly"]["max"] < rules["fifo"]["classes"]["elderly"]["max"]
    assert "qms: fifo: 38 visitors played in" in err

    # A day the archive does not have: one line, exit 1.
    code, out, err = simulate(
        capsys, "--config", hall_file, "--data-dir", tmp_path / "data", "--day", "2026-11-22"
    )
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"qms: the archive holds no tickets of hall {hall} on 2026-11-22"
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rule", "lottery"], "unknown rule 'lottery': use fifo, strict, credit, ratio"),
        (["--windows", "0"], "--windows '0' is not a number of windows"),
        (["--windows", "two"], "--windows 'two' is not a number of windows"),
        (["--visitors", "-3"], "--visitors '-3' is not a number of visitors"),
        (["--seed", "x"], "--seed 'x' is not a whole number"),
        (["--day", "2026-13-01"], "--day '2026-13-01' is not a day"),
        (["--day", DAY, "--visitors", "10"], "--visitors is for a generated day"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(
    hall_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    code, out, err = simulate(capsys, "--config", hall_file, *args)
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("qms: ") and says in line, line


def test_a_hall_named_that_the_config_does_not_hold(
    hall_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = simulate(capsys, "--config", hall_file, "--hall", "elsewhere")
    assert code == 2
    [line] = err.strip().splitlines()
    assert "no hall 'elsewhere'" in line


def test_a_missing_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = simulate(capsys, "--config", tmp_path / "nowhere.toml")
    assert code == 2
    [line] = err.strip().splitlines()
    assert "nowhere.toml" in line and "file not found" in line


@pytest.mark.slow
def test_simulate_as_a_process(hall_file: Path, tmp_path: Path) -> None:
    result = run_qms(
        "simulate", "--config", hall_file, "--visitors", 60, "--rule", "fifo", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)["rules"]) == ["fifo"]
    line = assert_one_clean_line(run_qms("simulate", "--config", hall_file, "--windows", "0",
                                         cwd=tmp_path))  # fmt: skip
    assert "--windows" in line
    bad = run_qms("simulate", "--config", hall_file, "--rule", "lottery", cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown rule 'lottery'" in assert_one_clean_line(bad)
