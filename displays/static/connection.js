// A screen's link to its hall: the token, the screen's identity, and a
// WebSocket that comes back by itself and never misses or repeats an event.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const WATCHDOG_HEARTBEATS = 2.5;
// A socket that lived this long was a real connection, not a flapping one.
const STABLE_MS = 5_000;
// A refused handshake looks like a dead server to a browser; after this many
// failed opens in a row, ask /snapshot whether the token is still accepted.
const RECHECK_AFTER_FAILURES = 3;
const CHECK_TIMEOUT_MS = 10_000;
const SCREEN_ID = /^[A-Za-z0-9._:-]{1,64}$/;
// Close codes of a socket whose first message (the token) was refused.
const REFUSED_CODES = new Set([4401, 4403]);

export function readConfig() {
  return JSON.parse(document.getElementById("qms-config").textContent);
}

// Storage can be disabled (policy, private mode): the page still works, it
// only forgets across reloads.
export const store = {
  get(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      /* not kept */
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      /* nothing kept */
    }
  },
};

function storageKey(kind, config) {
  const parts = ["qms", kind, config.hall.id, config.page];
  if (kind === "screen" && config.window) parts.push(config.window);
  return parts.join(".");
}

// `?token=` is taken once: kept in storage under `key`, dropped from the
// address bar so it is not left on screen, in history or in a bookmark.
export function takeUrlToken(key) {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (!token) return;
  store.set(key, token);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

function takeUrlParams(config) {
  takeUrlToken(storageKey("token", config));
  const screen = new URL(location.href).searchParams.get("screen");
  if (screen && SCREEN_ID.test(screen)) store.set(storageKey("screen", config), screen);
}

// One read at a time: anything that asks meanwhile gets one more read after
// it (while `wanted()`), so the last change is never missed and answers never
// arrive out of order. The returned function resolves to true for the caller
// that did the reading, false for one that only asked for another.
export function oneReadAtATime(readOnce, wanted) {
  let reading = false;
  let again = false;
  return async () => {
    if (reading) {
      again = true;
      return false;
    }
    reading = true;
    try {
      do {
        again = false;
        await readOnce();
      } while (again && wanted());
    } finally {
      reading = false;
    }
    return true;
  };
}

// The screen identity presence knows it by: from `?screen=`, else made up once
// and kept (per hall, page and window).
export function screenId(config) {
  const key = storageKey("screen", config);
  let id = store.get(key);
  if (!id || !SCREEN_ID.test(id)) {
    const random = crypto.getRandomValues(new Uint32Array(2));
    id = `${config.page}-${Array.from(random, (n) => n.toString(36)).join("")}`;
    store.set(key, id);
  }
  return id;
}

const LABELS = { connecting: "连接中", live: "已连接", down: "连接中断，正在重连", token: "需要令牌" };

export function showStatus(el, state) {
  el.dataset.state = state;
  el.title = LABELS[state];
  el.querySelector(".label").textContent = LABELS[state];
}

// Handlers: onSnapshot(frame), onEvent(frame), onStatus(state), onRefused().
export class HallLink {
  #config;
  #screen;
  #handlers;
  #token = null;
  #ws = null;
  #lastSeq = null;
  #failures = 0;
  #trusted = false;
  #retryTimer = null;
  #watchdog = null;
  #openedAt = 0;
  #shown = null; // the status last shown
  #generation = 0; // bumped by start/stop, so a check in flight can tell it is stale

  constructor(config, screen, handlers) {
    this.#config = config;
    this.#screen = screen;
    this.#handlers = handlers;
  }

  get lastSeq() {
    return this.#lastSeq;
  }

  start(token) {
    this.stop();
    this.#token = token;
    this.#trusted = false;
    this.#failures = 0;
    this.#status("connecting");
    this.#connect();
  }

  // One read of the page's snapshot path with the page's token, beside the
  // socket (what an event does not carry): its JSON, or null.
  async read() {
    if (!this.#token) return null;
    try {
      const r = await fetch(this.#config.snapshot_path, {
        headers: { Authorization: `Bearer ${this.#token}` },
        cache: "no-store",
        signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
      });
      return r.ok ? await r.json() : null;
    } catch {
      return null;
    }
  }

  stop() {
    this.#generation += 1;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#watchdog);
    this.#detach();
    this.#token = null;
  }

  async #connect() {
    if (!this.#trusted) {
      const generation = this.#generation;
      const verdict = await this.#checkToken();
      if (generation !== this.#generation) return;
      if (verdict === "refused") {
        this.#refused();
        return;
      }
      if (verdict !== "ok") {
        this.#status("down");
        this.#retry();
        return;
      }
      this.#trusted = true;
    }
    this.#open();
  }

  async #checkToken() {
    try {
      const r = await fetch(this.#config.snapshot_path, {
        headers: { Authorization: `Bearer ${this.#token}` },
        cache: "no-store",
        signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
      });
      if (r.status === 401 || r.status === 403) return "refused";
      return r.ok ? "ok" : "unavailable";
    } catch {
      return "unavailable";
    }
  }

  // The token goes in the socket's first message, never in its URL: a URL
  // ends up in server and proxy logs. Nothing comes before it is accepted.
  #open() {
    const q = new URLSearchParams({
      auth: "message",
      format: "json",
      page: this.#config.page,
      screen: this.#screen,
    });
    if (this.#config.window) q.set("window", this.#config.window);
    if (this.#lastSeq !== null) q.set("since", String(this.#lastSeq));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.#config.ws_path}?${q}`);
    const token = this.#token;
    this.#ws = ws;
    this.#arm(); // a handshake into a black hole counts as silence too
    ws.onopen = () => {
      this.#openedAt = performance.now();
      ws.send(JSON.stringify({ type: "auth", token }));
      this.#arm();
    };
    ws.onmessage = (m) => this.#frame(JSON.parse(m.data));
    ws.onclose = (e) => {
      if (this.#ws !== ws) return;
      if (REFUSED_CODES.has(e.code)) this.#refused();
      else this.#lost();
    };
  }

  #refused() {
    this.stop();
    this.#status("token");
    this.#handlers.onRefused();
  }

  #frame(f) {
    this.#arm();
    // Live from the first frame: the token was accepted.
    if (this.#shown !== "live") this.#status("live");
    if (f.type === "snapshot") {
      this.#lastSeq = f.seq;
      this.#handlers.onSnapshot(f);
      return;
    }
    if (f.type === "heartbeat") {
      // A heartbeat ahead of us means events went missing. One behind can
      // happen right after joining (queued before our snapshot): harmless.
      if (this.#lastSeq !== null && f.seq > this.#lastSeq) this.#resume();
      return;
    }
    if (this.#lastSeq !== null) {
      if (f.seq <= this.#lastSeq) return;
      if (f.seq > this.#lastSeq + 1) {
        this.#resume();
        return;
      }
    }
    this.#lastSeq = f.seq;
    this.#handlers.onEvent(f);
  }

  // Missed events: reconnect at once with `since`, the server replays them.
  // A socket that keeps seeing gaps as soon as it opens waits like a failure.
  #resume() {
    const young = performance.now() - this.#openedAt < STABLE_MS;
    this.#detach();
    this.#openedAt = 0;
    if (young) {
      this.#status("down");
      this.#retry();
    } else {
      this.#connect();
    }
  }

  // The browser only sees heartbeats, not protocol pings: silence this long
  // is a dead link even when the socket has not noticed yet.
  #arm() {
    clearTimeout(this.#watchdog);
    const ms = this.#config.heartbeat_s * 1000 * WATCHDOG_HEARTBEATS;
    this.#watchdog = setTimeout(() => {
      this.#detach();
      this.#lost();
    }, ms);
  }

  #lost() {
    clearTimeout(this.#watchdog);
    this.#ws = null;
    if (this.#openedAt && performance.now() - this.#openedAt >= STABLE_MS) this.#failures = 0;
    this.#openedAt = 0;
    this.#status("down");
    this.#retry();
  }

  #retry() {
    this.#failures += 1;
    if (this.#failures % RECHECK_AFTER_FAILURES === 0) this.#trusted = false;
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.#failures - 1));
    // Randomised within the upper half: a hall's screens do not come back in step.
    const delay = cap / 2 + (Math.random() * cap) / 2;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  // Forget a socket without waiting for its close handshake, which a dead
  // network can hold up for minutes.
  #detach() {
    const ws = this.#ws;
    this.#ws = null;
    clearTimeout(this.#watchdog);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close();
      } catch {
        /* already closing */
      }
    }
  }

  #status(state) {
    this.#shown = state;
    this.#handlers.onStatus(state);
  }
}

// Token, screen id, the token form, and the link: everything a screen page
// needs before it can draw. Returns the link (exposed for operators' console).
export function startScreen(config, handlers) {
  takeUrlParams(config);
  const tokenKey = storageKey("token", config);
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const error = document.getElementById("token-error");

  const link = new HallLink(config, screenId(config), {
    ...handlers,
    onRefused: () => ask(true),
  });

  function ask(rejected) {
    store.remove(tokenKey);
    error.hidden = !rejected;
    form.hidden = false;
    handlers.onStatus("token");
    input.value = "";
    input.focus();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    store.set(tokenKey, token);
    form.hidden = true;
    link.start(token);
  });

  const token = store.get(tokenKey);
  if (token) link.start(token);
  else ask(false);
  return link;
}
