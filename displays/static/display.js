// The LED hall screen: newest call large, recent calls, every window,
// waiting counts, clock, connection light; each call spoken aloud; outside
// the hall's hours, a banner with its next opening instead of the newest call.
import { Announcer, callText } from "./announcer.js";
import { oneReadAtATime, readConfig, showStatus, startScreen } from "./connection.js";
import { fitText } from "./fit.js";
import { HallState } from "./state.js";

const RECENT_SHOWN = 7; // as many rows as screens.css gives the list
const CELL_ASPECT = 1.6; // width : height a window cell looks best at
// A call replayed after a reconnect is still spoken if it is this recent;
// older ones are only shown (the person has long been told or gone).
const FRESH_MS = 30_000;

const config = readConfig();
const state = new HallState(config);
const $ = (id) => document.getElementById(id);
const newest = $("newest-call");
const recentList = $("recent-list");
const grid = $("window-grid");
const conn = $("conn");
const cells = new Map(Array.from(grid.children, (li) => [li.dataset.window, li]));
const counts = new Map(
  Array.from($("waiting-list").children, (li) => [li.dataset.group, li.querySelector(".count")]),
);

const soundButton = $("sound-enable");
let soundClicked = false;
const announcer = new Announcer({
  onVoice: (found) => {
    $("voice-warning").hidden = found;
  },
  onBlocked: (blocked) => {
    // Once an operator has allowed sound, a later suspension is undone
    // quietly: the page keeps its user activation.
    if (blocked && soundClicked) announcer.tryResume();
    else soundButton.hidden = !blocked;
  },
});
window.qmsAnnouncer = announcer;

// Any gesture on the page will do (an operator pressing a key), not only
// the button; the browser asks for one per page load.
async function unlockSound() {
  if (soundClicked) return;
  soundClicked = true;
  soundButton.hidden = true;
  await announcer.unlock();
}
for (const type of ["click", "keydown"]) document.addEventListener(type, unlockSound, { once: true });
if (announcer.remembered) announcer.tryResume();
else soundButton.hidden = !announcer.blocked;

// ------------------------------------------------------------------ render

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const timeFormat = new Intl.DateTimeFormat("zh-CN", {
  timeZone: config.hall.timezone,
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

function showNewest(call, flash) {
  if (!call) {
    newest.replaceChildren(el("span", "idle", "请留意叫号"));
    newest.dataset.number = "";
    return;
  }
  newest.replaceChildren(
    el("span", "word", "请"),
    el("span", "num", call.number),
    el("span", "word", "号 到"),
    el("span", "win", state.windowName(call.window)),
  );
  newest.dataset.number = call.number;
  newest.dataset.window = call.window;
  fitText(newest);
  if (flash) {
    newest.classList.remove("flash");
    void newest.offsetWidth; // restart the animation for a repeated call
    newest.classList.add("flash");
  }
}

function showRecent() {
  recentList.replaceChildren(
    ...state.recent.slice(1, 1 + RECENT_SHOWN).map((c) => {
      const li = el("li");
      li.append(
        el("span", "num", c.number),
        el("span", "win", state.windowName(c.window)),
        el("time", "at", timeFormat.format(new Date(c.at))),
      );
      return li;
    }),
  );
}

function showWindow(id) {
  const cell = cells.get(id);
  const w = state.windows.get(id);
  if (!cell || !w) return;
  cell.dataset.status = w.status;
  const text = w.status === "paused" ? "暂停" : w.status === "open" && w.number ? w.number : "—";
  cell.querySelector(".number").textContent = text;
  cell.dataset.number = w.number ?? "";
}

function showWaiting() {
  for (const [group, count] of counts) count.textContent = String(state.waiting[group] ?? 0);
}

// ------------------------------------------------------------ hall hours

const hallClosed = $("hall-closed");
const dayFormat = new Intl.DateTimeFormat("en-CA", {
  timeZone: config.hall.timezone,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
});
const WEEKDAYS = ["周日", "周一", "周二", "周三", "周四", "周五", "周六"];
const EN_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

// Days from today to `date`, both in the hall's time zone.
function daysAhead(date, now) {
  const day = (d) => Date.parse(`${dayFormat.format(d)}T00:00:00Z`);
  return Math.round((day(date) - day(now)) / 86_400_000);
}

// "明天 08:30", "13:30", "12月8日 周二 08:30"; read against the screen's own
// clock, so "明天" is right after midnight too.
function opening(iso, now) {
  const at = new Date(iso);
  const time = timeFormat.format(at);
  const days = daysAhead(at, now);
  const local = new Date(Date.parse(`${dayFormat.format(at)}T00:00:00Z`));
  if (days <= 0) return { zh: time, en: time, today: true };
  if (days === 1) return { zh: `明天 ${time}`, en: `tomorrow ${time}` };
  if (days === 2) return { zh: `后天 ${time}`, en: `${EN_DAYS[local.getUTCDay()]} ${time}` };
  const zh = `${local.getUTCMonth() + 1}月${local.getUTCDate()}日 ${WEEKDAYS[local.getUTCDay()]} ${time}`;
  return { zh, en: `${EN_DAYS[local.getUTCDay()]} ${local.getUTCDate()}/${local.getUTCMonth() + 1} ${time}` };
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function showHall() {
  const closed = state.hallClosed;
  const reopened = !closed && newest.hidden;
  document.body.dataset.hall = closed ? "closed" : "open";
  hallClosed.hidden = !closed;
  newest.hidden = closed;
  if (reopened) fitText(newest); // calls that came while hidden were not measured
  if (!closed) return;
  const iso = state.opensAt;
  const when = iso ? opening(iso, new Date()) : null;
  hallClosed.dataset.opensAt = iso ?? "";
  // Closed until later today is a pause (lunch); else the day is over.
  const title = $("hall-closed-title");
  const [zh, en] = when?.today ? ["暂停服务", "Closed"] : ["今日服务已结束", "Closed for today"];
  if (title.dataset.zh !== zh) {
    title.dataset.zh = zh;
    title.replaceChildren(zh, " ", el("span", "en", en));
  }
  const next = $("hall-next");
  const said = when ? `下次开放 ${when.zh}|opens ${when.en}` : state.hall?.open === false ? "暂无开放安排|no opening scheduled" : "";
  if (next.dataset.said !== said) {
    next.dataset.said = said;
    const [nextZh, nextEn] = said.split("|");
    next.replaceChildren(...(said ? [nextZh, " ", el("span", "en", nextEn)] : []));
  }
}

// A `hall` event says open or closed; the next opening comes from a read.
const readHall = oneReadAtATime(
  async () => {
    const snap = await window.qmsLink?.read();
    // A read that left before the latest `hall` event would undo it.
    if (snap?.hall && snap.seq >= state.hallEventSeq) {
      state.setHall(snap.hall);
      showHall();
    }
  },
  () => true,
);

function showAll() {
  showHall();
  showNewest(state.recent[0] ?? null, false);
  showRecent();
  for (const id of cells.keys()) showWindow(id);
  showWaiting();
}

// Columns and rows that give the largest cells of a pleasant shape for this
// many windows in the space left; fonts follow the cell (container units).
function layoutGrid() {
  const n = cells.size;
  const width = grid.clientWidth;
  const height = grid.clientHeight;
  let best = { size: -1, cols: 1 };
  for (let cols = 1; cols <= n; cols++) {
    const size = Math.min(width / cols / CELL_ASPECT, height / Math.ceil(n / cols));
    if (size > best.size) best = { size, cols };
  }
  grid.style.setProperty("--cols", String(best.cols));
  grid.style.setProperty("--rows", String(Math.ceil(n / best.cols)));
}

// --------------------------------------------------------------- freshness

// Lag of recent frames (client clock minus server `at`): their minimum is
// transit time plus clock skew, so a frame far above it is a replay.
const lags = [];
function isFresh(at) {
  const lag = Date.now() - Date.parse(at);
  lags.push(lag);
  if (lags.length > 16) lags.shift();
  return lag - Math.min(...lags) < FRESH_MS;
}

// -------------------------------------------------------------------- clock

const clockTime = $("clock-time");
const clockDate = $("clock-date");
const clockFormat = new Intl.DateTimeFormat("zh-CN", {
  timeZone: config.hall.timezone,
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});
const dateFormat = new Intl.DateTimeFormat("zh-CN", {
  timeZone: config.hall.timezone,
  month: "long",
  day: "numeric",
  weekday: "long",
});
function tick() {
  const now = new Date();
  clockTime.textContent = clockFormat.format(now);
  clockDate.textContent = dateFormat.format(now);
  showHall(); // "明天" becomes "今天" at midnight
  setTimeout(tick, 1000 - (now.getTime() % 1000) + 5);
}

// ---------------------------------------------------------------- wiring

window.qmsLink = startScreen(config, {
  onStatus: (s) => showStatus(conn, s),
  onSnapshot: (snap) => {
    state.reset(snap);
    showAll();
  },
  onEvent: (ev) => {
    const fresh = isFresh(ev.at);
    const call = state.apply(ev);
    showWaiting();
    if (ev.window) showWindow(ev.window);
    if (ev.type === "hall") {
      showHall();
      readHall();
    }
    // Only calls are spoken: expiries, parking, the hall's hours are not.
    if (!call) return;
    showNewest(call, true);
    showRecent();
    if (fresh) announcer.enqueue(callText(call.number, state.windowName(call.window), call.recall));
  },
});

tick();
layoutGrid();
showAll();
new ResizeObserver(() => {
  layoutGrid();
  fitText(newest);
}).observe(document.body);
