// The hall as a screen sees it, rebuilt from a snapshot and moved by events.
// No DOM and no sockets here: the pages render it, connection.js feeds it.

const RECENT_KEEP = 20; // as many as the server keeps, so a snapshot matches

export class HallState {
  constructor(config) {
    this.windowNames = new Map(config.windows.map((w) => [w.id, w.name]));
    this.reset({ windows: [], groups: [], recent_calls: [] });
  }

  // A snapshot replaces everything: state may have changed in any way since.
  reset(snapshot) {
    this.setHall(snapshot.hall ?? null);
    this.windows = new Map();
    for (const id of this.windowNames.keys()) {
      this.windows.set(id, { status: "closed", number: null });
    }
    for (const w of snapshot.windows) {
      this.windows.set(w.id, { status: w.status, number: w.ticket ? w.ticket.number : null });
    }
    this.waiting = Object.fromEntries(snapshot.groups.map((g) => [g.id, g.waiting]));
    this.recent = snapshot.recent_calls.map((c) => ({ number: c.number, window: c.window, at: c.at }));
  }

  // Applies one event; returns the call it announces, if any.
  apply(event) {
    if (event.waiting) this.waiting = { ...event.waiting };
    const w = event.window ? this.#window(event.window) : null;
    switch (event.type) {
      case "called":
      case "recalled": {
        w.number = event.number;
        const call = { number: event.number, window: event.window, at: event.at };
        this.recent.unshift(call);
        this.recent.length = Math.min(this.recent.length, RECENT_KEEP);
        return { ...call, recall: event.type === "recalled" };
      }
      case "completed":
      case "no_show":
      case "transferred":
      case "parked": // stepped aside: the window is free
        if (w && w.number === event.number) w.number = null;
        return null;
      case "hall":
        // Its next opening is not in the event: the page reads it.
        this.hallEvent = event.status;
        this.hallEventSeq = event.seq;
        return null;
      case "window":
        w.status = event.status;
        // Closing ends the ticket at the window; pausing keeps it.
        if (event.status === "closed") w.number = null;
        return null;
      default:
        return null;
    }
  }

  // The hall's hours as a snapshot gave them (the `hall` object), newer
  // than any `hall` event seen.
  setHall(hall) {
    this.hall = hall;
    this.hallEvent = null;
    this.hallEventSeq = -1;
  }

  // Closed for visitors: outside the hours (not merely past the kiosk's
  // last issue, while those waiting are still called), or closed by a
  // manager. A `hall` event since the last read says it at once.
  get hallClosed() {
    if (this.hallEvent) return this.hallEvent === "closed";
    const h = this.hall;
    return Boolean(h) && h.open === false && (!h.in_span || Boolean(h.closed_by_manager));
  }

  // When it opens next (ISO), if known and still closed.
  get opensAt() {
    return this.hallClosed && this.hall && this.hall.open === false ? this.hall.opens_at : null;
  }

  windowName(id) {
    return this.windowNames.get(id) ?? id;
  }

  #window(id) {
    let w = this.windows.get(id);
    if (!w) {
      w = { status: "closed", number: null };
      this.windows.set(id, w);
    }
    return w;
  }
}
