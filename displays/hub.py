"""One hall's fan-out: one reader of the event log, many screens.

The hub tails the hall's stream with ONE blocking read and hands each event,
encoded and framed once, to every subscriber. A screen whose socket can take
it now gets the frame's bytes written straight to its transport, in the
hub's own loop step: no task, no queue, no per-socket framing. Otherwise the
frame waits in the subscriber's bounded queue; a subscriber whose queue is
full (a screen that cannot keep up) is stopped with 1013 and reconnects with
`since`; memory never grows with a slow screen.

Consistency on join: a subscriber is registered *before* its first frames
are computed, so every event published after that lands in its queue. Its
first frames (a snapshot at seq S, or the events it missed up to the hub's
head H) cover everything up to `floor`, and the sender drops queued events
at or below `floor`. Nothing is missed and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from displays.codec import Format
from displays.frames import (
    EventBatch,
    Frame,
    FrameKind,
    event_frame,
    heartbeat_frame,
    snapshot_frame,
)
from queue_core import wire
from queue_core.errors import Unavailable
from queue_core.event_log import EventLog
from queue_core.models import Event, ScreenPresence
from queue_core.operations import Hall, hall_hours_body
from queue_core.redis_client import RedisClient

__all__ = ["DirectWrite", "HallHub", "HubSettings", "Sink", "Subscriber"]

log = logging.getLogger("qms.displays")

SLOW_SCREEN = 1013
"""Close code for a screen that could not keep up ("try again later")."""


@dataclass(frozen=True, slots=True)
class HubSettings:
    queue_frames: int = 256
    """Frames a socket may have waiting before it counts as too slow."""
    heartbeat_s: float = 10.0
    """Longest quiet spell before a heartbeat frame (also the XREAD block)."""
    ring_size: int = 256
    """Recent events kept in memory, so most resumes need no Redis read."""
    max_replay: int = 1000
    """A screen further behind than this gets a snapshot instead of a replay."""
    ready_timeout_s: float = 10.0
    """How long a joining screen waits for the hub to reach Redis."""
    linger_s: float = 30.0
    """How long a hub with no screens keeps reading before it stops."""
    backoff_max_s: float = 5.0


Sink = Callable[[Frame], Awaitable[None]]
"""Writes one frame to a screen's socket."""

DirectWrite = Callable[[bytes], bool]
"""Writes a whole WebSocket frame to a screen's transport at once, if the
socket is open and its transport is not paused; says whether it did."""


class Subscriber:
    """One connected screen: its format, a bounded queue of frames, and the
    highest event number its first frames already covered (`floor`).

    With a `direct` writer (the server offers one), a frame offered while
    nothing is queued is written to the transport there and then. Frames
    that cannot go at once (the transport is paused, or earlier frames are
    still queued) are written in order by a drain task that exists only
    while the queue is not empty: an idle screen holds no task and no
    pending future. (A long-lived sender task per screen would leave one
    future per screen waiting between events; at 5,000 screens those pile
    into the oldest GC generation and set off full collections of half a
    second. A drain task per frame costs a task wake-up per screen per
    event: a quarter of a fan-out's time.)
    """

    __slots__ = (
        "_direct", "_drainer", "_frames", "_sink", "_stopped", "floor", "fmt", "lost",
        "max_frames", "presence", "stop_code", "stop_reason",
    )  # fmt: skip

    def __init__(self, fmt: Format, presence: ScreenPresence | None, queue_frames: int) -> None:
        self.fmt = fmt
        self.presence = presence
        self.max_frames = queue_frames
        self.floor = -1
        self.stop_code: int | None = None
        self.stop_reason = ""
        self.lost: Exception | None = None
        self._frames: deque[Frame] = deque()
        self._sink: Sink | None = None
        self._direct: DirectWrite | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def pending(self) -> int:
        """Frames queued and not yet written."""
        return len(self._frames)

    @property
    def draining(self) -> bool:
        """Whether a drain task is writing (False for an idle screen)."""
        return self._drainer is not None

    def offer(self, frame: Frame) -> None:
        """Queue a frame without waiting; a full queue stops the subscriber."""
        if self.stop_code is not None or self.lost is not None:
            return
        direct = self._direct
        if (
            direct is not None
            and self._drainer is None
            and not self._frames
            and (not self.should_send(frame) or direct(frame.wire(self.fmt)))
        ):
            return
        if len(self._frames) >= self.max_frames:
            self.stop(SLOW_SCREEN, "screen too slow; reconnect with since")
            return
        self._frames.append(frame)
        self._wake()

    def offer_batch(self, batch: EventBatch) -> None:
        """Offer consecutive events; written in one go when they can be."""
        direct = self._direct
        if (
            direct is not None
            and self._drainer is None
            and not self._frames
            and self.stop_code is None
            and self.lost is None
            and batch.first_seq > self.floor
            and direct(batch.wire(self.fmt))
        ):
            return
        for frame in batch.frames:
            self.offer(frame)

    def start(self, sink: Sink, direct: DirectWrite | None = None) -> None:
        """Write queued and later frames through `sink`, in order; later
        frames straight through `direct` whenever nothing is queued."""
        self._sink = sink
        self._direct = direct
        self._wake()

    def stop(self, code: int, reason: str) -> None:
        """Ask the socket's session to close with `code` (first call wins)."""
        if self.stop_code is None:
            self.stop_code, self.stop_reason = code, reason
            self._stopped.set()

    async def stopped(self) -> None:
        """Returns once the subscriber is stopped or its socket failed."""
        await self._stopped.wait()

    async def aclose(self) -> None:
        """Stop writing and drop what is queued."""
        self._sink = None
        self._direct = None
        self._frames.clear()
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer

    def should_send(self, frame: Frame) -> bool:
        """Drop events its first frames covered, and heartbeats older than
        them (queued while it joined); a snapshot moves the floor."""
        if frame.kind is FrameKind.SNAPSHOT:
            self.floor = frame.seq
            return True
        if frame.kind is FrameKind.HEARTBEAT:
            return frame.seq >= self.floor
        return frame.seq > self.floor

    def _wake(self) -> None:
        if self._drainer is None and self._sink is not None and self._frames:
            self._drainer = asyncio.create_task(self._drain(self._sink))

    async def _drain(self, sink: Sink) -> None:
        try:
            while self._frames and self.stop_code is None:
                frame = self._frames.popleft()
                if self.should_send(frame):
                    await sink(frame)
        except Exception as exc:
            self.lost = exc
            self._stopped.set()
        finally:
            # No await since the loop's last check: a frame offered from
            # here on starts a new drainer.
            if self._drainer is asyncio.current_task():
                self._drainer = None


class HallHub:
    """The fan-out of one hall in this process.

    The reader task starts with the first subscriber and stops `linger_s`
    after the last one leaves. On a Redis error it backs off, reconnects and
    sends every subscriber a fresh snapshot (state may have changed, or been
    lost, while it could not read).
    """

    def __init__(
        self,
        hall: Hall,
        redis: RedisClient,
        reader_factory: Callable[[], RedisClient],
        settings: HubSettings,
        *,
        on_publish: Callable[[Event], None] | None = None,
    ) -> None:
        self.hall = hall
        self.settings = settings
        self.subscribers: set[Subscriber] = set()
        self.last_seq = 0
        self.redis_up = False
        self._redis = redis
        self._reader_factory = reader_factory
        self._on_publish = on_publish
        self._ring: deque[Frame] = deque(maxlen=settings.ring_size)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[Frame] | None = None

    @property
    def reader(self) -> asyncio.Task[None] | None:
        """The running reader task, if any."""
        return self._task

    # ------------------------------------------------------------ screens

    async def join(self, sub: Subscriber, since: int | None) -> list[Frame]:
        """Register `sub` and return its first frames: the events after
        `since` when the hub can still replay them all, else a snapshot."""
        self.subscribers.add(sub)
        self._ensure_running()
        try:
            await asyncio.wait_for(self._ready.wait(), self.settings.ready_timeout_s)
        except TimeoutError:
            raise Unavailable(
                "redis_unavailable", "The hall's events cannot be read right now."
            ) from None
        head = self.last_seq
        if since is not None:
            frames = await self._resume(sub, since, head)
            if frames is not None:
                return frames
        frame = await self._snapshot_at_least(head)
        sub.floor = frame.seq
        return [frame]

    def leave(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def stop_all(self, code: int, reason: str) -> None:
        for sub in list(self.subscribers):
            sub.stop(code, reason)

    async def _resume(self, sub: Subscriber, since: int, head: int) -> list[Frame] | None:
        if since == head:
            # Nothing missed: a heartbeat at once tells the screen it is live.
            sub.floor = head
            return [heartbeat_frame(head, self._now_iso())]
        if since > head:
            # Another replica's hub may be a few ms ahead of this one; the
            # screen saw real events unless Redis itself is behind (data lost).
            if since <= await self._log().current_seq():
                sub.floor = since
                return [heartbeat_frame(since, self._now_iso())]
            return None
        missed = head - since
        if missed > self.settings.max_replay:
            return None
        ring = self._ring
        if ring and ring[0].seq <= since + 1:
            frames = [f for f in ring if since < f.seq <= head]
            sub.floor = head
            return frames
        events = await self._log().after(since, count=missed)
        if len(events) != missed or events[0].seq != since + 1:
            return None  # trimmed from the log: too old
        sub.floor = head
        return [self._event_frame(e) for e in events]

    async def _snapshot_at_least(self, head: int) -> Frame:
        """A snapshot taken after `head` was published. Screens joining
        together share one snapshot read (a reconnect storm costs one
        script call per hall, not one per screen)."""
        frame: Frame | None = None
        for _ in range(3):
            task = self._snapshot_task
            if task is None or task.done():
                task = self._snapshot_task = asyncio.create_task(self._take_snapshot())
                task.add_done_callback(_consume_exception)
            frame = await asyncio.shield(task)
            if frame.seq >= head:
                return frame
        assert frame is not None
        return frame  # Redis is behind the hub: the hub's resync will follow

    async def _take_snapshot(self) -> Frame:
        snap = await self.hall.store.snapshot()
        table = await self.hall.monitor.table(snap.open_windows)
        hours = hall_hours_body(self.hall, snap.closed_until_ms)
        return snapshot_frame(wire.snapshot_body(snap, self.hall.config, table, hours))

    # ------------------------------------------------------------- reader

    def _log(self, reader: RedisClient | None = None) -> EventLog:
        return EventLog(self._redis, reader or self._redis, self.hall.config.id)

    def _ensure_running(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"hub:{self.hall.config.id}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._ready.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()

    async def _run(self) -> None:
        reader = self._reader_factory()
        event_log = self._log(reader)
        block_ms = max(1, int(self.settings.heartbeat_s * 1000))
        delay = 0.0
        primed = resync = False
        idle_since: float | None = None
        try:
            while True:
                if self.subscribers:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= self.settings.linger_s:
                    # Synchronous from here to the end of the loop: a screen
                    # joining now starts a new reader rather than waiting on
                    # this one.
                    self._ready.clear()
                    self._task = None
                    return
                try:
                    if resync:
                        await self._resync()
                        resync = False
                    elif not primed:
                        await self._prime(event_log)
                        primed = True
                    events = await event_log.wait_after(self.last_seq, block_ms)
                except Exception as exc:
                    if not isinstance(exc, Unavailable):
                        log.exception("hall %s: event reader failed", self.hall.config.id)
                    self.redis_up = False
                    self._ready.clear()
                    resync = primed
                    delay = min(self.settings.backoff_max_s, max(0.05, delay * 2))
                    await asyncio.sleep(random.uniform(delay / 2, delay))
                    continue
                delay = 0.0
                if not events:
                    self._publish(heartbeat_frame(self.last_seq, self._now_iso()))
                    continue
                fresh: list[Frame] = []
                for event in events:
                    if event.seq != self.last_seq + 1:
                        log.warning(
                            "hall %s: event %d follows %d; resyncing screens",
                            self.hall.config.id,
                            event.seq,
                            self.last_seq,
                        )
                        resync = True
                        break
                    self.last_seq = event.seq
                    fresh.append(self._event_frame(event))
                    self._ring.append(fresh[-1])
                    if self._on_publish is not None:
                        self._on_publish(event)
                if fresh:
                    self._publish_events(EventBatch(fresh))
        finally:
            await reader.aclose()

    async def _prime(self, event_log: EventLog) -> None:
        seq, events = await event_log.latest(self.settings.ring_size)
        self._ring.clear()
        self._ring.extend(self._event_frame(e) for e in events)
        self.last_seq = seq
        self.redis_up = True
        self._ready.set()

    async def _resync(self) -> None:
        frame = await self._take_snapshot()
        self._ring.clear()
        self.last_seq = frame.seq
        self.redis_up = True
        self._publish(frame)
        self._ready.set()
        log.info("hall %s: screens resynced at event %d", self.hall.config.id, frame.seq)

    def _publish(self, frame: Frame) -> None:
        for sub in self.subscribers:
            sub.offer(frame)

    def _publish_events(self, batch: EventBatch) -> None:
        if len(batch.frames) == 1:
            self._publish(batch.frames[0])
            return
        for sub in self.subscribers:
            sub.offer_batch(batch)

    def _event_frame(self, event: Event) -> Frame:
        return event_frame(wire.event_body(event, self.hall.config))

    def _now_iso(self) -> str:
        return wire.iso_ms(int(time.time() * 1000), self.hall.config.timezone)


def _consume_exception(task: asyncio.Task[Frame]) -> None:
    # Awaiters see the exception; this only keeps asyncio from logging it
    # when every awaiter went away first.
    if not task.cancelled():
        task.exception()
