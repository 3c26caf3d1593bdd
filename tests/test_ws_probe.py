"""The probe screens of `loadtests.ws_bench` (`loadtests.ws_probe`).

Pure tests of the parsing and summary helpers, one of the kernel receive
timestamp on a real loopback TCP socket (this kernel, this architecture's
option number), and one slow run of the bench itself.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from loadtests import ws_bench
from loadtests.ws_probe import (
    CMSG_BYTES,
    SCM_TIMESTAMPNS,
    SO_TIMESTAMPNS,
    TIMESPEC,
    Probe,
    Sample,
    at_epoch,
    dist_ms,
    kernel_time,
    latency_summary,
)

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------ kernel timestamps


def test_kernel_time_reads_the_timespec_of_scm_timestampns() -> None:
    data = TIMESPEC.pack(1_790_000_000, 250_000_000)
    other = (socket.SOL_SOCKET, socket.SCM_RIGHTS, b"\0" * 4)
    assert kernel_time([other, (socket.SOL_SOCKET, SCM_TIMESTAMPNS, data)]) == 1_790_000_000.25


def test_kernel_time_is_none_without_the_cmsg_or_with_a_short_one() -> None:
    assert kernel_time([]) is None
    assert kernel_time([(socket.SOL_SOCKET, SCM_TIMESTAMPNS, b"\0" * 8)]) is None
    # Same type number at another level is not a timestamp.
    assert kernel_time([(socket.IPPROTO_TCP, SCM_TIMESTAMPNS, TIMESPEC.pack(1, 0))]) is None


def test_a_loopback_tcp_socket_gets_kernel_receive_timestamps() -> None:
    """SO_TIMESTAMPNS is this kernel's number, and its stamp is the real time
    the data came in: after it was sent, before recvmsg returned."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname()[:2], timeout=5)
        peer, _ = server.accept()
        with client, peer:
            client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            stamp = None
            # The kernel turns receive stamping on lazily (deferred work):
            # the first packets after the first such socket may have none.
            for _ in range(50):
                sent = time.time()
                peer.sendall(b"x")
                _data, ancdata, flags, _addr = client.recvmsg(64, CMSG_BYTES)
                received = time.time()
                assert not flags & socket.MSG_CTRUNC
                stamp = kernel_time(ancdata)
                if stamp is not None:
                    break
                time.sleep(0.02)
            assert stamp is not None, "no SCM_TIMESTAMPNS in 50 tries"
            assert sent - 0.001 <= stamp <= received + 0.001


# ------------------------------------------------------------ `at`


def test_at_epoch_reads_ms_and_offset() -> None:
    at = datetime(2026, 11, 21, 9, 30, 15, 123_000, tzinfo=timezone(timedelta(hours=8)))
    assert at_epoch("2026-11-21T09:30:15.123+08:00") == pytest.approx(at.timestamp(), abs=1e-6)
    assert at_epoch("2026-11-21T01:30:15.123+00:00") == pytest.approx(at.timestamp(), abs=1e-6)
    assert at_epoch("2026-11-21T01:30:15.123Z") == pytest.approx(at.timestamp(), abs=1e-6)


def test_at_epoch_refuses_a_time_without_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        at_epoch("2026-11-21T09:30:15.123")


# ------------------------------------------------------------ summaries


def test_dist_ms_is_nearest_rank_and_zero_when_empty() -> None:
    assert dist_ms([]) == {"min": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    values = [float(x) for x in range(100, 0, -1)]
    assert dist_ms(values) == {"min": 1.0, "p50": 50.0, "p99": 99.0, "max": 100.0}


def test_latency_summary_separates_kernel_and_parse_latency() -> None:
    at1, at2 = 1000.0, 1001.0
    samples = [
        # seq 1: three probes, the kernel 5/6/9 ms after `at`, parsed 1 ms later.
        Sample(1, at1, at1 + 0.005, at1 + 0.006),
        Sample(1, at1, at1 + 0.006, at1 + 0.007),
        Sample(1, at1, at1 + 0.009, at1 + 0.010),
        # seq 2: one unstamped, one whose stamp is after its parse (impossible:
        # counted, so a broken clock or option shows).
        Sample(2, at2, None, at2 + 0.020),
        Sample(2, at2, at2 + 0.004, at2 + 0.003),
    ]
    got = latency_summary(samples)
    assert got["samples"] == 5
    assert got["calls"] == 2
    assert got["no_kernel_timestamp"] == 1
    assert got["kernel_after_parse"] == 1
    assert got["kernel_ms"] == {"min": 4.0, "p50": 5.0, "p99": 9.0, "max": 9.0}
    assert got["parsed_ms"]["max"] == 20.0
    assert got["parsed_ms"]["min"] == 3.0
    assert got["parse_after_kernel_ms"]["min"] == -1.0
    assert got["parse_after_kernel_ms"]["max"] == 1.0
    # Spread of seq 1's arrivals is 4 ms; seq 2 has one stamped arrival: 0.
    assert got["spread_per_call_ms"]["max"] == 4.0
    assert got["spread_per_call_ms"]["min"] == 0.0
    assert got["per_call"] == [[1, 3, 3, 5.0, 9.0, 10.0], [2, 2, 1, 4.0, 4.0, 20.0]]


def test_latency_summary_of_nothing() -> None:
    got = latency_summary([])
    assert got["samples"] == got["calls"] == got["no_kernel_timestamp"] == 0
    assert got["kernel_ms"]["p99"] == 0.0
    assert got["per_call"] == []


def test_a_probe_counts_gaps_and_duplicates_and_samples_called_frames() -> None:
    p = Probe("probe-0")
    at = "2026-11-21T09:30:15.123+08:00"
    p.on_frame({"type": "snapshot", "seq": 10}, 1.0, 1.1)
    p.on_frame({"type": "completed", "seq": 11, "at": at}, 2.0, 2.1)
    p.on_frame({"type": "called", "seq": 12, "at": at}, 2.0, 2.2)
    p.on_frame({"type": "called", "seq": 15, "at": at}, None, 3.0)  # 13, 14 missed
    p.on_frame({"type": "called", "seq": 14, "at": at}, 4.0, 4.1)  # late: a duplicate
    p.on_frame({"type": "heartbeat", "seq": 16, "at": at}, 5.0, 5.1)  # ahead: behind
    assert p.gaps == 2
    assert p.duplicates == 1
    assert p.behind == 1
    assert p.events == 3
    assert p.first_frame_at == 1.1
    assert p.samples == [
        Sample(12, at_epoch(at), 2.0, 2.2),
        Sample(15, at_epoch(at), None, 3.0),
    ]
    assert p.url(8000).endswith("&screen=probe-0&since=15")


# ------------------------------------------------------------ the bench's options


def test_probes_option() -> None:
    assert ws_bench.parse_args([]).probes == 50
    assert ws_bench.parse_args(["--probes", "0"]).probes == 0
    with pytest.raises(SystemExit):
        ws_bench.parse_args(["--probes", "-1"])


def test_stalled_option() -> None:
    assert ws_bench.parse_args([]).stalled == 0
    opts = ws_bench.parse_args(["--stalled", "10", "--stalled-calls", "800"])
    assert (opts.stalled, opts.stalled_calls) == (10, 800)
    with pytest.raises(SystemExit):
        ws_bench.parse_args(["--stalled", "-1"])


def test_stalled_screens_drops_are_read_from_the_falling_gauge() -> None:
    sampler = ws_bench.Sampler(port=0, pid=0)

    def at(t: float, connected: float, events: float) -> None:
        sample = {"stalled_connected": connected, "events": events, "too_slow": 0.0}
        sampler.samples.append((t, sample, 0))

    at(100.0, 3, 10)
    at(100.5, 3, 30)
    at(101.0, 1, 50)  # two left between these samples
    at(101.5, 1, 70)
    at(102.0, 0, 90)
    assert sampler.drops(joined_at=100.0, events0=10) == [(1.0, 40), (1.0, 40), (2.0, 80)]


# ------------------------------------------------------------ the bench


@pytest.mark.slow
@pytest.mark.redis
def test_ws_bench_quick_run_reports_probe_latency_for_every_call(tmp_path: Path) -> None:
    """One small round (its own `qms serve` and embedded Redis): every probe
    gets every call, kernel-stamped, with nothing missed, in the JSON.

    `--quick` would run two rounds (it sets the screen counts, which
    `loadtests.bench --quick` relies on); these are its settings for one."""
    out = tmp_path / "ws.json"
    probes, calls = 5, 20
    env = {k: v for k, v in os.environ.items() if k != "QMS_REDIS_URL"}
    started = datetime.now(UTC)
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.ws_bench", "--ws-impls", "", "--screens", "50",
         "--calls", str(calls), "--interval", "0.05", "--probes", str(probes), "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "screen arrival" in result.stdout
    report = json.loads(out.read_text())
    assert report["settings"]["probes"] == probes
    [r] = report["rounds"]
    assert r["screens"] == 50
    assert r["sockets"] == r["memory"]["sockets"] == 50 + probes
    pr = r["probe"]
    assert pr["complete"]
    assert pr["samples"] == pr["samples_expected"] == calls * probes
    assert pr["missed"] == pr["gaps"] == pr["duplicates"] == 0
    assert pr["no_kernel_timestamp"] == 0
    # On one machine, the kernel's stamp comes before the probe parses the frame.
    assert pr["kernel_after_parse"] == 0
    assert len(pr["per_call"]) == calls
    for seq, samples, stamped, kernel_min, kernel_max, parsed_max in pr["per_call"]:
        assert samples == stamped == probes, seq
        assert 0 < kernel_min <= kernel_max <= parsed_max, seq
        # Sanity against clock mix-ups: well under the run's duration.
        assert kernel_max < 1000 * (datetime.now(UTC) - started).total_seconds(), seq
    assert 0 < pr["kernel_ms"]["p50"] <= pr["parsed_ms"]["p50"]
    # The probes were in the storm too, reconnecting with `since`: nothing missed.
    assert pr["storm"]["caught_up"] == probes
    assert pr["storm"]["missed"] == pr["storm"]["duplicates"] == 0
    # The load screens' figures are unchanged in meaning: N screens only.
    assert r["storm"]["caught_up"] == 50
    assert r["calls_phase"]["samples"] == calls * 50
