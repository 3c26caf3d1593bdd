"""Every Redis key qms uses, in one place.

All keys of a hall share the hash tag `{hall}`, so every script touches a
single Redis Cluster slot and a province's halls shard across a cluster
with no code change. Entities (tickets, windows, appointments) are fields
of a few fixed hashes rather than a key each: a script then never has to
build a key name from data it read, which Cluster routing forbids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "qms"


@dataclass(frozen=True, slots=True)
class HallKeys:
    hall: str

    def _k(self, suffix: str) -> str:
        return f"{PREFIX}:{{{self.hall}}}:{suffix}"

    @property
    def seq(self) -> str:
        """INCR counter: the hall's event number."""
        return self._k("seq")

    @property
    def events(self) -> str:
        """Stream of events, entry id `<seq>-0`, capped."""
        return self._k("events")

    @property
    def tickets(self) -> str:
        """Hash ticket id -> ticket JSON."""
        return self._k("tickets")

    @property
    def windows(self) -> str:
        """Hash window id -> window JSON (absent = closed and empty)."""
        return self._k("windows")

    @property
    def open_windows(self) -> str:
        """Set of ids of open windows, for cheap ETA inputs."""
        return self._k("open")

    @property
    def waiting_by_service(self) -> str:
        """Hash service id -> number of waiting tickets."""
        return self._k("waiting-by-service")

    @property
    def recent_calls(self) -> str:
        """List of the latest calls (JSON), newest first."""
        return self._k("recent")

    @property
    def appointments(self) -> str:
        """Hash appointment code -> appointment JSON."""
        return self._k("appointments")

    def issued(self, day: str) -> str:
        """Hash service -> tickets issued on one local day (kiosk, phone and
        check-in), for `[[service]] daily_cap`; kept 2 days."""
        return self._k(f"issued:{day}")

    def stats(self, day: str) -> str:
        """Hash of one local day's figures (`_lib.lua` lists the fields), kept 3 days."""
        return self._k(f"stats:{day}")

    @property
    def service_times(self) -> str:
        """Hash service id -> its last visits' durations (ms), comma-separated, oldest first."""
        return self._k("service-times")

    @property
    def estimates(self) -> str:
        """Hash ticket id -> the wait estimate told at issue (JSON, ms), until it is called."""
        return self._k("estimates")

    @property
    def waits(self) -> str:
        """List of calls (JSON: time, wait, group, service, estimate), newest first, capped."""
        return self._k("waits")

    @property
    def day(self) -> str:
        """Hash of the hall's day: `done` (the latest calendar boundary passed,
        epoch ms), `expired_through` (its day end: what joined before it has
        expired), `closed_until` (a manager's close, until that moment) and
        `status` (open | closed, as last announced by a `hall` event)."""
        return self._k("day")

    @property
    def audit(self) -> str:
        """Stream of audit entries, id `<ms>-<seq>`, trimmed by age: fields
        at, actor, role, action, window, number, client."""
        return self._k("audit")

    @property
    def parked(self) -> str:
        """Sorted set of parked ticket ids, scored by when they were parked."""
        return self._k("parked")

    @property
    def dispatch(self) -> str:
        """Hash group -> its turn under the dispatch rule "ratio"."""
        return self._k("dispatch")

    @property
    def persons(self) -> str:
        """Hash of who holds an active ticket, for `[issuing]
        one_active_per_person`: `d:<person digest>` -> the ticket id it
        holds, and `t:<ticket id>` -> the digest, so the script that ends a
        ticket finds whom it frees. Digests only (`identity.person_digest`),
        never a number; entries go when their ticket ends (a no-show keeps
        `t:` for its rejoin until the day's end)."""
        return self._k("persons")

    @property
    def arrivals(self) -> str:
        """Sorted set, every score 0, of `<group>|<queue member>` for each
        waiting ticket: each group's tickets in arrival order (a member leads
        with the time it joined the queue), so how many earlier tickets a call
        goes ahead of is one ZLEXCOUNT, however long the queue."""
        return self._k("arrivals")

    @property
    def notify(self) -> str:
        """Hash ticket id -> JSON {to, via, lo, called}: where to reach a
        visitor who asked to be told, and what they were told. The entry goes
        when its ticket ends."""
        return self._k("notify")

    @property
    def outbox(self) -> str:
        """Stream of deliveries for the hall's gateway, appended by the script
        whose change causes each; an entry is deleted once delivered or given
        up (so the stream holds only what is undelivered). Consumer group
        `OUTBOX_GROUP`."""
        return self._k("outbox")

    @property
    def outbox_due(self) -> str:
        """Sorted set outbox entry id -> when (epoch ms, qms's clock) it may
        next be taken: a sender's lease while it posts, then its retry time."""
        return self._k("outbox:due")

    @property
    def outbox_tries(self) -> str:
        """Hash outbox entry id -> failed attempts so far."""
        return self._k("outbox:tries")

    @property
    def outbox_dead(self) -> str:
        """Stream of deliveries given up on (capped), without whom they were for."""
        return self._k("outbox:dead")

    def screen(self, screen: str) -> str:
        """String (JSON presence) of one connected screen, with a TTL: gone = offline."""
        return self._k(f"screen:{screen}")

    @property
    def screens(self) -> str:
        """Sorted set screen id -> last seen (epoch ms): every screen seen lately,
        so an expired presence key can be told from a screen that never existed."""
        return self._k("screens")

    def screens_of(self, owner: str) -> str:
        """Sorted set screen id -> last seen (epoch ms): the screens one credential
        (`owner`, its label) connected lately, for its cap. Named by a digest:
        a label is free text from the config."""
        digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]
        return self._k(f"screens-of:{digest}")

    def queue(self, group: str) -> str:
        """Sorted set of waiting tickets of a group, scored by effective time."""
        return self._k(f"queue:{group}")

    def counter(self, day: str, prefix: str) -> str:
        """INCR counter of ticket numbers for one prefix on one local day."""
        return self._k(f"counter:{day}:{prefix}")

    def numbers(self, day: str) -> str:
        """Hash printed number -> ticket id, for one local day."""
        return self._k(f"numbers:{day}")

    def remote_count(self, day: str, service: str) -> str:
        """INCR counter of remote tickets of one service on one local day."""
        return self._k(f"remote-count:{day}:{service}")

    def remote_client(self, hour: str, client_digest: str) -> str:
        """INCR counter of remote tickets one client took in one local hour."""
        return self._k(f"remote-client:{hour}:{client_digest}")

    def remote_phones(self, day: str) -> str:
        """Hash phone digest -> the remote ticket it holds, for one local day."""
        return self._k(f"remote-phones:{day}")

    def rate_limit(self, kind: str, window: int, who_digest: str) -> str:
        """INCR counter of one caller's requests of one kind (`issue`,
        `public`) in one fixed window (its start in epoch minutes)."""
        return self._k(f"limit:{kind}:{window}:{who_digest}")

    def idempotency(self, scope_digest: str) -> str:
        """String holding a reference to the first answer of a retried request."""
        return self._k(f"idem:{scope_digest}")

    @property
    def audit_archived(self) -> str:
        """String: the id of the latest audit entry copied to the archive."""
        return self._k("audit-archived")

    def match_all(self) -> str:
        """A SCAN pattern for every key of this hall."""
        return f"{PREFIX}:{{{self.hall}}}:*"


AUDIT_SECRET = f"{PREFIX}:secret:audit"
"""String: the server-side key (hex) that derives an unnamed credential's
short id in audit entries and reports; made once, shared by every replica."""
