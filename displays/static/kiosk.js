// The ticket kiosk (取号机): pick a service (or the large-type elderly mode,
// or check in an appointment by code), get a number, take the printed slip;
// a visitor whose number was missed scans its QR code to queue again (我回来了).
// Where the hall has a gateway and the wait is long, a mobile number may be
// left on the way (短信提醒), never printed.
// Outside the hall's hours it says so, and when it issues again, in words.
// One kiosk serves a stream of strangers: every flow ends back on the start
// screen by itself, in Chinese, with nothing of the last visitor left.
import { readConfig, store } from "./connection.js";
import { I18n } from "./i18n.js";

const POLL_MS = 5_000; // waiting counts and estimates: public, cheap, and stale after a few seconds
const REQUEST_TIMEOUT_MS = 8_000;
const SERVICES_FRESH_MS = 1_200;
const TICKET_SHOWN_S = 20;
const IDLE_MS = 60_000; // a half-finished flow left alone this long is abandoned
// The second tap of a double tap can land after the ticket is already on
// screen; it must not dismiss the ticket the visitor has not seen yet.
const DISMISS_GUARD_MS = 1_500;
// A lost answer (network, 5xx) is retried with the same Idempotency-Key, so
// the server hands back the ticket it already made instead of a second one.
const RETRY_DELAYS_MS = [300, 1_000, 2_500];
const CODE_LENGTH = 8;
const CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
// A refused issue (409 hall_closed) closes the kiosk at once, though the
// /services it polls may be read up to a second before the hall closed.
const CLOSED_HINT_MS = 3_000;
const TICKET_ID = /^[A-Za-z0-9_-]{22}$/;

const CATALOGUE = {
  zh: {
    lang_switch: "English",
    offline: "网络连接中断，正在重试…",
    choose: "请选择办理事项",
    group_waiting: "等候 {n} 人",
    waiting: "等候 {n} 人",
    eta: "约 {m} 分钟",
    eta_unknown: "等候时间待定",
    elderly_button: "长者服务",
    elderly_sub: "大字 · 优先办理",
    checkin_button: "预约签到",
    checkin_sub: "输入预约码",
    elderly_title: "长者服务 · 优先办理",
    elderly_hint: "请点选要办的事",
    back: "返回",
    checkin_title: "预约签到",
    checkin_hint: "请输入 8 位预约码",
    code_label: "预约码",
    delete: "删除",
    clear: "清空",
    checkin_submit: "确认签到",
    ticket_done: "取号成功",
    checkin_done: "签到成功",
    your_number: "您的号码",
    ahead_none: "您是下一位",
    ahead: "您前面还有 {n} 人",
    ticket_eta: "预计等候约 {m} 分钟",
    ticket_eta_unknown: "窗口开放后开始叫号",
    issued_at: "取号时间 {time}",
    priority_elderly: "长者优先",
    priority_disabled: "助残优先",
    priority_appointment: "预约优先",
    qr_hint: "手机扫码，随时查看排队进度",
    qr_hint_print: "扫码查看排队进度，请留意叫号",
    print: "打印小票",
    done: "完成",
    countdown: "{s} 秒后返回首页，轻触屏幕立即返回",
    retry: "重试",
    busy: "正在办理，请稍候…",
    token_title: "取号机需要设置令牌",
    token_label: "请输入取号机令牌（由管理员提供）",
    ok: "确定",
    token_checking: "正在核对令牌…",
    "error.token_rejected": "令牌无效，请重新输入",
    "error.network": "网络连接失败，请稍后重试或联系工作人员",
    "error.server": "系统暂时繁忙，请稍后重试",
    "error.unauthorized": "取号机令牌已失效，请联系工作人员",
    "error.forbidden": "这台设备不能取号，请联系工作人员",
    "error.service_not_found": "该事项暂不办理，请咨询工作人员",
    "error.unknown_priority": "暂不提供这种优先取号，请咨询工作人员",
    "error.appointment_not_found": "没有找到这个预约码，请核对后重新输入",
    "error.already_checked_in": "这个预约已经签到过了，请留意叫号",
    "error.appointment_changed": "预约刚刚有变动，请再试一次",
    "error.hall_not_found": "没有这个大厅，请联系工作人员",
    "error.redis_unavailable": "系统暂时繁忙，请稍后重试",
    "error.rate_limited": "操作太频繁，请稍后再试",
    "error.service_full": "这个事项今天的号已经取完，请改日再来",
    service_full: "今日已取完",
    closed_title: "暂停取号",
    closed_sub: "取号时间以外不能取号，请在开始取号后再来。",
    closed_unknown: "现在不是取号时间。",
    rejoin_button: "我回来了",
    rejoin_sub: "过号后扫码排队",
    rejoin_title: "过号重新排队",
    rejoin_hint: "请把号票上的二维码对准扫码口",
    rejoin_label: "号票二维码（扫码后自动填入）",
    rejoin_submit: "重新排队",
    rejoin_rule: "叫号时不在窗口（过号）的，{m} 分钟内可以回来重新排队一次，号码不变。",
    rejoin_done: "已重新排队，号码不变",
    "rejoin.unreadable": "没有识别出号票二维码，请再扫一次",
    "rejoin.other_hall": "这张号票不是本大厅的，请到取号的大厅办理",
    "rejoin.waiting": "{number} 号正在排队，不用重新排队，请留意叫号",
    "rejoin.called": "{number} 号已被叫到，请直接到窗口办理",
    "rejoin.late": "{number} 号已超过过号后 {m} 分钟，或已经回来过一次，不能再排队；请重新取号",
    "rejoin.over": "{number} 号已办结或已作废，不能再排队；如需办理请重新取号",
    "error.late_return_closed": "这个号不能重新排队；如需办理请重新取号",
    "error.ticket_not_found": "没有找到这张号票，请核对后再扫一次",
    "error.invalid_field": "没有识别出号票二维码，请再扫一次",
    idcard_button: "刷身份证 / 输入身份证号",
    idcard_sub: "按身份证上的年龄优先办理",
    idcard_title: "刷身份证 / 输入身份证号",
    idcard_hint: "请把身份证放在读卡器上，或输入 18 位身份证号",
    idcard_label: "居民身份证号码",
    idcard_submit: "确定",
    idcard_held: "已读取身份证，请点选要办的事",
    "id.old_format": "15 位的旧身份证号码不能使用，请使用 18 位居民身份证号码",
    "id.length": "身份证号码应为 18 位，请核对后重新输入",
    "id.characters": "身份证号码由 17 位数字和最后一位数字或 X 组成，请核对后重新输入",
    "id.check_digit": "身份证号码有误，请核对后重新输入",
    "id.birth_date": "身份证号码中的出生日期不正确，请核对后重新输入",
    "error.bad_id_number": "身份证号码有误，请核对后重新输入",
    "error.already_waiting": "这个身份证号已经取了 {number} 号，请留意叫号；每人同时只能持有一个号",
    notify_title: "留下手机号，快到时短信提醒您",
    notify_label: "手机号码（选填）",
    notify_hint: "只用于这次提醒，不会打印在号票上",
    notify_wait: "「{service}」现在约需等候 {m} 分钟",
    notify_wait_unknown: "「{service}」还没有开放的窗口，等候时间待定",
    notify_skip: "不用了，直接取号",
    notify_submit: "短信提醒我，取号",
    ticket_notify: "快到您和叫到您时，会发短信提醒您",
    "phone.length": "手机号码应为 11 位，请核对后重新输入",
    "phone.bad": "这不是手机号码（应以 13–19 开头），请核对后重新输入",
    "error.invalid_phone": "这不是手机号码，请核对后重新输入",
    "error.invalid_notify": "这不是手机号码，请核对后重新输入",
    "error.notify_not_offered": "本大厅暂不提供短信提醒，请点“不用了，直接取号”",
  },
  en: {
    lang_switch: "中文",
    offline: "Connection lost, retrying…",
    choose: "Choose a service",
    group_waiting: "{n} waiting",
    waiting: "{n} waiting",
    eta: "about {m} min",
    eta_unknown: "wait not known yet",
    elderly_button: "Seniors",
    elderly_sub: "Large type · priority",
    checkin_button: "Appointment check-in",
    checkin_sub: "Enter your code",
    elderly_title: "Seniors · priority service",
    elderly_hint: "Tap what you came for",
    back: "Back",
    checkin_title: "Appointment check-in",
    checkin_hint: "Enter your 8-character appointment code",
    code_label: "Appointment code",
    delete: "Delete",
    clear: "Clear",
    checkin_submit: "Check in",
    ticket_done: "Here is your number",
    checkin_done: "You are checked in",
    your_number: "Your number",
    ahead_none: "You are next",
    ahead: "{n} ahead of you",
    ticket_eta: "About {m} min wait",
    ticket_eta_unknown: "Calling starts when a window opens",
    issued_at: "Issued {time}",
    priority_elderly: "Senior priority",
    priority_disabled: "Disability priority",
    priority_appointment: "Appointment priority",
    qr_hint: "Scan to follow your place in the queue",
    qr_hint_print: "Scan to follow your place; listen for your number",
    print: "Print slip",
    done: "Done",
    countdown: "Back to start in {s} s; tap anywhere to go now",
    retry: "Try again",
    busy: "One moment…",
    token_title: "This kiosk needs its token",
    token_label: "Kiosk token (from the administrator)",
    ok: "OK",
    token_checking: "Checking the token…",
    "error.token_rejected": "Token rejected, please enter it again",
    "error.network": "No connection; try again or ask the staff",
    "error.server": "The system is busy; please try again shortly",
    "error.unauthorized": "This kiosk's token is no longer valid; please ask the staff",
    "error.forbidden": "This device may not issue tickets; please ask the staff",
    "error.service_not_found": "This service is not offered; please ask the staff",
    "error.unknown_priority": "This priority is not offered; please ask the staff",
    "error.appointment_not_found": "No appointment has this code; please check it",
    "error.already_checked_in": "This appointment is already checked in",
    "error.appointment_changed": "The appointment just changed; please try again",
    "error.hall_not_found": "No such hall; please ask the staff",
    "error.redis_unavailable": "The system is busy; please try again shortly",
    "error.rate_limited": "Too many tries; please wait a moment",
    "error.service_full": "Today's tickets for this service are all taken; please come back another day",
    service_full: "All taken today",
    closed_title: "Not issuing tickets",
    closed_sub: "Tickets are issued during opening hours only; please come back then.",
    closed_unknown: "The hall is not issuing tickets now.",
    rejoin_button: "I'm back",
    rejoin_sub: "Missed a call? Scan",
    rejoin_title: "Rejoin the queue",
    rejoin_hint: "Hold your ticket's QR code to the scanner",
    rejoin_label: "Ticket QR code (filled in by the scanner)",
    rejoin_submit: "Rejoin",
    rejoin_rule: "Missed your call? Within {m} min you may rejoin once, with the same number.",
    rejoin_done: "Back in the queue, same number",
    "rejoin.unreadable": "That is not a ticket's QR code; please scan again",
    "rejoin.other_hall": "This ticket is from another hall",
    "rejoin.waiting": "{number} is waiting already; listen for your number",
    "rejoin.called": "{number} has been called; please go to the window",
    "rejoin.late": "{number} missed its call over {m} min ago, or has rejoined once already; please take a new ticket",
    "rejoin.over": "{number} is done or no longer valid; please take a new ticket",
    "error.late_return_closed": "This ticket cannot rejoin the queue; please take a new ticket",
    "error.ticket_not_found": "No such ticket; please scan again",
    "error.invalid_field": "That is not a ticket's QR code; please scan again",
    idcard_button: "Swipe ID card / enter ID number",
    idcard_sub: "Priority by the age on your ID card",
    idcard_title: "Swipe ID card / enter ID number",
    idcard_hint: "Place your ID card on the reader, or type its 18-character number",
    idcard_label: "Resident identity number",
    idcard_submit: "OK",
    idcard_held: "ID card read; tap what you came for",
    "id.old_format": "The old 15-digit ID number is not accepted; use the 18-character number",
    "id.length": "An ID number has 18 characters; please check it",
    "id.characters": "An ID number is 17 digits and a last digit or X; please check it",
    "id.check_digit": "This ID number is not right; please check it",
    "id.birth_date": "The birth date in this ID number is not right; please check it",
    "error.bad_id_number": "This ID number is not right; please check it",
    "error.already_waiting": "This ID number already holds ticket {number}; one ticket per person at a time",
    notify_title: "Text me when my turn nears",
    notify_label: "Mobile number (optional)",
    notify_hint: "Used for this reminder only, never printed on the ticket",
    notify_wait: "“{service}”: about {m} min wait now",
    notify_wait_unknown: "“{service}”: no window open yet, wait not known",
    notify_skip: "No thanks, just the ticket",
    notify_submit: "Text me, take a ticket",
    ticket_notify: "We will text you when your turn nears and when you are called",
    "phone.length": "A mobile number has 11 digits; please check it",
    "phone.bad": "That is not a mobile number (it starts 13–19); please check it",
    "error.invalid_phone": "That is not a mobile number; please check it",
    "error.invalid_notify": "That is not a mobile number; please check it",
    "error.notify_not_offered": "Text reminders are not offered here now; tap “No thanks”",
  },
};

const config = readConfig();
const i18n = new I18n(CATALOGUE);
const $ = (id) => document.getElementById(id);
const body = document.body;
const screens = {
  start: $("screen-start"),
  elderly: $("screen-elderly"),
  idcard: $("screen-idcard"),
  notify: $("screen-notify"),
  checkin: $("screen-checkin"),
  rejoin: $("screen-rejoin"),
  ticket: $("screen-ticket"),
};
const serviceNames = new Map(config.services.map((s) => [s.id, s.name]));
const timeFormat = new Intl.DateTimeFormat("zh-CN", {
  timeZone: config.hall.timezone,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});
const clockFormat = new Intl.DateTimeFormat("zh-CN", {
  timeZone: config.hall.timezone,
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

// Exposed for tests and for a technician at the kiosk's devtools.
const kiosk = {
  services: null, // the last GET /services body
  ticket: null, // the ticket on screen
  requests: [], // {kind, key} of every issue/check-in/rejoin request sent
  closed: false, // the hall issues no tickets now: the start screen says so
};
window.qmsKiosk = kiosk;

// ------------------------------------------------------------ settings

const key = (kind) => `qms.${kind}.${config.hall.id}.kiosk`;
const TOKEN_KEY = key("token");
const PRINT_KEY = key("print");
const PAPER_KEY = key("paper");

// `?token=`, `?print=auto|off`, `?paper=58|80` are taken once: kept in
// storage, dropped from the address bar so the token is not left on
// screen, in history or in a bookmark.
function takeUrlParams() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token) store.set(TOKEN_KEY, token);
  const print = url.searchParams.get("print");
  if (print === "auto") store.set(PRINT_KEY, "auto");
  else if (print === "off") store.remove(PRINT_KEY);
  const paper = url.searchParams.get("paper");
  if (paper === "58" || paper === "80") store.set(PAPER_KEY, paper);
  for (const name of ["token", "print", "paper"]) url.searchParams.delete(name);
  if (url.href !== location.href) history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

takeUrlParams();
let token = store.get(TOKEN_KEY);
$("receipt").dataset.paper = store.get(PAPER_KEY) ?? "80";

// -------------------------------------------------------------- helpers

function errorText(code, message) {
  const k = `error.${code}`;
  const text = i18n.t(k);
  return text === k ? message || i18n.t("error.server") : text;
}

function minutes(seconds) {
  return Math.max(1, Math.round(seconds / 60));
}

function newKey() {
  return `kiosk-${crypto.randomUUID()}`;
}

async function api(path, { method = "GET", headers = {}, json } = {}) {
  const init = { method, headers: { ...headers }, cache: "no-store", signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    /* an empty or non-JSON answer (a proxy's error page) */
  }
  return { status: response.status, data };
}

const authHeaders = () => ({ Authorization: `Bearer ${token}` });

// --------------------------------------------------------------- screens

let current = "start";

function show(name) {
  current = name;
  for (const [id, el] of Object.entries(screens)) el.hidden = id !== name;
  body.dataset.screen = name;
  hideFailure();
  armIdle();
  const first = screens[name].querySelector("button:not([disabled])");
  if (name !== "start" && first) first.focus({ preventScroll: true });
}

// The end of one visitor's turn: nothing of theirs stays on screen.
function home() {
  clearTimeout(countdownTimer);
  if (pending) pending.idNumber = pending.phone = null;
  pending = null;
  kiosk.ticket = null;
  code = "";
  renderCode();
  $("checkin-error").hidden = true;
  $("rejoin-input").value = "";
  $("rejoin-error").hidden = true;
  forgetId();
  forgetPhone();
  notifyFor = null;
  body.classList.remove("elderly-mode");
  show("start");
  if (i18n.lang !== "zh") setLang("zh");
  window.scrollTo(0, 0);
}

let idleTimer = null;
function armIdle() {
  clearTimeout(idleTimer);
  if (["elderly", "idcard", "notify", "checkin", "rejoin"].includes(current)) idleTimer = setTimeout(home, IDLE_MS);
  else if (current === "start" && i18n.lang !== "zh") idleTimer = setTimeout(() => setLang("zh"), IDLE_MS);
}
for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, armIdle, true);

function setLang(lang) {
  i18n.lang = lang;
  renderAll();
}

function renderAll() {
  $("lang").lang = i18n.lang === "zh" ? "en" : "zh-CN";
  renderServices();
  if (kiosk.ticket) renderTicket(kiosk.ticket);
  renderCountdown();
  renderNotifyWait();
  $("rejoin-rule").textContent = i18n.t("rejoin_rule", { m: config.late_return_minutes });
}

$("lang").addEventListener("click", () => setLang(i18n.lang === "zh" ? "en" : "zh"));

function tick() {
  $("clock").textContent = clockFormat.format(new Date());
}
tick();
setInterval(tick, 10_000);

// ------------------------------------------------------ services (poll)

function renderServices() {
  const data = kiosk.services;
  if (!data) return;
  const waitingByGroup = new Map(data.groups.map((g) => [g.id, g.waiting]));
  for (const section of document.querySelectorAll(".group[data-group]")) {
    const n = waitingByGroup.get(section.dataset.group);
    section.querySelector(".group-waiting").textContent = n === undefined ? "" : i18n.t("group_waiting", { n });
  }
  const byId = new Map(data.services.map((s) => [s.id, s]));
  for (const button of screens.start.querySelectorAll("button.service")) {
    const s = byId.get(button.dataset.service);
    if (!s) continue;
    button.querySelector(".waiting").textContent = i18n.t("waiting", { n: s.waiting });
    button.querySelector(".eta").textContent =
      s.left === 0
        ? i18n.t("service_full")
        : s.eta_seconds === null
          ? i18n.t("eta_unknown")
          : i18n.t("eta", { m: minutes(s.eta_seconds) });
  }
  // A service whose numbers for the day are all taken (its daily_cap) cannot
  // be pressed, on either screen; while a request runs, setBusy holds every
  // button and restores this state afterwards.
  for (const button of document.querySelectorAll("button.service")) {
    const full = byId.get(button.dataset.service)?.left === 0;
    button.classList.toggle("full", full);
    if (busy) button.dataset.wasDisabled = full ? "1" : "";
    else button.disabled = full;
  }
  // The elderly mode is offered only where the hall gives elderly a priority.
  const elderly = data.priorities.includes("elderly");
  renderHours(data);
  $("go-elderly").hidden = !elderly || kiosk.closed;
  if ((!elderly || kiosk.closed) && current === "elderly") home();
  if (kiosk.closed && (current === "checkin" || current === "notify")) home();
}

// Outside the hours the start screen says when tickets are issued again
// (the server's sentence, in both languages) instead of offering services.
// A missed ticket may still come back while the hall calls (its span runs
// on after the kiosk stops issuing), so 我回来了 stays until then.
let closedHint = null; // {message, until}: a 409 hall_closed the poll has not caught up with

function renderHours(data) {
  const hinted = closedHint !== null && performance.now() < closedHint.until;
  if (!hinted) closedHint = null;
  const hours = data.hours ?? { open: data.open, in_span: data.open, message: null };
  const closed = data.open === false || hinted;
  kiosk.closed = closed;
  body.dataset.hall = closed ? "closed" : "open";
  $("closed").hidden = !closed;
  $("choose").hidden = closed;
  $("groups").hidden = closed;
  $("go-checkin").hidden = closed;
  const calling = !closed || (hours.in_span === true && !hours.closed_by_manager);
  $("go-rejoin").hidden = !(config.late_return_minutes > 0 && calling);
  if (!closed) return;
  const said = data.open === false ? hours.message : null;
  $("closed-message").textContent =
    said?.[i18n.lang] ?? said?.zh ?? closedHint?.message ?? i18n.t("closed_unknown");
}

function closeNow(message) {
  closedHint = { message: message || "", until: performance.now() + CLOSED_HINT_MS };
  home();
  if (kiosk.services) renderServices();
  else renderHours({});
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, SERVICES_FRESH_MS);
}

let pollTimer = null;
async function poll() {
  clearTimeout(pollTimer);
  try {
    // With the kiosk's token: a hall's kiosks poll here, and their pace is
    // never counted against the public allowance of their shared address.
    const { status, data } = await api(config.services_path, { headers: token ? authHeaders() : {} });
    if (status !== 200 || !data) throw new Error(`services: ${status}`);
    kiosk.services = data;
    $("offline").hidden = true;
    renderServices();
  } catch {
    $("offline").hidden = false;
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

// ------------------------------------------------------ issue and check in

// One tap-intent: what was asked, with the key its retries reuse. Tapping
// the same thing again after a failure is a retry of the same intent.
let pending = null;
let busy = false;

function setBusy(on) {
  busy = on;
  $("busy").hidden = !on;
  for (const b of document.querySelectorAll("button.service, #checkin-submit, .key, .key-wide, .back, .action")) {
    if (on) {
      b.dataset.wasDisabled = b.disabled ? "1" : "";
      b.disabled = true;
    } else {
      b.disabled = b.dataset.wasDisabled === "1";
      delete b.dataset.wasDisabled;
    }
  }
  if (!on) renderCode();
}

function intentFor(kind, target, priority, idNumber = null, phone = null) {
  if (
    pending &&
    pending.kind === kind &&
    pending.target === target &&
    pending.priority === priority &&
    pending.idNumber === idNumber &&
    pending.phone === phone
  ) {
    return pending;
  }
  pending = { kind, target, priority, idNumber, phone, key: newKey() };
  return pending;
}

function request(intent) {
  const headers = { ...authHeaders(), "Idempotency-Key": intent.key };
  kiosk.requests.push({ kind: intent.kind, key: intent.key });
  if (intent.kind === "checkin") {
    return api(`${config.appointments_path}/${encodeURIComponent(intent.target)}/check-in`, {
      method: "POST",
      headers,
    });
  }
  if (intent.kind === "rejoin") {
    return api(`${config.tickets_path}/${encodeURIComponent(intent.target)}/rejoin`, {
      method: "POST",
      headers,
    });
  }
  const json = { service: intent.target };
  if (intent.priority !== "normal") json.priority = intent.priority;
  if (intent.idNumber) json.id_number = intent.idNumber;
  if (intent.phone) json.notify = { phone: intent.phone };
  return api(config.tickets_path, { method: "POST", headers, json });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function send(intent) {
  if (busy) return;
  setBusy(true);
  let outcome = null;
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const { status, data } = await request(intent);
        if (status < 500) {
          outcome = { status, data };
          break;
        }
      } catch {
        /* no answer: the request may or may not have been done */
      }
      if (attempt >= RETRY_DELAYS_MS.length) break;
      await sleep(RETRY_DELAYS_MS[attempt]);
    }
  } finally {
    setBusy(false);
  }
  if (pending !== intent) {
    intent.idNumber = intent.phone = null;
    return; // abandoned meanwhile (the kiosk went home)
  }
  if (outcome === null) {
    // No answer: a retry must send the same request (the same key, the same
    // identity number), so the number stays in this intent until the
    // visitor retries or leaves the failure.
    showFailure(i18n.t("error.network"), intent);
    return;
  }
  // Answered: the identity number has done its work and is forgotten.
  if (intent.idNumber) {
    intent.idNumber = null;
    forgetId();
  }
  // So has the mobile number (the server keeps it apart, until the ticket ends).
  intent.phone = null;
  forgetPhone();
  const { status, data } = outcome;
  if (intent.kind === "rejoin") {
    pending = null;
    rejoined(intent.target, status, data);
    return;
  }
  if (status === 201 && data) {
    pending = null;
    showTicket(data, intent.kind);
    // The next visitor should see this ticket counted; /services may be
    // served from a read up to a second old, so ask once that has passed.
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, SERVICES_FRESH_MS);
    return;
  }
  // A refused request stored nothing: the next tap may start afresh.
  pending = null;
  const code = data?.error?.code ?? "";
  if (status === 401 || status === 403) {
    askToken(code === "unauthorized" ? "error.unauthorized" : "error.forbidden");
    return;
  }
  if (code === "hall_closed") {
    closeNow(data?.error?.message);
    return;
  }
  if (code === "service_full") {
    // Shown as taken at once, not only after the next poll.
    const s = kiosk.services?.services.find((x) => x.id === data.error.service);
    if (s) {
      s.left = 0;
      renderServices();
    }
  }
  if (code === "already_waiting") {
    showFailure(i18n.t("error.already_waiting", { number: data.error.number ?? "" }), null);
    return;
  }
  const reason = code === "bad_id_number" ? `id.${data?.error?.reason}` : "";
  const text = reason && i18n.t(reason) !== reason ? i18n.t(reason) : errorText(code, data?.error?.message);
  if (intent.kind === "checkin") {
    const error = $("checkin-error");
    error.textContent = text;
    error.hidden = false;
  } else {
    showFailure(text, null);
  }
}

function issue(service, priority) {
  if (busy || !token) return;
  // With an identity number read, its birth date decides the class (the
  // server's rule): the ticket is elderly when the holder is old enough.
  const idNumber = heldId !== null && current === "elderly" ? heldId : null;
  const cls = idNumber === null ? priority : "normal";
  if (asksForPhone(service)) openNotify(service, cls, idNumber);
  else send(intentFor("issue", service, cls, idNumber));
}

for (const button of document.querySelectorAll("button.service")) {
  // send() disables every button before its first await, so the second
  // tap of a double tap finds them all off.
  button.addEventListener("click", () => issue(button.dataset.service, button.dataset.priority ?? "normal"));
}

let failedIntent = null;
function showFailure(text, retryable) {
  failedIntent = retryable;
  $("failure-text").textContent = text;
  $("failure-retry").hidden = retryable === null;
  $("failure").hidden = false;
  (retryable ? $("failure-retry") : $("failure-close")).focus();
}
function hideFailure() {
  $("failure").hidden = true;
  failedIntent = null;
}
$("failure-retry").addEventListener("click", () => {
  const intent = failedIntent;
  hideFailure();
  if (intent && pending === intent) send(intent);
});
$("failure-close").addEventListener("click", () => {
  hideFailure();
  if (pending?.idNumber) {
    pending.idNumber = null;
    forgetId();
  }
  if (pending) pending.phone = null;
  pending = null;
});

// ------------------------------------------------------------- elderly

$("go-elderly").addEventListener("click", () => {
  body.classList.add("elderly-mode");
  show("elderly");
});
for (const back of document.querySelectorAll(".back:not(#id-back):not(#notify-back)")) {
  back.addEventListener("click", home);
}

// ----------------------------------------------------- identity number

// A resident identity number (GB 11643) as the server checks it: the kiosk
// says what is wrong at once, before anything is sent. Returns
// {number} or {problem} (the server's `reason` words).
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = "10X98765432";
const hallDay = new Intl.DateTimeFormat("en-CA", {
  timeZone: config.hall.timezone,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
});

export function checkIdNumber(text, today = hallDay.format(new Date()).replaceAll("-", "")) {
  const number = text.normalize("NFKC").replace(/[\s-]/g, "").toUpperCase();
  if (/^[0-9]{15}$/.test(number)) return { problem: "old_format" };
  if (number.length !== 18) return { problem: "length" };
  if (!/^[0-9]{17}[0-9X]$/.test(number)) return { problem: "characters" };
  let sum = 0;
  for (let i = 0; i < 17; i += 1) sum += Number(number[i]) * ID_WEIGHTS[i];
  if (ID_CHECK[sum % 11] !== number[17]) return { problem: "check_digit" };
  const birth = number.slice(6, 14);
  const [y, m, d] = [Number(birth.slice(0, 4)), Number(birth.slice(4, 6)), Number(birth.slice(6))];
  const day = new Date(Date.UTC(y, m - 1, d));
  const real = day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
  if (!real || y < 1800 || birth > today) return { problem: "birth_date" };
  return { number };
}

// The number read, held in memory only until the ticket request is
// answered (or the visitor leaves): never in storage, never on screen.
let heldId = null;

function forgetId() {
  heldId = null;
  $("id-input").value = "";
  $("id-error").hidden = true;
  $("id-held").hidden = true;
  screens.elderly.classList.remove("holding-id");
}

function idError(problem) {
  const error = $("id-error");
  error.textContent = i18n.t(`id.${problem}`);
  error.hidden = false;
  $("id-input").value = "";
  if (current === "idcard") $("id-input").focus({ preventScroll: true });
}

function typeId(c) {
  const input = $("id-input");
  if (busy || input.value.length >= 18) return;
  input.value += c;
  $("id-error").hidden = true;
}

function submitId() {
  const input = $("id-input");
  const found = checkIdNumber(input.value);
  input.value = ""; // out of the DOM at once, valid or not
  if (found.problem) {
    idError(found.problem);
    return;
  }
  heldId = found.number;
  show("elderly");
  $("id-held").hidden = false;
  screens.elderly.classList.add("holding-id");
}

function openIdCard() {
  forgetId();
  show("idcard");
  $("id-input").focus({ preventScroll: true });
}

$("go-idcard").addEventListener("click", openIdCard);
$("id-back").addEventListener("click", () => {
  forgetId();
  show("elderly");
});
$("id-keypad").addEventListener("click", (e) => {
  const k = e.target.closest("button[data-idkey]");
  if (k) typeId(k.dataset.idkey);
  else if (e.target.closest("#id-delete")) $("id-input").value = $("id-input").value.slice(0, -1);
});
$("id-clear").addEventListener("click", () => {
  $("id-input").value = "";
  $("id-error").hidden = true;
});
$("id-input").addEventListener("input", () => {
  const input = $("id-input");
  const cleaned = input.value.toUpperCase().replace(/[^0-9X]/g, "").slice(0, 18);
  if (cleaned !== input.value) input.value = cleaned;
  $("id-error").hidden = true;
});
$("id-form").addEventListener("submit", (e) => {
  e.preventDefault();
  submitId();
});
// A card reader types the number and Enter wherever the focus is: on the
// identity screen into its field, and from the elderly screen it opens it.
document.addEventListener(
  "keydown",
  (e) => {
    if (e.ctrlKey || e.altKey || e.metaKey || busy) return;
    if (current === "elderly" && /^[0-9]$/.test(e.key)) openIdCard();
    if (current !== "idcard") return;
    const input = $("id-input");
    if (e.target !== input && (e.key.length === 1 || e.key === "Enter")) input.focus({ preventScroll: true });
  },
  true,
);

// ------------------------------------------------------ 短信提醒 (notify)

// Offered between the service and the ticket when the hall has a gateway and
// the wait for that service (the last /services poll) is at least the hall's
// `kiosk_ask_minutes`, or not known yet (no window of it open).
const MOBILE = /^1[3-9][0-9]{9}$/;
let notifyFor = null; // {service, priority, idNumber, from}: the choice the step waits on

function asksForPhone(serviceId) {
  const offer = kiosk.services?.notify;
  if (!offer?.enabled) return false;
  const service = kiosk.services.services.find((s) => s.id === serviceId);
  if (!service) return false;
  return service.eta_seconds === null || service.eta_seconds >= offer.kiosk_ask_minutes * 60;
}

function phoneDigits() {
  return $("notify-input").value.replace(/[^0-9]/g, "").slice(0, 11);
}

// 139 1234 5678: easier to check at a glance.
function showPhone(digits) {
  const grouped = [digits.slice(0, 3), digits.slice(3, 7), digits.slice(7)].filter(Boolean).join(" ");
  $("notify-input").value = grouped;
  $("notify-error").hidden = true;
}

function forgetPhone() {
  $("notify-input").value = "";
  $("notify-error").hidden = true;
}

function openNotify(service, priority, idNumber) {
  const s = kiosk.services.services.find((x) => x.id === service);
  notifyFor = { service, priority, idNumber, from: current, eta: s.eta_seconds };
  forgetPhone();
  renderNotifyWait();
  show("notify");
  $("notify-input").focus({ preventScroll: true });
}

function renderNotifyWait() {
  if (!notifyFor) return;
  const name = serviceNames.get(notifyFor.service) ?? notifyFor.service;
  $("notify-wait").textContent =
    notifyFor.eta === null
      ? i18n.t("notify_wait_unknown", { service: name })
      : i18n.t("notify_wait", { service: name, m: minutes(notifyFor.eta) });
}

function typePhone(c) {
  if (busy) return;
  const digits = phoneDigits();
  if (digits.length < 11) showPhone(digits + c);
}

function submitPhone() {
  if (busy || !notifyFor) return;
  const digits = phoneDigits();
  if (!MOBILE.test(digits)) {
    const error = $("notify-error");
    error.textContent = i18n.t(digits.length === 11 ? "phone.bad" : "phone.length");
    error.hidden = false;
    return;
  }
  $("notify-input").value = ""; // out of the DOM at once; the intent holds it until answered
  const { service, priority, idNumber } = notifyFor;
  send(intentFor("issue", service, priority, idNumber, digits));
}

function skipPhone() {
  if (busy || !notifyFor) return;
  forgetPhone();
  const { service, priority, idNumber } = notifyFor;
  send(intentFor("issue", service, priority, idNumber));
}

$("notify-keypad").addEventListener("click", (e) => {
  const k = e.target.closest("button[data-phonekey]");
  if (k) typePhone(k.dataset.phonekey);
  else if (e.target.closest("#notify-delete")) showPhone(phoneDigits().slice(0, -1));
  else if (e.target.closest("#notify-clear")) forgetPhone();
});
$("notify-input").addEventListener("input", () => showPhone(phoneDigits()));
$("notify-form").addEventListener("submit", (e) => {
  e.preventDefault();
  submitPhone();
});
$("notify-skip").addEventListener("click", skipPhone);
$("notify-back").addEventListener("click", () => {
  const from = notifyFor?.from ?? "start";
  forgetPhone();
  notifyFor = null;
  show(from); // the elderly screen keeps an identity number read
});
// A keyboard (a technician's, a USB keypad) types into the field.
document.addEventListener(
  "keydown",
  (e) => {
    if (current !== "notify" || e.ctrlKey || e.altKey || e.metaKey || busy) return;
    const input = $("notify-input");
    if (e.target !== input && (/^[0-9]$/.test(e.key) || e.key === "Enter")) input.focus({ preventScroll: true });
  },
  true,
);

// ------------------------------------------------------------- check-in

let code = "";

function renderCode() {
  const cells = $("code").children;
  for (let i = 0; i < cells.length; i += 1) {
    cells[i].textContent = code[i] ?? "";
    cells[i].classList.toggle("filled", i < code.length);
    cells[i].classList.toggle("next", i === code.length);
  }
  $("code").dataset.code = code;
  if (!busy) {
    $("checkin-submit").disabled = code.length !== CODE_LENGTH;
    $("key-delete").disabled = code.length === 0;
    $("key-clear").disabled = code.length === 0;
    for (const k of $("keypad").children) k.disabled = code.length >= CODE_LENGTH;
  }
}

function typeKey(c) {
  if (busy || code.length >= CODE_LENGTH || !CODE_ALPHABET.includes(c)) return;
  code += c;
  $("checkin-error").hidden = true;
  renderCode();
}

function erase(all) {
  if (busy) return;
  code = all ? "" : code.slice(0, -1);
  $("checkin-error").hidden = true;
  renderCode();
}

function submitCode() {
  if (busy || code.length !== CODE_LENGTH || !token) return;
  send(intentFor("checkin", code, "appointment"));
}

$("go-checkin").addEventListener("click", () => {
  code = "";
  renderCode();
  show("checkin");
});
$("keypad").addEventListener("click", (e) => {
  const k = e.target.closest("button[data-key]");
  if (k) typeKey(k.dataset.key);
});
$("key-delete").addEventListener("click", () => erase(false));
$("key-clear").addEventListener("click", () => erase(true));
$("checkin-submit").addEventListener("click", submitCode);
// A code scanner that types like a keyboard works too.
document.addEventListener("keydown", (e) => {
  if (current !== "checkin" || e.ctrlKey || e.altKey || e.metaKey) return;
  if (e.key === "Backspace") erase(false);
  else if (e.key === "Enter" && code.length === CODE_LENGTH) submitCode();
  else if (e.key.length === 1 && CODE_ALPHABET.includes(e.key.toUpperCase())) typeKey(e.key.toUpperCase());
  else return;
  e.preventDefault();
});

// --------------------------------------------------------------- rejoin

// What the scanner typed: the visitor page's URL printed as the ticket's QR
// code (…/halls/{hall}/tickets/{id}), or the bare id.
export function ticketIdFrom(text, hallId) {
  const scanned = text.trim();
  if (TICKET_ID.test(scanned)) return { id: scanned };
  let path = scanned;
  try {
    path = new URL(scanned).pathname;
  } catch {
    /* not an absolute URL: a path, perhaps */
  }
  const m = /\/halls\/([^/?#]+)\/tickets\/([A-Za-z0-9_-]{22})\/?(?:[?#].*)?$/.exec(path);
  if (!m) return { error: "rejoin.unreadable" };
  let hall = m[1];
  try {
    hall = decodeURIComponent(hall);
  } catch {
    /* left as it is */
  }
  return hall === hallId ? { id: m[2] } : { error: "rejoin.other_hall" };
}

function rejoinError(text) {
  const error = $("rejoin-error");
  error.textContent = text;
  error.hidden = false;
  $("rejoin-input").value = "";
  if (current === "rejoin") $("rejoin-input").focus({ preventScroll: true });
}

function submitRejoin() {
  if (busy || !token) return;
  const found = ticketIdFrom($("rejoin-input").value, config.hall.id);
  if (found.error) {
    rejoinError(i18n.t(found.error));
    return;
  }
  $("rejoin-error").hidden = true;
  send(intentFor("rejoin", found.id, "normal"));
}

async function rejoined(id, status, data) {
  if (status === 200 && data) {
    showTicket(data, "rejoin");
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, SERVICES_FRESH_MS);
    return;
  }
  const code = data?.error?.code ?? "";
  if (status === 401 || status === 403) {
    askToken(code === "unauthorized" ? "error.unauthorized" : "error.forbidden");
    return;
  }
  if (code === "late_return_closed") {
    rejoinError(await whyNot(id));
    return;
  }
  if (code === "hall_closed") {
    // The server's sentence names the next opening (in the hall's language);
    // the last /services has it in the language on screen.
    const said = kiosk.services?.open === false ? kiosk.services.hours?.message : null;
    rejoinError(said?.[i18n.lang] ?? data?.error?.message ?? i18n.t("closed_unknown"));
    return;
  }
  rejoinError(errorText(code, data?.error?.message));
}

// Why a ticket may not rejoin, from what it is now.
async function whyNot(id) {
  let ticket = null;
  try {
    const { status, data } = await api(`${config.tickets_path}/${encodeURIComponent(id)}`);
    if (status === 200) ticket = data;
  } catch {
    /* said in general terms */
  }
  if (!ticket) return i18n.t("error.late_return_closed");
  const vars = { number: ticket.number, m: config.late_return_minutes };
  if (ticket.status === "waiting") return i18n.t("rejoin.waiting", vars);
  if (ticket.status === "called") return i18n.t("rejoin.called", vars);
  if (ticket.status === "no_show") return i18n.t("rejoin.late", vars);
  return i18n.t("rejoin.over", vars);
}

$("go-rejoin").addEventListener("click", () => {
  $("rejoin-input").value = "";
  $("rejoin-error").hidden = true;
  show("rejoin");
  $("rejoin-input").focus({ preventScroll: true });
});
$("rejoin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  submitRejoin();
});
// A scanner types wherever the focus is: on this screen, into the field.
document.addEventListener(
  "keydown",
  (e) => {
    if (current !== "rejoin" || e.ctrlKey || e.altKey || e.metaKey) return;
    const input = $("rejoin-input");
    if (e.target !== input && (e.key.length === 1 || e.key === "Enter")) input.focus({ preventScroll: true });
  },
  true,
);

// --------------------------------------------------------------- ticket

let countdownTimer = null;
let countdownLeft = 0;
let shownAt = 0;

function priorityText(priority) {
  const k = `priority_${priority}`;
  const text = i18n.t(k);
  return text === k ? "" : text;
}

function renderTicket(t) {
  const service = serviceNames.get(t.service) ?? t.service;
  const ahead = t.position === null ? "" : t.position === 0 ? i18n.t("ahead_none") : i18n.t("ahead", { n: t.position });
  const time = i18n.t("issued_at", { time: timeFormat.format(new Date(t.issued_at)) });
  const badge = priorityText(t.priority);
  $("ticket-number").textContent = t.number;
  $("ticket-number").dataset.number = t.number;
  $("ticket-service").textContent = service;
  $("ticket-ahead").textContent = ahead;
  $("ticket-eta").textContent =
    t.eta_seconds === null ? i18n.t("ticket_eta_unknown") : i18n.t("ticket_eta", { m: minutes(t.eta_seconds) });
  $("ticket-time").textContent = time;
  $("ticket-priority").textContent = badge;
  $("ticket-priority").hidden = !badge;
  $("ticket-priority").dataset.priority = t.priority;
  $("ticket-notify").hidden = !t.notify; // on screen only: the slip says nothing of it
  const done = { checkin: "checkin_done", rejoin: "rejoin_done" }[t.kind] ?? "ticket_done";
  document.querySelector(".ticket-done").textContent = i18n.t(done);
  // The slip: what the visitor takes away.
  $("r-number").textContent = t.number;
  $("r-service").textContent = service;
  $("r-ahead").textContent = ahead;
  $("r-time").textContent = time;
  $("r-priority").textContent = badge;
  $("r-priority").hidden = !badge;
}

function renderCountdown() {
  $("countdown").textContent = current === "ticket" ? i18n.t("countdown", { s: countdownLeft }) : "";
}

function showTicket(ticket, kind) {
  kiosk.ticket = { ...ticket, kind };
  const qr = config.qr_path.replace("{id}", encodeURIComponent(ticket.id));
  $("ticket-qr").src = qr;
  $("r-qr").src = qr;
  renderTicket(kiosk.ticket);
  show("ticket");
  shownAt = performance.now();
  countdownLeft = TICKET_SHOWN_S;
  renderCountdown();
  clearTimeout(countdownTimer);
  const step = () => {
    countdownLeft -= 1;
    if (countdownLeft <= 0) {
      home();
      return;
    }
    renderCountdown();
    countdownTimer = setTimeout(step, 1000);
  };
  countdownTimer = setTimeout(step, 1000);
  $("done").focus({ preventScroll: true });
  if (store.get(PRINT_KEY) === "auto") printSlip();
}

async function printSlip() {
  // The QR must be drawn before the page is handed to the printer.
  try {
    await $("r-qr").decode();
  } catch {
    /* printed without it: the number is what matters */
  }
  if (current === "ticket") window.print();
}

$("print").addEventListener("click", (e) => {
  e.stopPropagation(); // printing is not "tap to leave"
  printSlip();
});
$("done").addEventListener("click", (e) => {
  e.stopPropagation();
  home();
});
screens.ticket.addEventListener("click", () => {
  if (performance.now() - shownAt >= DISMISS_GUARD_MS) home();
});

// ---------------------------------------------------------------- token

async function checkToken(candidate) {
  try {
    const { status, data } = await api(config.credential_path, {
      headers: { Authorization: `Bearer ${candidate}` },
    });
    if (status === 401) return "refused";
    if (status !== 200) return "unavailable";
    // A valid token of another role (a display's, say) cannot issue tickets.
    return data?.role === "kiosk" || data?.role === "admin" ? "ok" : "refused";
  } catch {
    return "unavailable";
  }
}

function askToken(reasonKey) {
  store.remove(TOKEN_KEY);
  token = null;
  home();
  const error = $("token-error");
  error.textContent = reasonKey ? i18n.t(reasonKey) : "";
  error.hidden = !reasonKey;
  $("token-form").hidden = false;
  $("app").inert = true;
  $("token-input").value = "";
  $("token-input").focus();
}

function acceptToken(value) {
  token = value;
  store.set(TOKEN_KEY, value);
  $("token-form").hidden = true;
  $("app").inert = false;
}

$("token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  const submit = $("token-form").querySelector("button");
  submit.disabled = true;
  const error = $("token-error");
  error.textContent = i18n.t("token_checking");
  error.hidden = false;
  const verdict = await checkToken(value);
  submit.disabled = false;
  if (verdict === "ok") {
    error.hidden = true;
    acceptToken(value);
  } else {
    error.textContent = i18n.t(verdict === "refused" ? "error.token_rejected" : "error.network");
    $("token-input").select();
  }
});

// ---------------------------------------------------------------- start

i18n.apply();
renderAll();
renderCode();
show("start");
poll();
if (!token) {
  askToken(null);
} else {
  // An unreachable server keeps the token: the first request will tell.
  checkToken(token).then((verdict) => {
    if (verdict === "refused") askToken("error.token_rejected");
  });
}
