"""`loadtests.failover`'s arithmetic: the timeline around a disruption and
the table, on attempts made up here (the measurement itself runs real
processes: `python -m loadtests.failover`)."""

from __future__ import annotations

import pytest

from loadtests.failover import Attempt, Stream, Target, skipped_numbers, table, timeline


def stream_of(*attempts: Attempt) -> Stream:
    stream = Stream(Target("http://127.0.0.1:1", "h", ("1",)))
    stream.attempts.extend(attempts)
    return stream


def test_the_timeline_counts_failures_from_the_disruption_and_success_after_the_kill() -> None:
    stream = stream_of(
        Attempt("issue", "a", 9.0, 9.01, 201),
        Attempt("issue", "b", 9.5, 10.0, 503, "not_replicated"),  # during a cut-off
        Attempt("issue", "b", 10.2, 10.21, 503, "redis_unavailable"),
        Attempt("call", "c", 11.9, 12.4, 503, "redis_unavailable"),
        Attempt("issue", "b", 12.0, 12.3, 201),  # the first success after the kill
        Attempt("call", "c", 12.5, 12.6, 200),
    )
    line = timeline(stream, t=10.1, since=9.4)
    assert line.first_failure_s == pytest.approx(-0.6)
    assert line.last_failure_s == pytest.approx(2.3)
    assert line.failing_s == pytest.approx(2.9)
    assert line.first_success_s == pytest.approx(2.2)
    assert line.failed_requests == 3
    # Without a cut-off the failures are counted from the kill.
    assert timeline(stream, t=10.1).failed_requests == 2


def test_a_stream_that_never_failed_has_an_empty_timeline() -> None:
    line = timeline(stream_of(Attempt("issue", "a", 1.0, 1.1, 201)), t=0.5)
    assert (line.first_failure_s, line.last_failure_s, line.failing_s) == (None, None, 0.0)
    assert line.first_success_s == pytest.approx(0.6)


def test_the_table_has_a_row_per_run_and_per_latency_figure() -> None:
    run = {
        "scenario": "kill",
        "min_replicas": 1,
        "timeline": {
            "failing_s": 2.0,
            "first_failure_s": 0.01,
            "last_failure_s": 2.01,
            "first_success_s": None,
            "failed_requests": 3,
        },
        "findings": {
            "slowest_answer_s": 0.04,
            "unanswered": 0,
            "acknowledged": 10,
            "tickets_lost": 0,
            "numbers_issued_twice": 0,
            "tickets_called_twice": 0,
        },
    }
    latency = [
        {"min_replicas": m, "clients": c, "p50_ms": 1.0, "p99_ms": 2.0, "requests": 5}
        for m in (0, 1)
        for c in (1, 4)
    ]
    lines = table({"runs": [run, run], "latency": latency}).splitlines()
    assert lines[2] == ("| kill | 1 | 2.00 | 0.01 | 2.01 | — | 3 | 0.04 | 0 | 10 | 0 | 0 | 0 |")
    assert len(lines) == 2 + 2 + 1 + 2 + 4
    assert [line.split("|")[1:3] for line in lines[-4:]] == [
        [" 0 ", " 1.00 "], [" 1 ", " 1.00 "], [" 0 ", " 1.00 "], [" 1 ", " 1.00 "]
    ]  # fmt: skip


def test_a_ticket_waiting_below_a_called_number_was_skipped() -> None:
    def ticket(number: str, status: str) -> dict[str, str | None]:
        called_at = None if status == "waiting" else "2026-12-07T09:00:00+08:00"
        return {"number": number, "status": status, "called_at": called_at}

    tickets = [
        ticket("A008", "waiting"),  # its own call acknowledged: a lost call, not a skip
        ticket("A009", "waiting"),  # below A010 (called) and A100
        ticket("A010", "called"),
        ticket("A099", "waiting"),  # below A100, named by a call's answer
        ticket("A101", "waiting"),  # after every call
        ticket("B001", "waiting"),  # another prefix: nothing called there
    ]
    assert skipped_numbers(["A100", "A008"], tickets) == ["A009", "A099"]
    assert skipped_numbers([], tickets[:3]) == ["A008", "A009"]
    assert skipped_numbers([], [ticket("A001", "waiting"), ticket("A002", "waiting")]) == []
