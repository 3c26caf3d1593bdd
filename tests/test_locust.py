"""The Locust scenarios (loadtests/locustfile.py): their arithmetic here, and
short real runs of `python -m loadtests.county` against a real qms.

Nothing here imports locust: it monkey-patches the standard library with
gevent as it is imported, which would change every other test of this
process. Runs go through subprocesses and are judged from locust's CSV.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import math
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from loadtests import locust_hall as lh
from loadtests.locust_ws import GreenWebSocket

ROOT = Path(__file__).resolve().parents[1]
COUNTY_RUN_S = 24
STRESS_RUN_S = 30
SPEEDUP = 60  # 24 s are 24 hall minutes of the peak: a few services per window
SCREENS = 31  # the hall display and one strip per window
EXPECTED = {
    ("POST", "open"),
    ("POST", "issue"),
    ("POST", "call-next"),
    ("POST", "complete"),
    ("GET", "ticket poll"),
    ("WS", "connect"),
    ("WS", "call→screen"),
    ("WS", "seq"),
}

needs_locust = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None,
    reason="locust is not installed (pip install -e '.[load]')",
)

# ------------------------------------------------------------ fast: helpers


def test_helpers_do_not_import_locust_or_gevent() -> None:
    code = (
        "import sys, loadtests.locust_hall, loadtests.locust_county, loadtests.county\n"
        "import loadtests.locust_ws\n"
        "bad = [m for m in ('locust', 'gevent') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_parse_at_reads_milliseconds_and_offset() -> None:
    # 2026-11-21 09:00:00.123 in Shanghai is 01:00:00.123 UTC.
    assert lh.parse_at("2026-11-21T09:00:00.123+08:00") == pytest.approx(1_795_222_800.123)
    assert lh.parse_at("2026-11-21T01:00:00.123+00:00") == pytest.approx(1_795_222_800.123)
    with pytest.raises(ValueError):
        lh.parse_at("2026-11-21T09:00:00.123")  # no offset: whose time?
    with pytest.raises(ValueError):
        lh.parse_at("yesterday")


def test_county_arithmetic() -> None:
    assert lh.PEAK_ARRIVALS_PER_HOUR == 750
    assert lh.arrivals_per_s(1) == pytest.approx(750 / 3600)
    assert lh.arrivals_per_s(10) == pytest.approx(2.0833, abs=1e-4)
    # Compressed time: 8 minutes of service at speed 10 are 48 wall seconds on average.
    rng = random.Random(7)
    draws = [lh.service_wall_s(8, 10, rng) for _ in range(20_000)]
    assert sum(draws) / len(draws) == pytest.approx(48, rel=0.03)
    assert lh.wall_s(20, 10) == 2.0
    assert lh.wall_s(20, 1e9) == lh.MIN_WALL_SLEEP_S
    # Kiosks are added only when four would each be asked for more than 5/s.
    assert lh.kiosks_for(lh.arrivals_per_s(10)) == 4
    assert lh.kiosks_for(100.0) == 20


def test_stress_levels_grow_by_root_two() -> None:
    assert [round(lh.stress_multiplier(n), 3) for n in range(5)] == [1, 1.414, 2, 2.828, 4]
    assert lh.stress_multiplier(lh.STRESS_MAX_LEVEL) == 4096


def test_clerk_outcomes_and_priorities_follow_their_shares() -> None:
    rng = random.Random(11)
    n = 100_000
    outcomes = Counter(lh.clerk_outcome(rng) for _ in range(n))
    assert outcomes["no_show"] / n == pytest.approx(0.04, abs=0.004)
    assert outcomes["recall"] / n == pytest.approx(0.05, abs=0.004)
    assert outcomes["transfer"] / n == pytest.approx(0.03, abs=0.004)
    priorities = Counter(lh.pick_priority(rng) for _ in range(n))
    assert priorities["elderly"] / n == pytest.approx(0.08, abs=0.004)
    assert priorities["disabled"] / n == pytest.approx(0.02, abs=0.003)


def test_phone_rhythm_is_the_visitor_pages() -> None:
    rng = random.Random(3)
    delays = Counter(lh.phone_delay_s(1, rng) for _ in range(30_000))
    assert set(delays) == {lh.PHONE_NEAR_S, lh.PHONE_HIDDEN_S}
    assert delays[lh.PHONE_NEAR_S] / 30_000 == pytest.approx(1 / 3, abs=0.02)
    far = {lh.phone_delay_s(40, rng) for _ in range(1_000)}
    assert far == {lh.PHONE_VISIBLE_S, lh.PHONE_HIDDEN_S}
    # A stress level m makes every device m times busier, phones included.
    assert {lh.phone_delay_s(40, rng, 4.0) for _ in range(1_000)} == {0.5, 3.75}


def test_seq_tracker_finds_gaps_duplicates_and_stale_screens() -> None:
    t = lh.SeqTracker()
    t.start(10)
    assert t.event(11) is None
    assert t.event(12) is None
    assert t.events == 2
    assert t.event(12) == "duplicate seq 12 (last was 12)"
    gap = t.event(15)
    assert gap is not None and "2 event(s) missed" in gap
    assert t.last == 15  # counted once, not again at the next event
    assert t.event(16) is None
    assert t.heartbeat(16) is None
    stale = t.heartbeat(18)
    assert stale is not None and "18" in stale
    assert t.heartbeat(18) is None
    fresh = lh.SeqTracker()
    assert fresh.event(5) is None  # a reconnect's first event sets the baseline
    assert fresh.heartbeat(3) is None


def test_stress_level_holds_breaks_on_failures_and_on_p99() -> None:
    level = lh.StressLevel(3, lh.stress_multiplier(3), started_s=0.0)
    for ms in range(1, 101):
        level.record("POST", float(ms), None)
    level.record("WS", 500.0, None)  # screens' latency is not an HTTP request type
    assert level.p99() == 99
    assert level.broken(100, complete=True) is None
    assert level.broken(98, complete=False) is None  # p99 judged at the end of a level
    assert level.broken(98, complete=True) == "HTTP p99 99 ms > 98 ms"
    few = lh.StressLevel(0, 1.0, 0.0, http_ms=[500.0] * (lh.STRESS_MIN_SAMPLES - 1))
    assert few.broken(100, complete=True) is None
    level.record("WS", 0.0, "seq gap: 1 event(s) missed between 4 and 6")
    why = level.broken(100, complete=False)  # a failure ends it at once
    assert why is not None and why.startswith("1 failure(s), first: WS: seq gap")


def test_percentile_is_nearest_rank() -> None:
    assert lh.percentile([], 0.99) is None
    assert lh.percentile([5.0], 0.5) == 5.0
    assert lh.percentile([float(v) for v in range(1, 201)], 0.99) == 198.0


def test_county_hall_config() -> None:
    plan = lh.HallPlan.load(lh.CONFIG, env={})
    assert plan.hall == "county"
    assert plan.windows == tuple(str(w) for w in range(1, 31))
    assert len(set(plan.clerk_tokens.values())) == 30  # one clerk credential per window
    assert plan.clerk_tokens["7"] == "county-clerk-7"
    assert (plan.kiosk_token, plan.display_token) == ("county-kiosk", "county-display")
    assert {s.id for s in plan.services} == set(lh.COUNTY_SHARES)
    assert plan.mean_service_minutes() == pytest.approx(8.4)
    # The windows serve about 214 an hour against 750 arriving: the peak's queue grows.
    assert plan.served_per_hour() == pytest.approx(214.3, abs=0.1)
    # The stress shape's clerks keep up with the peak instead.
    assert lh.balanced_service_factor(plan) == pytest.approx(214.3 / 750, abs=1e-3)
    admin = lh.HallPlan.load(lh.CONFIG, env={"QMS_LOAD_CLERK_TOKEN": "county-admin"})
    assert set(admin.clerk_tokens.values()) == {"county-admin"}
    assert plan.transfer_target("id-card", random.Random(1)).id != "id-card"


def test_county_hall_config_passes_check_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qms", "check-config", str(lh.CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_read_stats_csv(tmp_path: Path) -> None:
    path = tmp_path / "x_stats.csv"
    header = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    )
    path.write_text(
        f"{header}\n"
        "WS,call→screen,310,0,2,2.5,0,14,170,12.9,0.0,2,3,3,3,5,6,10,14,16,16,16\n"
        "POST,issue,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n",
        encoding="utf-8",
    )
    rows = lh.read_stats_csv(path)
    assert rows[0] == lh.StatRow("WS", "call→screen", 310, 0, 2.0, 14.0, 12.9, 170.0)
    assert (rows[1].p50_ms, rows[1].p99_ms) == (None, None)


# ------------------------------------------- fast: the screens' WebSocket


@contextlib.contextmanager
def ws_server(
    handler: Callable[[ServerConnection], None],
    process_request: Callable[[ServerConnection, Request], Response | None] | None = None,
) -> Iterator[str]:
    """A websockets server in a thread (no gevent here): its ws:// URL."""
    with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/ws"
        finally:
            server.shutdown()
            thread.join(5)


def test_green_websocket_reads_messages_and_the_servers_close_code() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send('{"type": "snapshot", "seq": 1}')
        ws.send(["frag", "mented"])  # one message in three frames
        ws.send(b"\x01\x02")
        ws.close(1013, "too slow")

    with ws_server(handler) as url:
        client = GreenWebSocket.connect(url, open_timeout=5)
        assert client.recv() == '{"type": "snapshot", "seq": 1}'
        assert client.recv() == "fragmented"
        assert client.recv() == b"\x01\x02"
        with pytest.raises(ConnectionClosed) as closed:
            client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert client.sock.fileno() == -1  # closed with the connection


def test_green_websocket_closes_cleanly_while_the_server_keeps_sending() -> None:
    seen: list[int | None] = []

    def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for i in range(100_000):
                ws.send(f'{{"seq": {i}}}')
        seen.append(ws.close_code)

    with ws_server(handler) as url:
        client = GreenWebSocket.connect(url, open_timeout=5, close_timeout=5)
        assert client.recv() == '{"seq": 0}'
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 4  # the handshake finished, no timeout
        assert client.closed and client.sock.fileno() == -1
    assert seen == [1000]  # the server saw a normal close, not a dropped socket


def test_green_websocket_raises_on_a_refused_handshake() -> None:
    def refuse(ws: ServerConnection, request: Request) -> Response:
        return ws.respond(401, "no token\n")

    with ws_server(lambda ws: None, process_request=refuse) as url:
        with pytest.raises(InvalidStatus) as refused:
            GreenWebSocket.connect(url, open_timeout=5)
        assert refused.value.response.status_code == 401


# ------------------------------------------------------------- slow: runs


def run_county(out: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtests.county", "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stats_by_name(path: Path) -> dict[tuple[str, str], lh.StatRow]:
    return {(r.type, r.name): r for r in lh.read_stats_csv(path)}


@pytest.mark.slow
@pytest.mark.redis
@needs_locust
def test_county_run_passes_with_every_device(tmp_path: Path) -> None:
    result = run_county(
        tmp_path,
        "--minutes",
        str(COUNTY_RUN_S / 60),
        "--speedup",
        str(SPEEDUP),
        timeout=COUNTY_RUN_S + 150,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    rows = stats_by_name(tmp_path / "county_stats.csv")
    missing = EXPECTED - set(rows)
    assert not missing, f"request types missing: {missing}\n{output}"
    for key in EXPECTED:
        assert rows[key].requests > 0, key
    total = rows[("", "Aggregated")]
    assert total.failures == 0, output
    assert (tmp_path / "county_failures.csv").read_text().count("\n") == 1  # the header only
    calls = rows[("WS", "call→screen")]
    assert calls.requests > 0 and calls.p99_ms is not None
    # Every screen passed its final check: in step with the hall, having seen events.
    seq = rows[("WS", "seq")]
    assert (seq.requests, seq.failures) == (SCREENS, 0)
    assert seq.avg_size > 0
    assert rows[("WS", "connect")].requests == SCREENS  # nobody had to reconnect
    assert (tmp_path / "county.html").stat().st_size > 10_000
    assert "call→screen" in result.stdout  # the wrapper's summary
    assert "locust exit code: 0" in result.stdout


@pytest.mark.slow
@pytest.mark.redis
@needs_locust
def test_stress_run_ramps_and_reports_its_levels(tmp_path: Path) -> None:
    result = run_county(
        tmp_path,
        "--shape",
        "stress",
        "--minutes",
        str(STRESS_RUN_S / 60),
        "--speedup",
        "10",
        "--step-seconds",
        "6",
        timeout=STRESS_RUN_S + 150,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    with (tmp_path / "stress_levels.csv").open(newline="", encoding="utf-8") as f:
        levels = list(csv.DictReader(f))
    # The first levels are a light county peak: they hold on any machine.
    assert len(levels) >= 2, output
    assert [lv["level"] for lv in levels[:2]] == ["0", "1"]
    assert all(lv["held"] == "yes" for lv in levels[:2]), levels
    assert float(levels[1]["multiplier"]) == pytest.approx(math.sqrt(2), abs=0.01)
    assert int(levels[0]["http_requests"]) > 0
    assert "stress: last level that held" in result.stdout
    # The run ends by its time limit (exit 0) unless a level failed (exit 1).
    if any(int(lv["failures"]) for lv in levels):
        assert result.returncode == 1, output
    else:
        assert result.returncode == 0, output
