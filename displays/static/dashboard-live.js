// The dashboard's model of a hall: the last GET /dashboard body (figures a
// replica reads every couple of seconds) with the WebSocket's events laid
// over it, so window states, current tickets and waiting counts move the
// moment they happen and the figures catch up at the next read. No DOM here.
//
// Every event after the body's `seq` is kept and replayed over it; a read
// that was already on its way when an event came in is therefore never
// shown as if the event had not happened.

const KEEP_EVENTS = 2_000;
// A body's figures are a couple of seconds old at most: a read time further
// behind the clock the page keeps means the server's clock went back.
const BODY_AGE_MAX_MS = 10_000;

export class DashboardModel {
  constructor(config) {
    this.windowConfig = new Map(config.windows.map((w) => [w.id, w]));
    this.groupIds = config.groups.map((g) => g.id);
    this.base = null; // the last GET /dashboard body
    this.snapshot = null; // the last snapshot frame newer than the body
    this.events = []; // events with seq > the body's, ascending
    this.lastSeq = null; // the newest seq seen, from a body, a snapshot or an event
    this.offsetMs = null; // the server's clock minus this browser's
    // Numbers seen parked and not yet called back or gone: a `called` of one
    // of them is a resume, one fewer parked.
    this.parkedNumbers = new Set();
  }

  get baseSeq() {
    return this.base ? this.base.seq : -1;
  }

  // The body is older than what the socket has shown: read again soon.
  get behind() {
    return this.base !== null && this.lastSeq !== null && this.base.seq < this.lastSeq;
  }

  setBase(body, localNow = Date.now()) {
    if (this.base && body.seq < this.base.seq) return false; // an answer overtaken
    this.base = body;
    this.events = this.events.filter((e) => e.seq > body.seq);
    if (this.snapshot && this.snapshot.seq <= body.seq) this.snapshot = null;
    this.#seen(body.seq);
    // Events tell the time best (they arrive at once); the body's read time
    // only when no event has yet, or when the server's clock moved.
    const seen = Date.parse(body.at) - localNow;
    if (
      !Number.isNaN(seen) &&
      (this.offsetMs === null || seen > this.offsetMs || seen < this.offsetMs - BODY_AGE_MAX_MS)
    ) {
      this.offsetMs = seen;
    }
    return true;
  }

  applySnapshot(frame) {
    // Events before it stay: what they did to served counts and breaches is
    // not in a snapshot.
    if (frame.seq >= this.baseSeq) this.snapshot = frame;
    this.#seen(frame.seq);
  }

  applyEvent(event, localNow = Date.now()) {
    // An event can arrive late (replayed after a reconnect), never early:
    // the largest offset seen is the truest.
    const seen = Date.parse(event.at) - localNow;
    if (!Number.isNaN(seen)) this.offsetMs = Math.max(this.offsetMs ?? seen, seen);
    this.#seen(event.seq);
    if (event.type === "parked") this.parkedNumbers.add(event.number);
    const wasParked = event.type !== "parked" && this.parkedNumbers.delete(event.number);
    if (event.seq <= this.baseSeq) return false; // already in the body read after it
    if (wasParked) event = { ...event, wasParked };
    this.events.push(event);
    if (this.events.length > KEEP_EVENTS) this.events.shift();
    return true;
  }

  serverNow(localNow = Date.now()) {
    return localNow + (this.offsetMs ?? 0);
  }

  // Seconds from the body's read to now: what its waiting times have grown by.
  ageSeconds(localNow = Date.now()) {
    if (!this.base) return 0;
    return Math.max(0, (this.serverNow(localNow) - Date.parse(this.base.at)) / 1000);
  }

  // Windows in the hall's order: state and current ticket live, the rest
  // from the body. ticket: {number, service, called_at} or null.
  windows() {
    const anchor = this.#anchor();
    const live = new Map();
    for (const id of this.windowConfig.keys()) live.set(id, { status: "closed", ticket: null });
    for (const w of anchor.windows) {
      live.set(w.id, { status: w.status, ticket: w.ticket ? { ...w.ticket } : null });
    }
    const served = new Map();
    for (const e of this.events) {
      if (e.type === "completed" && e.window && e.seq > this.baseSeq) {
        served.set(e.window, (served.get(e.window) ?? 0) + 1);
      }
      if (e.seq <= anchor.seq || !e.window) continue;
      const w = live.get(e.window) ?? { status: "closed", ticket: null };
      live.set(e.window, w);
      switch (e.type) {
        case "called":
        case "recalled":
          w.ticket = { number: e.number, service: e.service, called_at: e.at };
          break;
        case "completed":
        case "no_show":
        case "transferred":
        case "parked":
          if (w.ticket && w.ticket.number === e.number) w.ticket = null;
          break;
        case "window":
          w.status = e.status;
          // Closing ends the ticket at the window; pausing keeps it.
          if (e.status === "closed") w.ticket = null;
          break;
        default:
          break;
      }
    }
    const figures = new Map((this.base?.windows ?? []).map((w) => [w.id, w]));
    const unknown = [...live.keys()].filter((id) => !this.windowConfig.has(id));
    const ids = [...this.windowConfig.keys(), ...unknown];
    return ids.map((id) => {
      const f = figures.get(id);
      return {
        id,
        name: this.windowConfig.get(id)?.name ?? f?.name ?? id,
        status: live.get(id).status,
        ticket: live.get(id).ticket,
        served: (f?.served ?? 0) + (served.get(id) ?? 0),
        busy_seconds: f?.busy_seconds ?? null,
        idle_seconds: f?.idle_seconds ?? null,
        utilisation: f?.utilisation ?? null,
      };
    });
  }

  // Waiting per group: the newest count the body, a snapshot or an event gave.
  waiting() {
    const anchor = this.#anchor();
    let counts = Object.fromEntries(anchor.groups.map((g) => [g.id, g.waiting]));
    for (const e of this.events) {
      if (e.seq > anchor.seq && e.waiting) counts = { ...e.waiting };
    }
    return counts;
  }

  // Groups in the hall's order with live counts and open windows; the oldest
  // wait is the body's, grown by the time since it was read (null once
  // nobody waits).
  groups(localNow = Date.now()) {
    const counts = this.waiting();
    const figures = new Map((this.base?.groups ?? []).map((g) => [g.id, g]));
    const open = new Map(this.groupIds.map((g) => [g, 0]));
    for (const w of this.windows()) {
      if (w.status !== "open") continue;
      for (const g of this.windowConfig.get(w.id)?.groups ?? []) {
        open.set(g, (open.get(g) ?? 0) + 1);
      }
    }
    const age = this.ageSeconds(localNow);
    return this.groupIds.map((id) => {
      const f = figures.get(id);
      const waiting = counts[id] ?? f?.waiting ?? 0;
      const oldest = f?.oldest_wait_seconds ?? null;
      return {
        id,
        waiting,
        open_windows: open.get(id) ?? 0,
        oldest_wait_seconds: waiting > 0 && oldest !== null ? oldest + age : null,
      };
    });
  }

  // Tickets waiting past their target, longest first, their waits grown by
  // the time since the read; a ticket called or cancelled since is no longer
  // waiting. (A transfer moves a ticket already called: it waits again, and
  // the next read says whether past its new service's target.)
  breaches(localNow = Date.now()) {
    if (!this.base) return [];
    const gone = new Set();
    for (const e of this.events) {
      if (e.type === "called" || e.type === "cancelled") gone.add(e.number);
    }
    const age = this.ageSeconds(localNow);
    return this.base.breaches
      .filter((b) => !gone.has(b.number))
      .map((b) => ({ ...b, waited_seconds: b.waited_seconds + age }));
  }

  // Whether the hall takes tickets, as the newest read gave it (`hours`:
  // the API's hall object) and the latest `hall` event since (`event`:
  // "open", "closed" or null); the next opening only comes with a read.
  hall() {
    const anchor = this.#anchor();
    const hours = anchor === this.snapshot ? (this.snapshot.hall ?? null) : (this.base?.hall?.hours ?? null);
    let event = null;
    for (const e of this.events) {
      if (e.seq > anchor.seq && e.type === "hall") event = e.status;
    }
    return { hours, event };
  }

  // Tickets parked now: the read's count, moved by the events since (one
  // parked, one of them called back or expired).
  parked() {
    const anchor = this.#anchor();
    let n = anchor.parked ?? this.base?.parked ?? 0;
    for (const e of this.events) {
      if (e.seq <= anchor.seq) continue;
      if (e.type === "parked") n += 1;
      else if (e.wasParked) n -= 1;
    }
    return Math.max(0, n);
  }

  // Tickets expired today: the body's count and every `expired` event since.
  expiredToday() {
    let n = this.base?.expired_today ?? 0;
    for (const e of this.events) if (e.type === "expired" && e.seq > this.baseSeq) n += 1;
    return n;
  }

  #anchor() {
    if (this.snapshot) return this.snapshot;
    if (this.base) return this.base;
    return { seq: -1, windows: [], groups: [] };
  }

  #seen(seq) {
    if (this.lastSeq === null || seq > this.lastSeq) this.lastSeq = seq;
  }
}
