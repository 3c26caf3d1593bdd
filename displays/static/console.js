// The clerk console at a window: sign in with the clerk's token, open/pause/
// close the window, call the next person, recall (up to the hall's limit),
// no-show, complete, transfer, park (the person steps aside) and resume a
// parked ticket, call out of turn; the current ticket, the window's queue and
// the hall's parked tickets stay live through the hall's WebSocket, re-read
// from GET /windows/{w} and GET /parked.
import { HallLink, oneReadAtATime, readConfig, screenId, store, takeUrlToken } from "./connection.js";
import { I18n } from "./i18n.js";

const CATALOGUE = {
  zh: {
    console: "叫号台",
    window_ops: "窗口状态",
    open: "开窗",
    pause: "暂停",
    close: "关窗",
    "status.open": "服务中",
    "status.paused": "暂停服务",
    "status.closed": "窗口关闭",
    "status.unknown": "—",
    "conn.connecting": "连接中",
    "conn.live": "已连接",
    "conn.down": "连接中断，正在重连",
    "conn.token": "需要令牌",
    sign_out: "退出登录",
    current: "当前办理",
    idle: "暂无正在办理的号",
    waited: "已等候",
    at_window: "办理用时",
    waited_span: "{span}（{issued} 取号，{called} 叫号）",
    call_next: "叫号",
    "key.space": "空格",
    recall: "重呼",
    no_show: "过号",
    complete: "办结",
    transfer: "转办",
    park: "暂挂",
    park_hint: "让其先去补材料",
    recalls_left: "还可重呼 {n} 次",
    recalls_none: "已达上限，请过号",
    parked_title: "暂挂",
    parked_total: "{n} 人",
    "col.parked_at": "暂挂于",
    parked_where: "{window} · {time}",
    resume: "恢复叫号",
    call_number_label: "特呼号码",
    call_number: "特呼",
    call_hint: "输入等候中的号码，不按顺序直接呼叫",
    waiting_title: "等候队列",
    waiting_total: "共 {n} 人",
    nobody: "暂无等候",
    more: "另有 {n} 人未列出",
    next: "下一位",
    "col.order": "顺序",
    "col.number": "号码",
    "col.service": "业务",
    "col.priority": "类别",
    "col.issued": "取号时间",
    "col.waited": "已等",
    transfer_title: "转办",
    transfer_what: "把 {number} 号（{service}）转到其他业务",
    transfer_to: "转到业务",
    transfer_hint: "号码不变，按原取号时间排队",
    cancel: "取消",
    transfer_confirm: "确定转办",
    signin_title: "办事员登录",
    token_label: "请输入办事员令牌",
    sign_in: "登录",
    "signin.bad_token": "令牌无效，请重新输入",
    "signin.not_your_window": "这个令牌不能操作{window}：您不是本窗口的办事员",
    "signin.not_a_clerk": "这个令牌不是办事员令牌，不能操作窗口",
    "signin.unreachable": "暂时连不上服务器，正在重试…",
    // Why the current ticket was called (queue_core/reasons.py words the same).
    "reason.place": "按取号顺序",
    "reason.credit": "{cls}优先：先于 {ahead}",
    "reason.appointment": "预约优先：先于 {ahead}",
    "reason.ratio": "按比例轮到{side}：先于 {ahead}",
    "reason.order": "本窗口先办{group}：先于 {ahead}",
    "reason.out_of_turn": "窗口指定叫号：先于 {ahead}",
    "reason.resume": "暂离后恢复叫号",
    "reason.n.one": "{n} 位更早取号的群众",
    "reason.n.other": "{n} 位更早取号的群众",
    "reason.side.priority": "优先群众",
    "reason.side.normal": "普通群众",
    "reason.cls.elderly": "长者",
    "reason.cls.disabled": "残障人士",
    "prio.normal": "普通",
    "prio.elderly": "老年人",
    "prio.disabled": "残疾人",
    "prio.appointment": "预约",
    "prio.military": "军人",
    "prio.veteran": "退役军人",
    "prio.pregnant": "孕妇",
    "ok.call-next": "已呼叫 {number} 号",
    "ok.call": "已特呼 {number} 号",
    "ok.recall": "已重呼 {number} 号",
    "ok.complete": "{number} 号已办结",
    "ok.no-show": "{number} 号已过号",
    "ok.transfer": "{number} 号已转到「{service}」",
    "ok.park": "{number} 号已暂挂，回来后在暂挂列表里恢复叫号",
    "ok.resume": "已恢复叫号 {number} 号",
    "ok.open": "窗口已开放，可以叫号",
    "ok.pause": "窗口已暂停",
    "ok.close": "窗口已关闭",
    "err.nobody_waiting": "没有人在等候",
    "err.window_not_open": "窗口未开放：请先开窗再叫号",
    "err.no_current_ticket": "当前没有正在办理的号",
    "err.number_not_waiting": "没有这个号码在等候：{number}",
    "err.group_not_served": "{number} 号的业务不归本窗口办理",
    "err.recall_limit": "{number} 号已重呼 {limit} 次，达到上限：请按过号",
    "err.number_not_parked": "{number} 号不在暂挂列表中",
    "err.invalid_field": "号码格式不对，请输入如 A023 的号码",
    "err.empty_number": "请先输入要特呼的号码",
    "err.service_not_found": "没有这个业务",
    "err.window_not_found": "没有这个窗口",
    "err.window_forbidden": "您不是本窗口的办事员，不能操作",
    "err.forbidden": "这个令牌无权做这个操作",
    "err.unauthorized": "令牌已失效，请重新登录",
    "err.shutting_down": "服务器正在重启，请稍后再试",
    "err.unavailable": "服务器暂时不可用，请稍后再试",
    "err.network": "网络不通，操作可能没有送达；请再按一次（不会重复叫号）",
    "err.server": "服务器出错了，请稍后再试",
    "err.other": "操作未成功：{message}",
    "dur.hms": "{h}小时{m}分{s}秒",
    "dur.ms": "{m}分{s}秒",
    "dur.s": "{s}秒",
    "mins.lt1": "不到1分钟",
    "mins.n": "{n}分钟",
  },
  en: {
    console: "Clerk console",
    window_ops: "Window status",
    open: "Open",
    pause: "Pause",
    close: "Close",
    "status.open": "Open",
    "status.paused": "Paused",
    "status.closed": "Closed",
    "status.unknown": "—",
    "conn.connecting": "Connecting",
    "conn.live": "Connected",
    "conn.down": "Connection lost, retrying",
    "conn.token": "Token needed",
    sign_out: "Sign out",
    current: "Now serving",
    idle: "Nobody at the window",
    waited: "Waited",
    at_window: "At the window",
    waited_span: "{span} (ticket {issued}, called {called})",
    call_next: "Call next",
    "key.space": "Space",
    recall: "Recall",
    no_show: "No-show",
    complete: "Complete",
    transfer: "Transfer",
    park: "Park",
    park_hint: "steps aside",
    recalls_left: "{n} recalls left",
    recalls_none: "Limit: no-show",
    parked_title: "Parked",
    parked_total: "{n}",
    "col.parked_at": "Parked at",
    parked_where: "{window} · {time}",
    resume: "Resume",
    call_number_label: "Call a number",
    call_number: "Call",
    call_hint: "A waiting number, called out of turn",
    waiting_title: "Waiting",
    waiting_total: "{n} in all",
    nobody: "Nobody waiting",
    more: "{n} more not listed",
    next: "next",
    "col.order": "Order",
    "col.number": "Number",
    "col.service": "Service",
    "col.priority": "Class",
    "col.issued": "Issued",
    "col.waited": "Waited",
    transfer_title: "Transfer",
    transfer_what: "Send {number} ({service}) to another service",
    transfer_to: "Transfer to",
    transfer_hint: "Same number, keeps its place by issue time",
    cancel: "Cancel",
    transfer_confirm: "Transfer",
    signin_title: "Clerk sign-in",
    token_label: "Clerk token",
    sign_in: "Sign in",
    "signin.bad_token": "Token rejected, please enter it again",
    "signin.not_your_window": "This token cannot operate {window}: it is not this window's clerk",
    "signin.not_a_clerk": "This is not a clerk's token: it cannot operate windows",
    "signin.unreachable": "Cannot reach the server, retrying…",
    "reason.place": "In turn",
    "reason.credit": "{cls} priority: ahead of {ahead}",
    "reason.appointment": "Appointment priority: ahead of {ahead}",
    "reason.ratio": "Ratio, the {side} turn: ahead of {ahead}",
    "reason.order": "This window serves {group} first: ahead of {ahead}",
    "reason.out_of_turn": "Called out of turn: ahead of {ahead}",
    "reason.resume": "Called back after stepping away",
    "reason.n.one": "{n} earlier ticket",
    "reason.n.other": "{n} earlier tickets",
    "reason.side.priority": "priority",
    "reason.side.normal": "normal",
    "reason.cls.elderly": "Elderly",
    "reason.cls.disabled": "Disability",
    "prio.normal": "Normal",
    "prio.elderly": "Elderly",
    "prio.disabled": "Disabled",
    "prio.appointment": "Appointment",
    "prio.military": "Military",
    "prio.veteran": "Veteran",
    "prio.pregnant": "Pregnant",
    "ok.call-next": "Called {number}",
    "ok.call": "Called {number} out of turn",
    "ok.recall": "Recalled {number}",
    "ok.complete": "{number} completed",
    "ok.no-show": "{number} marked no-show",
    "ok.transfer": "{number} transferred to “{service}”",
    "ok.park": "{number} parked: resume it from the parked list when they are back",
    "ok.resume": "Resumed {number}",
    "ok.open": "Window open: you can call",
    "ok.pause": "Window paused",
    "ok.close": "Window closed",
    "err.nobody_waiting": "Nobody is waiting",
    "err.window_not_open": "The window is not open: open it before calling",
    "err.no_current_ticket": "Nobody is being served at this window",
    "err.number_not_waiting": "No waiting ticket has the number {number}",
    "err.group_not_served": "{number} is for a service this window does not handle",
    "err.recall_limit": "{number} has been recalled {limit} times, the limit: mark it a no-show",
    "err.number_not_parked": "{number} is not parked",
    "err.invalid_field": "Not a ticket number: type one such as A023",
    "err.empty_number": "Type the number to call first",
    "err.service_not_found": "No such service",
    "err.window_not_found": "No such window",
    "err.window_forbidden": "You are not this window's clerk",
    "err.forbidden": "This token may not do that",
    "err.unauthorized": "The token is no longer valid: please sign in again",
    "err.shutting_down": "The server is restarting, try again shortly",
    "err.unavailable": "The server is unavailable, try again shortly",
    "err.network": "No answer from the server; press again (nobody is called twice)",
    "err.server": "Server error, try again shortly",
    "err.other": "Not done: {message}",
    "dur.hms": "{h} h {m} min {s} s",
    "dur.ms": "{m} min {s} s",
    "dur.s": "{s} s",
    "mins.lt1": "under 1 min",
    "mins.n": "{n} min",
  },
};

const REQUEST_TIMEOUT_MS = 8_000;
// Events in a burst (a kiosk printing several tickets) cost one read.
const DEBOUNCE_MS = 50;
// A second click of a double click, or a key bounce, that arrives after the
// first answer is the same intent: sent with the same Idempotency-Key, the
// server replays the first answer and calls nobody else.
const SAME_INTENT_MS = 800;
// An intent whose request got no answer keeps its key this long, so the
// clerk's retry cannot call a second person if the first call did land.
const UNANSWERED_KEEP_MS = 60_000;
const SIGNIN_RETRY_MS = 3_000;
// Date headers have one-second resolution: trust a skew only beyond this.
const SKEW_MIN_MS = 2_000;

const config = readConfig();
const i18n = new I18n(CATALOGUE);
const $ = (id) => document.getElementById(id);
const tokenKey = `qms.token.${config.hall.id}.console.${config.window}`;
const windowName = config.windows.find((w) => w.id === config.window)?.name ?? config.window;
const services = new Map(config.services.map((s) => [s.id, s]));
const groups = new Map(config.groups.map((g) => [g.id, g]));
const myGroups = new Set(config.window_groups);
const credited = new Map(config.priorities.map((p) => [p.id, p.credit]));
const zone = config.hall.timezone;

let token = null;
let view = null; // the last GET /windows/{w} body
let skewMs = 0; // server clock − local clock
let message = null; // {kind, key, vars} or {kind, text}: re-rendered on a language switch
let signinNote = null; // the sign-in form's reason, likewise
let busy = false;
let lastIntent = null; // {sig, key, at, answered}

// ------------------------------------------------------------- formatting

const clock = new Intl.DateTimeFormat("en-GB", {
  timeZone: zone,
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

function hhmm(iso) {
  return iso ? clock.format(new Date(iso)) : "—";
}

function now() {
  return Date.now() + skewMs;
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function span(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return i18n.t("dur.hms", { h, m: pad(m), s: pad(s) });
  if (m) return i18n.t("dur.ms", { m, s: pad(s) });
  return i18n.t("dur.s", { s });
}

function stopwatch(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const mm = pad(Math.floor((total % 3600) / 60));
  const ss = pad(total % 60);
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function minutes(ms) {
  const n = Math.floor(Math.max(0, ms) / 60_000);
  return n < 1 ? i18n.t("mins.lt1") : i18n.t("mins.n", { n });
}

function serviceName(id) {
  return services.get(id)?.name ?? id;
}

// The hall may configure classes this page has no words for: its own id then.
function priorityName(id) {
  return `prio.${id}` in CATALOGUE.zh ? i18n.t(`prio.${id}`) : id;
}

function isPriority(id) {
  const credit = credited.get(id);
  return credit === "inf" || (typeof credit === "number" && credit > 0);
}

function badge(node, priority) {
  node.textContent = priorityName(priority);
  node.dataset.priority = priority;
  node.classList.toggle("marked", isPriority(priority));
}

// --------------------------------------------------------------- messages

function say(kind, key, vars = {}) {
  message = { kind, key, vars };
  showMessage();
}

function showMessage() {
  const el = $("message");
  if (!message) {
    el.textContent = "";
    el.dataset.kind = "";
    return;
  }
  el.dataset.kind = message.kind;
  el.textContent = message.key ? i18n.t(message.key, message.vars) : message.text;
}

// An API refusal in words: the catalogue by code, the API's sentence when
// the catalogue has none.
function refusal(code, apiMessage, vars) {
  if (code && `err.${code}` in CATALOGUE.zh) say("error", `err.${code}`, vars);
  else say("error", "err.other", { message: apiMessage || code || "?" });
}

// ------------------------------------------------------------------ HTTP

async function request(method, path, { body, key } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (key) headers["Idempotency-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  let data = null;
  if (r.status !== 204) {
    try {
      data = await r.json();
    } catch {
      data = null;
    }
  }
  return { status: r.status, data, date: r.headers.get("date") };
}

function noteSkew(date) {
  const server = Date.parse(date ?? "");
  if (Number.isNaN(server)) return;
  // The header is truncated to the second: its middle is the best guess.
  const skew = server + 500 - Date.now();
  skewMs = Math.abs(skew) > SKEW_MIN_MS ? skew : 0;
}

// ---------------------------------------------------------------- sign-in

// The page name goes to the gateway, so presence can tell consoles apart.
const link = new HallLink(config, screenId(config), {
  onSnapshot: (frame) => {
    counts = Object.fromEntries(frame.groups.map((g) => [g.id, g.waiting]));
    refreshSoon(); // after a reconnect: whatever was missed
    parkedSoon();
  },
  onEvent: (frame) => {
    if (concernsMe(frame) || countsMoved(frame.waiting)) refreshSoon();
    if (movesParked(frame)) parkedSoon();
  },
  onStatus: (state) => showConn(state),
  // The token check said 401/403: ask the window endpoint again for which.
  onRefused: () => signIn(token),
});

// Waiting counts of the hall's groups as the last frame gave them: a change
// in one of this window's groups is a reason to re-read even when the event
// names neither this window nor one of its services.
let counts = null;

function countsMoved(waiting) {
  if (!waiting) return false;
  const moved = counts === null || [...myGroups].some((g) => waiting[g] !== counts[g]);
  counts = { ...waiting };
  return moved;
}

// The hall's parked list changes with a ticket parked anywhere, and with one
// of its tickets called back (resumed) or expired; a hall closing expires them.
function movesParked(frame) {
  if (frame.type === "parked" || frame.type === "hall") return true;
  if (frame.type === "called" || frame.type === "expired") {
    return parked.some((p) => p.number === frame.number);
  }
  return false;
}

function concernsMe(frame) {
  if (frame.window === config.window) return true;
  const service = frame.service && services.get(frame.service);
  return Boolean(service && myGroups.has(service.group));
}

function ask(note) {
  link.stop();
  token = null;
  view = null;
  parked = [];
  drawParked();
  signinNote = note;
  document.body.dataset.signedIn = "false";
  showConn("token");
  showSignin();
  const form = $("token-form");
  form.hidden = false;
  const input = $("token-input");
  input.value = "";
  input.focus();
}

function showSignin() {
  const error = $("token-error");
  error.hidden = !signinNote;
  error.textContent = signinNote ? i18n.t(signinNote, { window: windowName }) : "";
}

let signinRetry = null;

async function signIn(candidate) {
  clearTimeout(signinRetry);
  token = candidate;
  let answer;
  try {
    answer = await request("GET", config.window_path);
  } catch {
    answer = null;
  }
  if (token !== candidate) return; // signed out or another token meanwhile
  if (answer && answer.status === 401) {
    store.remove(tokenKey);
    ask("signin.bad_token");
    return;
  }
  if (answer && answer.status === 403) {
    store.remove(tokenKey);
    const code = answer.data?.error?.code;
    ask(code === "window_forbidden" ? "signin.not_your_window" : "signin.not_a_clerk");
    return;
  }
  if (!answer || answer.status !== 200) {
    // The server is down or restarting: keep the token, try again.
    signinNote = "signin.unreachable";
    showSignin();
    $("token-form").hidden = false;
    signinRetry = setTimeout(() => signIn(candidate), SIGNIN_RETRY_MS);
    return;
  }
  store.set(tokenKey, candidate);
  signinNote = null;
  $("token-form").hidden = true;
  const first = document.body.dataset.signedIn !== "true";
  document.body.dataset.signedIn = "true";
  noteSkew(answer.date);
  render(answer.data);
  link.start(candidate);
  if (first) $("act-call-next").focus();
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const candidate = $("token-input").value.trim();
  if (candidate) signIn(candidate);
});

$("sign-out").addEventListener("click", () => {
  store.remove(tokenKey);
  message = null;
  showMessage();
  ask(null);
});

// ---------------------------------------------------------------- reading

let refreshTimer = null;

function refreshSoon(delay = DEBOUNCE_MS) {
  if (refreshTimer !== null || !token) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, delay);
}

const refresh = oneReadAtATime(readOnce, () => Boolean(token));

let parked = []; // the last GET /parked
let parkedTimer = null;

function parkedSoon(delay = DEBOUNCE_MS) {
  if (parkedTimer !== null || !token) return;
  parkedTimer = setTimeout(() => {
    parkedTimer = null;
    refreshParked();
  }, delay);
}

const refreshParked = oneReadAtATime(readParked, () => Boolean(token));

async function readParked() {
  const asked = token;
  let answer;
  try {
    answer = await request("GET", config.parked_path);
  } catch {
    return;
  }
  if (token !== asked || answer.status !== 200 || !Array.isArray(answer.data)) return;
  parked = answer.data;
  drawParked();
}

async function readOnce() {
  const asked = token;
  let answer;
  try {
    answer = await request("GET", config.window_path);
  } catch {
    return; // the link's light already says the server is away
  }
  if (token !== asked) return;
  if (answer.status === 401 || answer.status === 403) {
    signIn(asked);
    return;
  }
  if (answer.status !== 200) return;
  noteSkew(answer.date);
  render(answer.data);
}

// --------------------------------------------------------------- drawing

function render(data) {
  view = data;
  const status = data.window.status;
  const badgeEl = $("window-status");
  badgeEl.dataset.status = status;
  $("window-status-text").textContent = i18n.t(`status.${status}`);
  for (const op of ["open", "pause", "close"]) {
    const target = { open: "open", pause: "paused", close: "closed" }[op];
    $(`act-${op}`).setAttribute("aria-pressed", String(status === target));
  }
  drawCurrent(data.current);
  drawRecalls(data.current, data.recall_limit);
  drawWaiting(data.waiting, data.waiting_total);
  tick();
}

// Announcements left after the first call; at the hall's limit recall is
// off and no-show is the way on.
function recallsLeft(current = view?.current, limit = view?.recall_limit) {
  if (!current || typeof limit !== "number") return null;
  return Math.max(0, limit - (current.recalls ?? 0));
}

function drawRecalls(current, limit) {
  const left = recallsLeft(current, limit);
  const note = $("recalls-left");
  note.hidden = left === null;
  note.textContent = left === null ? "" : left > 0 ? i18n.t("recalls_left", { n: left }) : i18n.t("recalls_none");
  $("act-recall").disabled = left === 0;
  $("act-recall").dataset.left = left === null ? "" : String(left);
  $("act-no-show").dataset.suggest = String(left === 0);
}

// The hall's parked tickets, longest parked first; those of this window's
// groups can be called back here.
function drawParked() {
  const rows = parked.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.number = p.number;
    const mine = myGroups.has(p.group ?? services.get(p.service)?.group);
    tr.dataset.mine = String(mine);
    cell(tr, p.number, "number");
    cell(tr, serviceName(p.service), "service");
    const where = config.windows.find((w) => w.id === p.window)?.name ?? p.window ?? "";
    cell(tr, i18n.t("parked_where", { window: where, time: hhmm(p.parked_at) }), "issued");
    const action = cell(tr, undefined, "resume");
    if (mine) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "resume";
      button.dataset.number = p.number;
      button.textContent = i18n.t("resume");
      button.addEventListener("click", () => act("resume", { number: p.number }));
      action.append(button);
    }
    return tr;
  });
  $("parked-body").replaceChildren(...rows);
  $("parked-total").textContent = i18n.t("parked_total", { n: parked.length });
  $("parked").hidden = parked.length === 0;
}

function drawCurrent(current) {
  const box = $("current");
  box.dataset.number = current?.number ?? "";
  box.dataset.priority = current?.priority ?? "";
  box.classList.toggle("marked", Boolean(current) && isPriority(current.priority));
  $("current-number").textContent = current ? current.number : "—";
  $("current-idle").hidden = Boolean(current);
  $("current-times").hidden = !current;
  const service = $("current-service");
  const prio = $("current-priority");
  const reason = $("current-reason");
  reason.hidden = !current?.reason;
  reason.textContent = current?.reason ? reasonText(current) : "";
  if (!current) {
    service.textContent = "";
    prio.hidden = true;
    return;
  }
  const group = groups.get(current.group)?.name;
  service.textContent = group
    ? `${serviceName(current.service)} · ${group}`
    : serviceName(current.service);
  badge(prio, current.priority);
  prio.hidden = false;
  const waited = Date.parse(current.called_at) - Date.parse(current.issued_at);
  $("current-waited").textContent = i18n.t("waited_span", {
    span: span(waited),
    issued: hhmm(current.issued_at),
    called: hhmm(current.called_at),
  });
}

// "长者优先：先于 3 位更早取号的群众": why the current ticket was called.
function reasonText(current) {
  const { code, ahead_of: n } = current.reason;
  const key = `reason.${code}`;
  if (!(key in CATALOGUE.zh)) return current.reason.text; // a code this page does not know
  const cls = `reason.cls.${current.priority}` in CATALOGUE.zh
    ? i18n.t(`reason.cls.${current.priority}`)
    : priorityName(current.priority);
  const side = i18n.t(current.priority === "normal" ? "reason.side.normal" : "reason.side.priority");
  const group = groups.get(current.group)?.name ?? current.group;
  const ahead = i18n.t(n === 1 ? "reason.n.one" : "reason.n.other", { n });
  return i18n.t(key, { ahead, cls, side, group });
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text !== undefined) td.textContent = text;
  row.append(td);
  return td;
}

function drawWaiting(waiting, total) {
  const body = $("waiting-body");
  const rows = waiting.map((t) => {
    const tr = document.createElement("tr");
    tr.dataset.number = t.number;
    tr.dataset.priority = t.priority;
    tr.dataset.position = String(t.position);
    tr.classList.toggle("marked", isPriority(t.priority));
    const order = cell(tr, String(t.position + 1), "order");
    if (t.position === 0) {
      const next = document.createElement("span");
      next.className = "next-tag";
      next.textContent = i18n.t("next");
      order.append(" ", next);
    }
    cell(tr, t.number, "number");
    cell(tr, serviceName(t.service), "service");
    const b = document.createElement("span");
    b.className = "badge";
    badge(b, t.priority);
    cell(tr, undefined, "priority").append(b);
    cell(tr, hhmm(t.issued_at), "issued");
    const waited = cell(tr, "", "waited");
    waited.dataset.issued = t.issued_at;
    return tr;
  });
  body.replaceChildren(...rows);
  $("waiting-total").textContent = i18n.t("waiting_total", { n: total });
  $("waiting-empty").hidden = waiting.length > 0;
  const more = $("waiting-more");
  more.hidden = total <= waiting.length;
  more.textContent = i18n.t("more", { n: total - waiting.length });
}

// Once a second: the time at the window, and how long each has waited.
function tick() {
  const t = now();
  const current = view?.current;
  if (current?.called_at) {
    $("current-elapsed").textContent = stopwatch(t - Date.parse(current.called_at));
  }
  for (const td of $("waiting-body").querySelectorAll("td.waited")) {
    td.textContent = minutes(t - Date.parse(td.dataset.issued));
  }
}
setInterval(tick, 1000);

function showConn(state) {
  const conn = $("conn");
  conn.dataset.state = state;
  const label = conn.querySelector(".label");
  label.dataset.i18n = `conn.${state}`;
  label.textContent = i18n.t(`conn.${state}`);
}

// ---------------------------------------------------------------- actions

function newKey() {
  return `console-${config.window}-${crypto.randomUUID()}`;
}

// Send one window operation. While one is on its way, others are ignored
// (a double click is one intent); see SAME_INTENT_MS and UNANSWERED_KEEP_MS
// for when a key is reused.
async function act(action, body) {
  if (busy || !token) return;
  const sig = `${action} ${JSON.stringify(body ?? null)}`;
  const at = performance.now();
  const reuse =
    lastIntent &&
    lastIntent.sig === sig &&
    at - lastIntent.at < (lastIntent.answered ? SAME_INTENT_MS : UNANSWERED_KEEP_MS);
  const intent = reuse ? lastIntent : { sig, key: newKey(), at, answered: false };
  lastIntent = intent;
  busy = true;
  document.body.dataset.busy = "true";
  let answer = null;
  try {
    answer = await request("POST", `${config.window_path}/${action}`, {
      body,
      key: intent.key,
    });
    intent.answered = true;
  } catch {
    say("error", "err.network");
  } finally {
    busy = false;
    document.body.dataset.busy = "false";
  }
  if (answer) report(action, body, answer);
  refreshSoon(0);
  if (action === "park" || action === "resume" || action === "close") parkedSoon(0);
}

function report(action, body, { status, data }) {
  if (status === 204) {
    say("info", "err.nobody_waiting");
    return;
  }
  if (status >= 200 && status < 300) {
    if (["open", "pause", "close"].includes(action)) {
      say("ok", `ok.${action}`);
      render({ ...(view ?? { current: null, waiting: [], waiting_total: 0 }), window: data });
      return;
    }
    say("ok", `ok.${action}`, { number: data.number, service: serviceName(data.service) });
    if (action === "call" || action === "call-next") $("call-number").value = "";
    return;
  }
  if (status === 401) {
    signIn(token);
    return;
  }
  const code = data?.error?.code;
  if (status >= 500 && !code) {
    say("error", "err.server");
    return;
  }
  const number = body?.number ?? view?.current?.number ?? "";
  refusal(code, data?.error?.message, { number, limit: view?.recall_limit ?? "" });
}

for (const button of document.querySelectorAll("[data-action]")) {
  const action = button.dataset.action;
  if (action === "call") continue; // the form's submit
  button.addEventListener("click", () => {
    if (action === "transfer") openTransfer();
    else act(action);
  });
}

$("call-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const number = $("call-number").value.trim().toUpperCase();
  if (!number) {
    say("error", "err.empty_number");
    $("call-number").focus();
    return;
  }
  act("call", { number });
});

// --------------------------------------------------------------- transfer

const dialog = $("transfer-dialog");

function openTransfer() {
  const current = view?.current;
  if (!current) {
    say("error", "err.no_current_ticket");
    return;
  }
  fillTransfer(current);
  dialog.returnValue = "";
  dialog.showModal();
  $("transfer-service").focus();
}

function fillTransfer(current) {
  $("transfer-what").textContent = i18n.t("transfer_what", {
    number: current.number,
    service: serviceName(current.service),
  });
  const select = $("transfer-service");
  const chosen = select.value;
  const options = [];
  for (const g of config.groups) {
    const members = config.services.filter((s) => s.group === g.id && s.id !== current.service);
    if (!members.length) continue;
    const og = document.createElement("optgroup");
    og.label = g.name;
    for (const s of members) og.append(new Option(s.name, s.id));
    options.push(og);
  }
  select.replaceChildren(...options);
  if (chosen && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

dialog.addEventListener("close", () => {
  if (dialog.returnValue !== "ok") return;
  const service = $("transfer-service").value;
  if (service) act("transfer", { service });
});

// --------------------------------------------------------------- keyboard

const KEYS = { n: "call-next", r: "recall", s: "no-show", c: "complete", t: "transfer", p: "park" };

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || document.body.dataset.signedIn !== "true") return;
  if (dialog.open) return;
  const target = e.target instanceof Element ? e.target : null;
  if (target?.closest("input, select, textarea, [contenteditable]")) return;
  const key = e.key.toLowerCase();
  let action = KEYS[key];
  if (e.key === " ") {
    // Space on a focused button presses that button, as everywhere else.
    if (target?.closest("button, a[href], summary")) return;
    action = "call-next";
  }
  if (key === "f") {
    e.preventDefault();
    $("call-number").focus();
    return;
  }
  if (!action) return;
  e.preventDefault();
  if (e.repeat) return; // a held key is one press
  if (action === "recall" && recallsLeft() === 0) {
    say("error", "err.recall_limit", { number: view.current.number, limit: view.recall_limit });
    return;
  }
  if (action === "transfer") openTransfer();
  else act(action);
});

// --------------------------------------------------------------- language

function applyLanguage() {
  i18n.apply();
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.setAttribute("aria-pressed", String(b.dataset.lang === i18n.lang));
  }
  document.title = `${windowName} · ${i18n.t("console")} · ${config.hall.name}`;
  if (view) render(view);
  drawParked();
  if (view?.current && dialog.open) fillTransfer(view.current);
  showMessage();
  showSignin();
}

for (const b of document.querySelectorAll("[data-lang]")) {
  b.addEventListener("click", () => {
    i18n.lang = b.dataset.lang;
    applyLanguage();
  });
}

// ------------------------------------------------------------------ start

applyLanguage();
takeUrlToken(tokenKey);
const saved = store.get(tokenKey);
if (saved) signIn(saved);
else ask(null);

// For tests and the curious: the live link.
window.qmsConsole = { link };
