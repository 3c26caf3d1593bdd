"""The words for why a ticket was called (queue_core/reasons.py), and the
archive keeping the reason (an archive made before reasons gains the columns)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from queue_core.archive import ArchivedTicket
from queue_core.archive._db import SqliteArchive
from queue_core.models import TicketStatus
from queue_core.reasons import CODES, CallReason, reason_text


@pytest.mark.parametrize(
    ("reason", "group", "zh", "en"),
    [
        (CallReason("place", 0), "", "按取号顺序", "In turn"),
        (CallReason("credit", 3, "elderly"), "", "长者优先：先于 3 位更早取号的群众",
         "Elderly priority: ahead of 3 earlier tickets"),
        (CallReason("credit", 1, "military"), "", "military优先：先于 1 位更早取号的群众",
         "military priority: ahead of 1 earlier ticket"),
        (CallReason("appointment", 2, "appointment"), "", "预约优先：先于 2 位更早取号的群众",
         "Appointment priority: ahead of 2 earlier tickets"),
        (CallReason("ratio", 2, "disabled"), "", "按比例轮到优先群众：先于 2 位更早取号的群众",
         "Ratio, the priority turn: ahead of 2 earlier tickets"),
        (CallReason("ratio", 1, "normal"), "", "按比例轮到普通群众：先于 1 位更早取号的群众",
         "Ratio, the normal turn: ahead of 1 earlier ticket"),
        (CallReason("order", 4), "法人综合窗口", "本窗口先办法人综合窗口：先于 4 位更早取号的群众",
         "This window serves 法人综合窗口 first: ahead of 4 earlier tickets"),
        (CallReason("out_of_turn", 0), "", "窗口指定叫号：先于 0 位更早取号的群众",
         "Called out of turn: ahead of 0 earlier tickets"),
        (CallReason("resume", 5), "", "暂离后恢复叫号", "Called back after stepping away"),
    ],
)  # fmt: skip
def test_each_reason_in_both_languages(reason: CallReason, group: str, zh: str, en: str) -> None:
    assert reason_text(reason, "zh", group) == zh
    assert reason_text(reason, "en", group) == en


def test_every_code_has_words() -> None:
    for code in CODES:
        assert reason_text(CallReason(code, 1, "elderly"), "zh") != code


def test_an_archive_made_before_reasons_gains_them(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE tickets (hall TEXT NOT NULL, day TEXT NOT NULL, id TEXT NOT NULL, "
        "number TEXT NOT NULL, service TEXT NOT NULL, service_group TEXT NOT NULL, "
        "priority TEXT NOT NULL, status TEXT NOT NULL, issued_ms BIGINT NOT NULL, "
        "called_ms BIGINT, finished_ms BIGINT, window_id TEXT, clerk TEXT, rating TEXT, "
        "rating_reason TEXT, rated_ms BIGINT, remote BOOLEAN NOT NULL, PRIMARY KEY (hall, id))"
    )
    old.execute(
        "INSERT INTO tickets VALUES ('h', '2026-11-20', 'old', 'A001', 's', 'g', 'normal', "
        "'completed', 1, 2, 3, '1', NULL, NULL, NULL, NULL, 0)"
    )
    old.commit()
    old.close()
    archive = SqliteArchive(str(path))
    try:
        assert [(t.id, t.call_reason, t.ahead_of) for t in archive.day("h", "2026-11-20")] == [
            ("old", None, None)
        ]
        new = ArchivedTicket("h", "2026-11-21", "new", "A002", "s", "g", "elderly",
                             TicketStatus.COMPLETED, 10, 20, 30, "1",
                             call_reason="credit", ahead_of=2)  # fmt: skip
        archive.put([new])
        assert archive.day("h", "2026-11-21") == [new]
    finally:
        archive.close()
    SqliteArchive(str(path)).close()  # opening it again adds nothing twice
