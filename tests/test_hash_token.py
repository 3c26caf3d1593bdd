"""`qms hash-token`: a token on standard input, its `token_sha256` out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from qms.cli import main
from queue_core.models import Role
from tests.support import TOKENS, make_config


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["hash-token"])
    out, err = capsys.readouterr()
    return code, out, err


def test_it_prints_the_digest_the_config_makes_of_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(monkeypatch, capsys, TOKENS["kiosk"] + "\n")
    assert (code, err) == (0, "")
    config = make_config(tmp_path)
    kiosk = next(c for c in config.credentials if c.role is Role.KIOSK)
    assert out == kiosk.token_sha256 + "\n"
    assert TOKENS["kiosk"] not in out


@pytest.mark.parametrize(
    ("stdin", "fragment"),
    [
        ("", "no token"),
        ("  \n", "no token"),
        ("short7!\n", "too short"),
        ("first-token\nsecond-token\n", "one line"),
    ],
)
def test_it_refuses_an_unusable_token_in_one_line_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, fragment: str
) -> None:
    code, out, err = run(monkeypatch, capsys, stdin)
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("qms: ") and fragment in err
    for secret in stdin.split():
        assert secret not in err
