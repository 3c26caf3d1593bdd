"""Why a ticket was called, in words (pure: no I/O).

A call carries a reason: `code` (what made the window take this ticket),
`ahead_of` (how many waiting tickets of the window's groups, issued
earlier, it was called before) and a sentence in the hall's language. The
code is decided where the call is made (`call_next.lua`, by the rule of
`dispatcher/dispatch.py`: `call_reason`); this module only words it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CODES", "CallReason", "reason_text"]

CODES = ("place", "credit", "appointment", "ratio", "order", "out_of_turn", "resume")

_CLASS_ZH = {"elderly": "长者", "disabled": "残障人士", "appointment": "预约"}
_CLASS_EN = {"elderly": "Elderly", "disabled": "Disability", "appointment": "Appointment"}


@dataclass(frozen=True, slots=True)
class CallReason:
    code: str
    ahead_of: int
    priority: str = "normal"
    """The called ticket's class (the credit's name in the sentence)."""


def reason_text(reason: CallReason, language: str, group_name: str = "") -> str:
    """The sentence for `reason` in "zh" or "en" ("长者优先：先于 3 位更早取号的群众")."""
    zh = language != "en"
    n = reason.ahead_of
    ahead = (f"先于 {n} 位更早取号的群众" if zh
             else f"ahead of {n} earlier ticket{'s' if n != 1 else ''}")  # fmt: skip
    code = reason.code
    if code == "place":
        return "按取号顺序" if zh else "In turn"
    if code in ("credit", "appointment"):
        cls = (_CLASS_ZH if zh else _CLASS_EN).get(reason.priority, reason.priority)
        return f"{cls}优先：{ahead}" if zh else f"{cls} priority: {ahead}"
    if code == "ratio":
        side = "优先群众" if reason.priority != "normal" else "普通群众"
        side_en = "priority" if reason.priority != "normal" else "normal"
        return f"按比例轮到{side}：{ahead}" if zh else f"Ratio, the {side_en} turn: {ahead}"
    if code == "order":
        group = group_name or ("本窗口首选业务" if zh else "its first group")
        return (f"本窗口先办{group}：{ahead}" if zh
                else f"This window serves {group} first: {ahead}")  # fmt: skip
    if code == "out_of_turn":
        return f"窗口指定叫号：{ahead}" if zh else f"Called out of turn: {ahead}"
    if code == "resume":
        return "暂离后恢复叫号" if zh else "Called back after stepping away"
    return code
