"""The daily report on a small day computed by hand: every number, and the CSV byte for byte."""

from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo

import pytest

from queue_core.archive import ArchivedAudit, ArchivedTicket
from queue_core.models import TicketStatus
from queue_core.reasons import CODES
from queue_core.report import (
    Dimension,
    ReportLine,
    daily_report,
    p90,
    render_audit_csv,
    render_csv,
)

HALL = "h1"
DAY = "2026-11-21"
NINE_MS = 1_795_222_800_000  # 2026-11-21 09:00 Asia/Shanghai


def at(minute: float | None) -> int | None:
    return None if minute is None else NINE_MS + round(minute * 60_000)


def ticket(
    number: str,
    service: str,
    status: TicketStatus,
    issued: float,
    called: float | None,
    finished: float | None,
    window: str | None = None,
    clerk: str | None = None,
    rating: str | None = None,
    hall: str = HALL,
    day: str = DAY,
) -> ArchivedTicket:
    return ArchivedTicket(
        hall=hall,
        day=day,
        id=f"id-{hall}-{day}-{number}",
        number=number,
        service=service,
        group="natural" if service == "social-security" else "other",
        priority="normal",
        status=status,
        issued_ms=NINE_MS + round(issued * 60_000),
        called_ms=at(called),
        finished_ms=at(finished),
        window=window,
        clerk=clerk,
        rating=rating,
    )


SS, BL, HH = "social-security", "business-licence", "household"
DONE, GONE, CANCELLED = TicketStatus.COMPLETED, TicketStatus.NO_SHOW, TicketStatus.CANCELLED

# Minutes after 09:00: issued, called, finished. Waits and service times in the comments.
DAY_TICKETS = [
    ticket("A001", SS, DONE, 0, 5, 13, "1", "clerk:aaa", "very_satisfied"),  # wait 5, service 8
    ticket("A002", SS, DONE, 2, 14, 20, "1", "clerk:aaa", "satisfied"),  # wait 12 > 10: breach
    ticket("A003", SS, GONE, 4, 10, 12, "2", "clerk:bbb"),  # wait 6
    ticket("A004", SS, CANCELLED, 6, None, 30),  # gave up after 24 > 10: breach
    ticket("C001", BL, DONE, 1, 3, 15, "2", "clerk:bbb", "dissatisfied"),  # wait 2, service 12
    ticket("C002", BL, DONE, 3, 19, 29, "10", None, "neutral"),  # wait 16 > 15: breach, svc 10
    ticket("C003", BL, CANCELLED, 5, None, 9),  # gave up after 4
    ticket("D001", HH, DONE, 7, 37, 47, "10"),  # wait 30, no target, service 10
]
NOISE = [
    ticket("A001", SS, DONE, 0, 1, 2, "1", hall="h2"),
    ticket("A001", SS, DONE, 0, 1, 2, "1", day="2026-11-20"),
]
TARGETS = {SS: 10.0, BL: 15.0}
LABELS = {
    Dimension.HALL: {HALL: "测试政务服务中心"},
    Dimension.SERVICE: {SS: "社保医保", BL: "营业执照", HH: "户籍办理"},
    Dimension.WINDOW: {"1": "1号窗口", "2": "2号窗口", "10": "10号窗口"},
}

EXPECTED_CSV = (
    "hall,day,dimension,key,label,issued,served,no_show,cancelled,expired,"
    "mean_wait_min,p90_wait_min,mean_service_min,breaches,target_min,rated,satisfied_share,"
    "very_satisfied,satisfied,neutral,dissatisfied,very_dissatisfied"
    ",calls_place,calls_credit,calls_appointment,calls_ratio,calls_order,calls_out_of_turn,calls_resume\r\n"
    "h1,2026-11-21,hall,h1,测试政务服务中心,8,5,1,2,0,11.8,30.0,9.2,3,,4,0.500,1,1,1,1,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,service,business-licence,营业执照,3,2,0,1,0,9.0,16.0,11.0,1,15,2,0.000,0,0,1,1,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,service,household,户籍办理,1,1,0,0,0,30.0,30.0,10.0,0,,0,,0,0,0,0,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,service,social-security,社保医保,4,2,1,1,0,7.7,12.0,7.0,2,10,2,1.000,1,1,0,0,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,window,1,1号窗口,2,2,0,0,0,8.5,12.0,7.0,1,,2,1.000,1,1,0,0,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,window,2,2号窗口,2,1,1,0,0,4.0,6.0,12.0,0,,1,0.000,0,0,0,1,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,window,10,10号窗口,2,2,0,0,0,23.0,30.0,10.0,1,,1,0.000,0,0,1,0,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,window,,,2,0,0,2,0,,,,1,,0,,0,0,0,0,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,clerk,clerk:aaa,,2,2,0,0,0,8.5,12.0,7.0,1,,2,1.000,1,1,0,0,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,clerk,clerk:bbb,,2,1,1,0,0,4.0,6.0,12.0,0,,1,0.000,0,0,0,1,0,0,0,0,0,0,0,0\r\n"
    "h1,2026-11-21,clerk,,,4,2,0,2,0,23.0,30.0,10.0,2,,1,0.000,0,0,1,0,0,0,0,0,0,0,0,0\r\n"
)


def report_lines() -> tuple[ReportLine, ...]:
    return daily_report(DAY_TICKETS + NOISE, HALL, DAY, targets=TARGETS, labels=LABELS).lines


def test_hall_line_holds_the_whole_day() -> None:
    hall = report_lines()[0]
    assert (hall.dimension, hall.key, hall.label) == (Dimension.HALL, HALL, "测试政务服务中心")
    assert (hall.issued, hall.served, hall.no_show, hall.cancelled, hall.expired) == (8, 5, 1, 2, 0)
    # Waits of the six called tickets: 2, 5, 6, 12, 16, 30.
    assert hall.mean_wait_min == pytest.approx(71 / 6)
    assert hall.p90_wait_min == 30.0  # rank ceil(0.9 * 6) = 6
    assert hall.mean_service_min == pytest.approx(46 / 5)  # 8, 6, 12, 10, 10
    assert hall.breaches == 3  # A002, A004 (cancelled after 24 minutes), C002
    assert hall.target_min is None
    assert (hall.rated, hall.satisfied_share, hall.ratings) == (4, 0.5, (1, 1, 1, 1, 0))


def test_service_line_uses_its_target() -> None:
    by_key = {line.key: line for line in report_lines() if line.dimension is Dimension.SERVICE}
    social = by_key[SS]
    assert (social.issued, social.served, social.no_show, social.cancelled) == (4, 2, 1, 1)
    assert social.mean_wait_min == pytest.approx(23 / 3)  # 5, 12, 6
    assert social.p90_wait_min == 12.0
    assert (social.breaches, social.target_min, social.satisfied_share) == (2, 10.0, 1.0)
    household = by_key[HH]
    assert (household.breaches, household.target_min, household.rated) == (0, None, 0)
    assert household.satisfied_share is None


def test_every_section_adds_up_to_the_hall() -> None:
    lines = report_lines()
    hall = lines[0]
    for dimension in (Dimension.SERVICE, Dimension.WINDOW, Dimension.CLERK):
        section = [line for line in lines if line.dimension is dimension]
        assert sum(line.issued for line in section) == hall.issued
        assert sum(line.breaches for line in section) == hall.breaches
        assert sum(line.rated for line in section) == hall.rated


def test_csv_is_exact_utf8_with_bom() -> None:
    report = daily_report(DAY_TICKETS + NOISE, HALL, DAY, targets=TARGETS, labels=LABELS)
    data = render_csv(report)
    assert data.startswith(b"\xef\xbb\xbf")
    assert data[3:].decode("utf-8") == EXPECTED_CSV


def test_an_empty_day_still_has_its_hall_line() -> None:
    report = daily_report([], HALL, DAY)
    assert [(line.dimension, line.key, line.issued) for line in report.lines] == [
        (Dimension.HALL, HALL, 0)
    ]
    assert render_csv(report).decode("utf-8-sig").splitlines()[1] == (
        "h1,2026-11-21,hall,h1,,0,0,0,0,0,,,,0,,0,,0,0,0,0,0,0,0,0,0,0,0,0"
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        ([7.0], 7.0),
        ([float(v) for v in range(1, 11)], 9.0),  # rank ceil(9.0) = 9
        ([float(v) for v in range(1, 12)], 10.0),  # rank ceil(9.9) = 10
        ([3.0, 1.0, 2.0], 3.0),  # rank ceil(2.7) = 3: unsorted input
    ],
)
def test_p90_is_nearest_rank(values: list[float], expected: float | None) -> None:
    assert p90(values) == expected


def test_expired_tickets_are_counted() -> None:
    """A day whose end expired two tickets: one that waited all day, one
    called and parked at window 1 and never resumed."""
    expired = TicketStatus.EXPIRED
    tickets = [
        ticket("A001", SS, DONE, 0, 2, 10, "1", "李四"),  # wait 2, service 8
        ticket("A002", SS, expired, 1, None, 600),  # waited 599 > 10: breach
        ticket("C001", BL, expired, 2, 4, 600, "1", "李四"),  # wait 2, parked
    ]
    report = daily_report(tickets, HALL, DAY, targets=TARGETS, labels=LABELS)
    hall = report.lines[0]
    assert (hall.issued, hall.served, hall.no_show, hall.cancelled, hall.expired) == (3, 1, 0, 0, 2)
    assert (hall.mean_wait_min, hall.mean_service_min, hall.breaches) == (2.0, 8.0, 1)
    assert render_csv(report).decode("utf-8-sig").split("\r\n")[1:-1] == [
        "h1,2026-11-21,hall,h1,测试政务服务中心,3,1,0,0,2,2.0,2.0,8.0,1,,0,,0,0,0,0,0,0,0,0,0,0,0,0",
        "h1,2026-11-21,service,business-licence,营业执照,1,0,0,0,1,2.0,2.0,,0,15,0,,0,0,0,0,0,0,0,0,0,0,0,0",
        "h1,2026-11-21,service,social-security,社保医保,2,1,0,0,1,2.0,2.0,8.0,1,10,0,,0,0,0,0,0,0,0,0,0,0,0,0",
        "h1,2026-11-21,window,1,1号窗口,2,1,0,0,1,2.0,2.0,8.0,0,,0,,0,0,0,0,0,0,0,0,0,0,0,0",
        "h1,2026-11-21,window,,,1,0,0,0,1,,,,1,,0,,0,0,0,0,0,0,0,0,0,0,0,0",
        "h1,2026-11-21,clerk,李四,,2,1,0,0,1,2.0,2.0,8.0,0,,0,,0,0,0,0,0,0,0,0,0,0,0,0",
        "h1,2026-11-21,clerk,,,1,0,0,0,1,,,,1,,0,,0,0,0,0,0,0,0,0,0,0,0,0",
    ]


def audit(entry_id: str, minute: float, actor: str, role: str, action: str,
          window: str | None, number: str | None, client: str) -> ArchivedAudit:  # fmt: skip
    return ArchivedAudit(
        HALL, DAY, entry_id, NINE_MS + round(minute * 60_000), actor, role, action,
        window, number, client,
    )  # fmt: skip


def test_audit_csv_is_exact_utf8_with_bom_in_id_order() -> None:
    unnamed, v4, v6, on_duty = "clerk-1a2b3c4d", "10.0.0.9", "2001:db8::5", "王主任, 值班"
    rows = [
        audit(f"{NINE_MS + 90_000}-10", 1.5, "李四", "clerk", "complete", "1", "A001", "10.0.0.5"),
        audit(f"{NINE_MS}-0", 0, "李四", "clerk", "open_window", "1", None, "10.0.0.5"),
        audit(f"{NINE_MS + 90_000}-9", 1.5, "李四", "clerk", "recall", "1", "A001", "10.0.0.5"),
        audit(f"{NINE_MS + 90_060}-0", 1.501, unnamed, "clerk", "call_next", "2", "A002", v6),
        audit(f"{NINE_MS + 600_000}-0", 10, on_duty, "manager", "close_hall", None, None, v4),
    ]
    data = render_audit_csv(rows, ZoneInfo("Asia/Shanghai"))
    assert data.startswith(b"\xef\xbb\xbf")
    assert data[3:].decode("utf-8").split("\r\n") == [
        "at,actor,role,action,window,number,client",
        "2026-11-21T09:00:00.000+08:00,李四,clerk,open_window,1,,10.0.0.5",
        "2026-11-21T09:01:30.000+08:00,李四,clerk,recall,1,A001,10.0.0.5",
        "2026-11-21T09:01:30.000+08:00,李四,clerk,complete,1,A001,10.0.0.5",
        "2026-11-21T09:01:30.060+08:00,clerk-1a2b3c4d,clerk,call_next,2,A002,2001:db8::5",
        '2026-11-21T09:10:00.000+08:00,"王主任, 值班",manager,close_hall,,,10.0.0.9',
        "",
    ]
    assert render_audit_csv([], ZoneInfo("Asia/Shanghai")) == (
        b"\xef\xbb\xbfat,actor,role,action,window,number,client\r\n"
    )


def test_calls_are_counted_by_their_reason() -> None:
    base = ticket("A001", "social-security", TicketStatus.COMPLETED, 0, 5, 10, window="1")
    rows = [
        dataclasses.replace(base, id="a", call_reason="place", ahead_of=0),
        dataclasses.replace(base, id="b", call_reason="credit", ahead_of=3),
        dataclasses.replace(base, id="c", call_reason="credit", ahead_of=1),
        dataclasses.replace(base, id="d", call_reason="out_of_turn", ahead_of=2),
        dataclasses.replace(base, id="e"),  # archived before reasons were kept
    ]
    hall_line = daily_report(rows, HALL, DAY).lines[0]
    counts = dict(zip(CODES, hall_line.calls_by_reason, strict=True))
    assert counts == {"place": 1, "credit": 2, "appointment": 0, "ratio": 0, "order": 0,
                      "out_of_turn": 1, "resume": 0}  # fmt: skip
