"""Probe screens for `loadtests.ws_bench`: when did a frame reach the screen's machine?

The bench's load screens share the machine's cores with the server, and a
client process parsing 2,500 frames per call through asyncio is often not
scheduled: the time it parses a frame says more about the bench than about
the server. A real screen is a device of its own, so what the server is
answerable for is when the frame's bytes reached that device.

A probe process holds a few extra screens (same URL shape as the load
screens, so they sit at arbitrary places in the server's fan-out order) on
plain non-blocking TCP sockets with `SO_TIMESTAMPNS`, read with `recvmsg`
from a `selectors` loop (asyncio transports drop ancillary data). The
kernel stamps each received packet as it comes in (on loopback: when the
server's send() hands it over, before any scheduling of this process), and
`recvmsg` returns the stamp of the last packet it read. The WebSocket
handshake and framing are `websockets`' sans-I/O `ClientProtocol`.

For every `called` frame a probe records (seq, the frame's `at` as epoch
s, the kernel time of the recvmsg that carried the frame's last byte, the
user-space time it was parsed). Kernel time minus `at` is the server's
call-to-screen latency; parse time minus `at` is what the bench's own
clients measure, for comparison.

Driven by `ws_bench` over a multiprocessing Connection (see `ProbeProcess`):
Connect, Mark, AwaitCalls, ArmStorm, AwaitStorm, Stop, one reply each.
Probes reconnect with `since=<last seq>` whenever the server closes them,
as screen pages do (the reconnect storm included).
"""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing
import random
import selectors
import signal
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, NamedTuple, TypeVar

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from loadtests.http_bench import BenchError
from loadtests.serve_process import HOST, percentile

HALL = "daye"
DISPLAY_TOKEN = "demo-display"

# Linux's SO_TIMESTAMPNS(_OLD) on the asm-generic architectures (x86, arm,
# riscv...); Python's socket module does not export it. SCM_TIMESTAMPNS, the
# cmsg type it delivers, has the same value.
SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
TIMESPEC = struct.Struct("@ll")
"""struct timespec of the _OLD option: tv_sec, tv_nsec as native longs."""
CMSG_BYTES = socket.CMSG_SPACE(TIMESPEC.size)
RECV_BYTES = 1 << 16
MAX_FRAME_BYTES = 1 << 24
CLOSE_GRACE_S = 5.0
"""How long a closing probe waits for the server to end the TCP connection."""

R = TypeVar("R")


# ============================================================ pure helpers


def kernel_time(ancdata: Sequence[tuple[int, int, bytes]]) -> float | None:
    """The SCM_TIMESTAMPNS of a recvmsg's ancillary data as epoch seconds,
    None if it has none (the kernel enables receive stamping lazily, so the
    very first packets after the option is set may come without)."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            return float(sec + nsec / 1e9)
    return None


def at_epoch(at: str) -> float:
    """A frame's `at` (ISO 8601, ms, with offset) as epoch seconds."""
    parsed = datetime.fromisoformat(at)
    if parsed.tzinfo is None:
        # The contract always has an offset; a naive time would silently be
        # read as this machine's local time, so refuse it.
        raise ValueError(f"`at` without a UTC offset: {at!r}")
    return parsed.timestamp()


class Sample(NamedTuple):
    """One `called` frame as one probe saw it; times are epoch seconds."""

    seq: int
    at_s: float
    kernel_s: float | None
    parsed_s: float


def dist_ms(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """min/p50/p99/max (nearest rank) of milliseconds; zeros for none."""
    ordered = sorted(values)
    return {
        "min": round(ordered[0], digits) if ordered else 0.0,
        "p50": round(percentile(ordered, 50), digits),
        "p99": round(percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits) if ordered else 0.0,
    }


def latency_summary(samples: Sequence[Sample]) -> dict[str, Any]:
    """What the probes' samples say about the server's call-to-screen latency.

    `kernel_ms`: kernel receive time minus `at` (the server's latency);
    `parsed_ms`: the probe process's parse time minus `at` (what a client
    process measures); `parse_after_kernel_ms`: parse minus kernel time, the
    probe process's own delay, which must never be negative (counted in
    `kernel_after_parse`); `spread_per_call_ms`: per call, its last probe's
    kernel time minus its first's, i.e. how much of the fan-out the probes span;
    `per_call`: per seq, [seq, samples, of which kernel-stamped, min and max
    kernel ms, max parsed ms], to see every call (and stalls in time).
    """
    stamped = [s for s in samples if s.kernel_s is not None]
    kernel = [(s.kernel_s - s.at_s) * 1000 for s in stamped if s.kernel_s is not None]
    parse_lag = [(s.parsed_s - s.kernel_s) * 1000 for s in stamped if s.kernel_s is not None]
    by_seq: dict[int, list[Sample]] = {}
    for s in samples:
        by_seq.setdefault(s.seq, []).append(s)
    spreads: list[float] = []
    per_call: list[list[float]] = []
    for seq in sorted(by_seq):
        group = by_seq[seq]
        arrivals = [s.kernel_s for s in group if s.kernel_s is not None]
        at_s = group[0].at_s
        if arrivals:
            spreads.append((max(arrivals) - min(arrivals)) * 1000)
        per_call.append([
            seq, len(group), len(arrivals),
            round((min(arrivals) - at_s) * 1000, 2) if arrivals else 0.0,
            round((max(arrivals) - at_s) * 1000, 2) if arrivals else 0.0,
            round((max(s.parsed_s for s in group) - at_s) * 1000, 2),
        ])  # fmt: skip
    return {
        "samples": len(samples),
        "calls": len({s.seq for s in samples}),
        "kernel_ms": dist_ms(kernel),
        "parsed_ms": dist_ms([(s.parsed_s - s.at_s) * 1000 for s in samples]),
        "parse_after_kernel_ms": dist_ms(parse_lag, 3),
        "kernel_after_parse": sum(1 for x in parse_lag if x < 0),
        "no_kernel_timestamp": len(samples) - len(stamped),
        "spread_per_call_ms": dist_ms(spreads),
        "per_call": per_call,
    }


def errno_name(err: int) -> str:
    """A failed connect's errno, named as the load screens name their failures."""
    return "refused" if err == errno.ECONNREFUSED else errno.errorcode.get(err, str(err))


def backoff(attempt: int) -> float:
    """A bench screen's wait before reconnecting: jittered, 50 ms doubling up
    to 1 s, so thousands of screens refused together do not retry together."""
    return min(1.0, 0.05 * (1 << min(attempt, 5))) * random.uniform(0.5, 1.0)


def screen_url(port: int, screen_id: str, since: int | None) -> str:
    """The demo hall's display socket for a bench screen, resuming after `since`."""
    url = (
        f"ws://{HOST}:{port}/ws/halls/{HALL}/display?token={DISPLAY_TOKEN}"
        f"&format=json&page=display&screen={screen_id}"
    )
    return url if since is None else f"{url}&since={since}"


class SeqCount:
    """What every bench screen (ws_bench's and the probes) counts of the
    frames it gets: events, gaps and duplicates in `seq`, heartbeats ahead of
    it, and when it caught up after a storm was armed."""

    __slots__ = (
        "armed", "behind", "caught_up_at", "duplicates", "events", "gaps", "last_seq",
        "storm_from",
    )  # fmt: skip

    def __init__(self) -> None:
        self.last_seq: int | None = None
        self.armed = False
        self.storm_from = -1
        self.caught_up_at = 0.0
        self.reset_seq_counts()

    def reset_seq_counts(self) -> None:
        self.events = self.gaps = self.duplicates = self.behind = 0

    def count(self, kind: str, seq: int, now: float) -> bool:
        """Count one frame; False for a heartbeat or a duplicate (nothing new)."""
        last = self.last_seq
        if kind == "heartbeat":
            # A heartbeat carries the hall's latest seq: ahead of ours = missed.
            if last is not None and seq > last:
                self.behind += 1
            return False
        if kind != "snapshot":
            if last is not None:
                if seq <= last:
                    self.duplicates += 1
                    return False
                self.gaps += seq - last - 1
            self.events += 1
        self.last_seq = seq
        if self.armed and not self.caught_up_at and seq > self.storm_from:
            self.caught_up_at = now
        return True


# ============================================================ commands and replies


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    port: int
    probes: int
    open_timeout_s: float = 30.0
    prefix: str = "probe"


# The commands a benchmark sends a client process (ws_bench's screens and
# these probes alike), each answered with one reply.


@dataclass(frozen=True, slots=True)
class Connect:
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Mark:
    """Start a calls phase: forget the frames and samples so far."""


@dataclass(frozen=True, slots=True)
class AwaitCalls:
    called: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class ArmStorm:
    """Remember each screen's last seq; the next reconnect is the storm's."""


@dataclass(frozen=True, slots=True)
class AwaitStorm:
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Command = Connect | Mark | AwaitCalls | ArmStorm | AwaitStorm | Stop


@dataclass(slots=True)
class ConnectReply:
    ready: int
    first_frame_at: list[float]
    failures: dict[str, int]
    no_kernel_timestamp: int
    """Received chunks without a kernel stamp so far (the lazy enabling)."""


@dataclass(slots=True)
class CallsReply:
    complete: bool
    samples: list[Sample]
    called_per_probe: dict[int, int]
    events: int
    gaps: int
    duplicates: int
    behind: int
    reconnects: int
    bad_frames: int
    cpu_s: float


@dataclass(slots=True)
class StormReply:
    complete: bool
    caught_up_at: list[float]
    close_codes: dict[int, int]
    failures: dict[str, int]
    gaps: int
    duplicates: int
    cpu_s: float


# ============================================================ the probe process


class Probe(SeqCount):
    """One probe screen and its current connection, if any."""

    __slots__ = (
        "attempt",
        "bad_frames",
        "called",
        "close_codes",
        "connects",
        "deadline",
        "eof_pending",
        "failures",
        "first_frame_at",
        "id",
        "outbox",
        "proto",
        "retry_at",
        "samples",
        "sock",
        "tcp_up",
    )

    def __init__(self, probe_id: str) -> None:
        self.id = probe_id
        self.sock: socket.socket | None = None
        self.proto: ClientProtocol | None = None
        self.outbox = bytearray()
        self.eof_pending = False
        self.tcp_up = False
        self.deadline = 0.0
        """monotonic: give up the handshake, or the closing, after this."""
        self.retry_at: float | None = None
        """monotonic: when to reconnect; None while connected or stopping."""
        self.attempt = 0
        self.first_frame_at = 0.0
        self.failures: Counter[str] = Counter()
        self.close_codes: Counter[int] = Counter()
        self.connects = 0
        super().__init__()
        self.reset_counts()

    def reset_counts(self) -> None:
        self.reset_seq_counts()
        self.samples: list[Sample] = []
        self.called: set[int] = set()
        self.bad_frames = 0

    def url(self, port: int) -> str:
        return screen_url(port, self.id, self.last_seq)

    def on_frame(self, doc: dict[str, Any], kernel_s: float | None, parsed_s: float) -> None:
        """Account for one frame, as `ws_bench.Screen.on_frame` does."""
        kind: str = doc["type"]
        seq: int = doc["seq"]
        if not self.first_frame_at:
            self.first_frame_at = parsed_s
        if self.count(kind, seq, parsed_s) and kind == "called":
            self.called.add(seq)
            self.samples.append(Sample(seq, at_epoch(doc["at"]), kernel_s, parsed_s))


@dataclass(slots=True)
class _Waiter:
    """A command whose reply waits for a condition or its deadline."""

    done: Callable[[], bool]
    deadline: float
    reply: Callable[[bool], object]


class ProbeLoop:
    """All probes of the process, one `selectors` loop, and the command pipe."""

    def __init__(self, cfg: ProbeConfig, conn: Connection) -> None:
        self.cfg = cfg
        self.conn = conn
        self.probes = [Probe(f"{cfg.prefix}-{i}") for i in range(cfg.probes)]
        self.sel = selectors.DefaultSelector()
        self.sel.register(conn, selectors.EVENT_READ, None)
        self.waiter: _Waiter | None = None
        self.stopping = False
        self.mark_cpu = time.process_time()
        self.unstamped = 0

    # ------------------------------------------------------------ sockets

    def open(self, p: Probe) -> None:
        p.retry_at = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Before connecting, so the very first bytes are stamped too.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            err = sock.connect_ex((HOST, self.cfg.port))
        except OSError:
            sock.close()
            raise
        p.sock, p.outbox, p.eof_pending, p.tcp_up = sock, bytearray(), False, False
        p.proto = ClientProtocol(parse_uri(p.url(self.cfg.port)), max_size=MAX_FRAME_BYTES)
        p.deadline = time.monotonic() + self.cfg.open_timeout_s
        if err not in (0, errno.EINPROGRESS):
            self.drop(p, failure=errno_name(err))
            return
        self.sel.register(sock, selectors.EVENT_WRITE, p)

    def on_writable(self, p: Probe) -> None:
        sock, proto = p.sock, p.proto
        assert sock is not None and proto is not None
        if not p.tcp_up:
            # The non-blocking connect finished, one way or the other.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.drop(p, failure=errno_name(err))
                return
            p.tcp_up = True
            proto.send_request(proto.connect())
        self.flush(p)

    def flush(self, p: Probe) -> None:
        """Send what the protocol has for the network, then watch for what is left."""
        sock, proto = p.sock, p.proto
        assert sock is not None and proto is not None
        for chunk in proto.data_to_send():
            if chunk:
                p.outbox += chunk
            else:
                p.eof_pending = True
        if p.outbox:
            try:
                sent = sock.send(p.outbox)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self.drop(p, failure=type(exc).__name__)
                return
            del p.outbox[:sent]
        if not p.outbox and p.eof_pending:
            p.eof_pending = False
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if p.outbox else 0)
        if self.sel.get_key(sock).events != want:
            self.sel.modify(sock, want, p)

    def on_readable(self, p: Probe) -> None:
        sock, proto = p.sock, p.proto
        assert sock is not None and proto is not None
        try:
            # One recvmsg per readiness (level-triggered: the loop comes back
            # for any rest). TCP returns the stamp of the last packet the read
            # took, so every frame this read completes had arrived by then:
            # exact for the newest, an upper bound for any older one.
            data, ancdata, _flags, _addr = sock.recvmsg(RECV_BYTES, CMSG_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self.drop(p, failure=type(exc).__name__)
            return
        if not data:
            proto.receive_eof()
            self.drop(p)
            return
        kernel_s = kernel_time(ancdata)
        if kernel_s is None:
            self.unstamped += 1
        proto.receive_data(data)
        events = proto.events_received()
        # Answers the server's pings (and its close frame).
        self.flush(p)
        if p.sock is None:
            return
        for event in events:
            if isinstance(event, Response):
                if proto.handshake_exc is not None:
                    self.drop(p, failure=f"http_{event.status_code}")
                    return
                p.connects += 1
                p.attempt = 0
                p.deadline = 0.0  # open: no deadline until a close starts
                continue
            if isinstance(event, Frame):
                self.on_ws_frame(p, event, kernel_s)
        if proto.handshake_exc is not None:
            self.drop(p, failure=type(proto.handshake_exc).__name__)
        elif proto.state is State.CLOSING and not p.deadline:
            # The server ends the TCP connection after the close handshake;
            # if it does not, the probe does, after a grace period.
            p.deadline = time.monotonic() + CLOSE_GRACE_S

    def on_ws_frame(self, p: Probe, frame: Frame, kernel_s: float | None) -> None:
        if frame.opcode is not Opcode.TEXT:
            return  # pings are answered by the protocol; close comes as EOF
        try:
            doc = json.loads(bytes(frame.data))
            # Taken after json.loads, as the load screens take theirs.
            p.on_frame(doc, kernel_s, time.time())
        except (ValueError, KeyError, TypeError, AttributeError):
            p.bad_frames += 1

    def drop(self, p: Probe, failure: str | None = None) -> None:
        """Close the probe's socket and schedule its reconnect (with `since`)."""
        sock, proto = p.sock, p.proto
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(sock)
            sock.close()
        p.sock = p.proto = None
        if failure is None and (proto is None or proto.state is State.CONNECTING):
            # Closed before the handshake answered (a server shutting down):
            # a failed attempt, retried with backoff, not at once.
            failure = "closed in handshake"
        if failure is not None:
            p.failures[failure] += 1
            p.attempt += 1
            delay = backoff(p.attempt)
        else:
            # A connection that was open: its close code, and back at once.
            code = proto.close_code if proto is not None else None
            p.close_codes[int(code or 1006)] += 1
            delay = 0.0
        p.retry_at = None if self.stopping else time.monotonic() + delay

    def timers(self) -> None:
        now = time.monotonic()
        for p in self.probes:
            if p.retry_at is not None and p.retry_at <= now:
                try:
                    self.open(p)
                except OSError as exc:
                    p.failures[type(exc).__name__] += 1
                    p.attempt += 1
                    p.retry_at = now + backoff(p.attempt)
            elif p.sock is not None and p.deadline and p.deadline <= now:
                proto = p.proto
                connecting = proto is None or proto.state is State.CONNECTING
                self.drop(p, failure="timeout" if connecting else None)

    def next_timeout(self) -> float:
        now = time.monotonic()
        wakes = [0.1]
        if self.waiter is not None:
            wakes.append(self.waiter.deadline - now)
        for p in self.probes:
            if p.retry_at is not None:
                wakes.append(p.retry_at - now)
        return max(0.0, min(wakes))

    # ------------------------------------------------------------ commands

    def command(self, cmd: Command) -> None:
        probes = self.probes
        now = time.monotonic()
        if isinstance(cmd, Connect):
            for p in probes:
                p.retry_at = now
            self.waiter = _Waiter(
                lambda: all(p.first_frame_at for p in probes),
                now + cmd.timeout_s,
                lambda _done: ConnectReply(
                    ready=sum(1 for p in probes if p.first_frame_at),
                    first_frame_at=[p.first_frame_at for p in probes if p.first_frame_at],
                    failures=self.failures(),
                    no_kernel_timestamp=self.unstamped,
                ),
            )
        elif isinstance(cmd, Mark):
            for p in probes:
                p.reset_counts()
                p.connects = 0
            self.mark_cpu = time.process_time()
            self.send(None)
        elif isinstance(cmd, AwaitCalls):
            self.waiter = _Waiter(
                lambda: all(len(p.called) >= cmd.called for p in probes),
                now + cmd.timeout_s,
                self.calls_reply,
            )
        elif isinstance(cmd, ArmStorm):
            for p in probes:
                p.armed = True
                p.storm_from = -1 if p.last_seq is None else p.last_seq
                p.caught_up_at = 0.0
                p.failures.clear()
                p.close_codes.clear()
                p.reset_counts()
            self.mark_cpu = time.process_time()
            self.send(None)
        elif isinstance(cmd, AwaitStorm):
            self.waiter = _Waiter(
                lambda: all(p.caught_up_at for p in probes), now + cmd.timeout_s, self.storm_reply
            )
        elif isinstance(cmd, Stop):
            self.stop()
            self.send(None)
        else:
            raise AssertionError(cmd)

    def failures(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for p in self.probes:
            total.update(p.failures)
        return dict(total)

    def calls_reply(self, complete: bool) -> CallsReply:
        probes = self.probes
        return CallsReply(
            complete=complete,
            samples=[s for p in probes for s in p.samples],
            called_per_probe=dict(Counter(len(p.called) for p in probes)),
            events=sum(p.events for p in probes),
            gaps=sum(p.gaps for p in probes),
            duplicates=sum(p.duplicates for p in probes),
            behind=sum(p.behind for p in probes),
            reconnects=sum(p.connects for p in probes),
            bad_frames=sum(p.bad_frames for p in probes),
            cpu_s=time.process_time() - self.mark_cpu,
        )

    def storm_reply(self, complete: bool) -> StormReply:
        probes = self.probes
        codes: Counter[int] = Counter()
        failures: Counter[str] = Counter()
        for p in probes:
            codes.update(p.close_codes)
            failures.update(p.failures)
        return StormReply(
            complete=complete,
            caught_up_at=[p.caught_up_at for p in probes if p.caught_up_at],
            close_codes=dict(codes),
            failures=dict(failures),
            gaps=sum(p.gaps for p in probes),
            duplicates=sum(p.duplicates for p in probes),
            cpu_s=time.process_time() - self.mark_cpu,
        )

    def stop(self) -> None:
        """Close every probe as a screen going away would (1001), without waiting."""
        self.stopping = True
        for p in self.probes:
            p.retry_at = None
            if p.sock is not None and p.proto is not None and p.proto.state is State.OPEN:
                with contextlib.suppress(OSError):
                    p.proto.send_close(1001)
                    self.flush(p)
            if p.sock is not None:
                self.drop(p)

    def send(self, reply: object) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(reply)

    def serve(self) -> None:
        """Run the probes and answer commands until Stop (or the bench goes away)."""
        while not self.stopping:
            for key, mask in self.sel.select(self.next_timeout()):
                p = key.data
                if p is None:
                    try:
                        cmd: Command = self.conn.recv()
                    except (EOFError, OSError):
                        cmd = Stop()
                    try:
                        self.command(cmd)
                    except Exception as exc:
                        self.send(f"{type(exc).__name__}: {exc}")
                    continue
                assert isinstance(p, Probe)
                if p.sock is None or p.sock.fileno() != key.fd:
                    continue  # closed (or replaced) earlier in this batch
                if mask & selectors.EVENT_WRITE:
                    self.on_writable(p)
                if mask & selectors.EVENT_READ and p.sock is not None:
                    self.on_readable(p)
            self.timers()
            w = self.waiter
            if w is not None:
                done = w.done()
                if done or time.monotonic() >= w.deadline:
                    self.waiter = None
                    self.send(w.reply(done))
        self.sel.close()


def _probe_main(conn: Connection, cfg: ProbeConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    ProbeLoop(cfg, conn).serve()


# ============================================================ the bench's side


class ProbeProcess:
    """The probe process of one round, driven over a pipe.

    `send` and `receive` are separate so the bench can have the probes
    waiting at the same time as its load-screen processes.
    """

    def __init__(self, port: int, probes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.probes = probes
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_probe_main, args=(child, ProbeConfig(port, probes)),
                                 daemon=True)  # fmt: skip
        self._proc.start()
        child.close()

    def send(self, cmd: Command) -> None:
        self._conn.send(cmd)

    def receive(self, reply_type: type[R], timeout_s: float) -> R:
        if not self._conn.poll(timeout_s + 30):
            raise BenchError("the probe process did not answer")
        try:
            reply = self._conn.recv()
        except (EOFError, OSError):
            raise BenchError("the probe process died (its traceback is above)") from None
        if isinstance(reply, str):
            raise BenchError(f"the probe process failed: {reply}")
        if not isinstance(reply, reply_type):
            raise BenchError(f"the probe process answered {type(reply).__name__}")
        return reply

    def ask(self, cmd: Command, reply_type: type[R], timeout_s: float) -> R:
        self.send(cmd)
        return self.receive(reply_type, timeout_s)

    def close(self) -> None:
        with contextlib.suppress(BenchError, OSError, EOFError):
            self.ask(Stop(), type(None), 15)
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()
