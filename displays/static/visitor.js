// The visitor's phone: one ticket followed by polling its id (the id in the
// URL is the only credential, so there is no WebSocket for it), the window
// to go to when called, cancel while waiting, and the 好差评 rating once served;
// a ticket set aside at a window (parked) says where to wait, an expired one
// says so, and a missed one may come back in line (我回来了) while the hall
// allows it.
import { readConfig } from "./connection.js";
import { I18n } from "./i18n.js";
import { errorOf, errorText, request } from "./phone.js";

// Poll rhythm. Someone about to be called is polled fastest so the window
// shows within a second of the clerk's call; further back, every two
// seconds is plenty (the line moves by minutes). A hidden tab cannot show
// anything, so it is asked rarely and at once when it comes back.
const NEAR_POSITIONS = 3;
const NEAR_MS = 600;
const WAITING_MS = 2_000;
const CALLED_MS = 2_000; // to offer the rating soon after the visit ends
const HIDDEN_MS = 15_000;
const PARKED_MS = 2_000; // the clerk may call it back any moment
const NO_SHOW_MS = 30_000; // a hall may let a late visitor back in line
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 30_000;
// Nothing comes after these: polling stops.
const TERMINAL = new Set(["completed", "cancelled", "expired"]);
const SCORES = ["very_satisfied", "satisfied", "neutral", "dissatisfied", "very_dissatisfied"];
const REASON_MAX = 200;
// Date headers have one-second resolution: trust a skew only beyond this.
const SKEW_MIN_MS = 2_000;

const CATALOGUE = {
  zh: {
    lang_switch: "English",
    your_number: "您的号码",
    issued_at: "取号时间 {time}",
    ahead: "前面等候",
    ahead_value: "{n} 人",
    eta: "预计等候",
    eta_value: "约 {n} 分钟",
    eta_none: "暂无窗口开放",
    eta_range: "多数在 {lo}–{hi} 分钟之间",
    status_waiting: "排队中，请留意叫号",
    status_next: "下一位就是您，请到窗口附近等候",
    status_called: "已叫到您的号",
    status_completed: "已办结",
    status_cancelled: "已取消",
    status_no_show: "已过号",
    status_expired: "已过期",
    status_parked: "已暂挂，工作人员会再次叫您",
    go_to: "请到",
    go_after: "办理",
    transferred: "您已被转到「{service}」，号码不变，请继续等候。",
    final_completed: "办理完成",
    final_completed_body: "感谢您的耐心等候。",
    final_cancelled: "这个号已取消",
    final_cancelled_body: "如需办理，请重新取号。",
    final_no_show: "您已过号",
    final_no_show_body: "叫号时您不在窗口。请到咨询台说明情况。",
    final_no_show_rejoin: "叫号时您不在窗口。回到大厅后可以重新排队一次，号码不变。",
    final_expired: "本号已过期",
    final_expired_body: "大厅已停止服务，这个号不再叫号。如需办理，请在开放时间重新取号。",
    parked_before: "请在",
    parked_after: "附近等候",
    parked_body: "工作人员会再次叫您，叫到时本页会提醒。",
    rejoin: "我回来了",
    rejoin_until: "请在 {time} 前回到大厅后点击，重新排队。",
    rejoined: "您已重新排队，号码不变，请留意叫号。",
    err_late_return_closed: "已超过可以回来排队的时间，或已经回来过一次；如需办理请重新取号。",
    cancel: "取消排队",
    confirm_text: "确定取消 {number} 号吗？取消后需要重新取号。",
    confirm_yes: "确定取消",
    confirm_no: "不取消",
    rate_legend: "请为本次服务评价",
    score_very_satisfied: "非常满意",
    score_satisfied: "满意",
    score_neutral: "基本满意",
    score_dissatisfied: "不满意",
    score_very_dissatisfied: "非常不满意",
    reason_label: "意见或建议（选填，200 字以内）",
    rate_submit: "提交评价",
    rate_pick: "请先选择一个评价。",
    rated_thanks: "感谢您的评价",
    rated_already: "这次服务已经评价过了",
    rated_score: "您的评价：{score}",
    missing_title: "没有找到这个号",
    missing_body: "链接可能不完整或已过期。请核对号票上的二维码，或到咨询台询问。",
    conn_down: "网络不稳定，正在重新连接…",
    keep_private: "本页链接就是您的取号凭证，请勿转发他人。",
    err_ticket_not_waiting: "您的号已被叫到，不能再取消，请前往窗口办理。",
    err_already_rated: "这次服务已经评价过了，每个号只能评价一次。",
    err_not_completed: "办理完成后才能评价。",
    err_invalid_rating: "请选择一个评价。",
    err_invalid_field: "评价内容不符合要求，请修改后再提交。",
    err_ticket_not_found: "没有找到这个号。",
    err_redis_unavailable: "系统暂时无法处理，请稍后再试。",
    err_network: "网络连接失败，请稍后再试。",
    err_other: "操作未成功：{message}",
  },
  en: {
    lang_switch: "中文",
    your_number: "Your number",
    issued_at: "Taken at {time}",
    ahead: "People ahead",
    ahead_value: "{n}",
    eta: "Estimated wait",
    eta_value: "about {n} min",
    eta_none: "No window open yet",
    eta_range: "usually {lo}–{hi} min",
    status_waiting: "Waiting — watch for your number",
    status_next: "You are next: please stay near the windows",
    status_called: "Your number has been called",
    status_completed: "Done",
    status_cancelled: "Cancelled",
    status_no_show: "Missed",
    status_expired: "Expired",
    status_parked: "Set aside: you will be called again",
    go_to: "Please go to",
    go_after: "",
    transferred: "You have been moved to “{service}”. Same number: please keep waiting.",
    final_completed: "Your visit is complete",
    final_completed_body: "Thank you for your patience.",
    final_cancelled: "This ticket is cancelled",
    final_cancelled_body: "To be served, please take a new ticket.",
    final_no_show: "Your number was missed",
    final_no_show_body: "You were not at the window when called. Please ask at the information desk.",
    final_no_show_rejoin: "You were not at the window when called. Once back in the hall you may rejoin the queue once, same number.",
    final_expired: "This ticket has expired",
    final_expired_body: "The hall has stopped serving; this ticket will not be called. Please take a new ticket during opening hours.",
    parked_before: "Please wait near",
    parked_after: "",
    parked_body: "The clerk will call you again; this page will tell you.",
    rejoin: "I'm back",
    rejoin_until: "Tap it once you are back in the hall, before {time}, to queue again.",
    rejoined: "You are back in the queue with the same number: watch for your call.",
    err_late_return_closed: "Too late to rejoin, or rejoined once already. Please take a new ticket.",
    cancel: "Cancel my ticket",
    confirm_text: "Cancel number {number}? You would need a new ticket.",
    confirm_yes: "Yes, cancel",
    confirm_no: "Keep it",
    rate_legend: "How was the service?",
    score_very_satisfied: "Very satisfied",
    score_satisfied: "Satisfied",
    score_neutral: "Fairly satisfied",
    score_dissatisfied: "Dissatisfied",
    score_very_dissatisfied: "Very dissatisfied",
    reason_label: "Comments (optional, up to 200 characters)",
    rate_submit: "Send rating",
    rate_pick: "Please choose a rating first.",
    rated_thanks: "Thank you for your rating",
    rated_already: "This visit has already been rated",
    rated_score: "Your rating: {score}",
    missing_title: "Ticket not found",
    missing_body:
      "The link may be incomplete or out of date. Check the QR code on your ticket, or ask at the information desk.",
    conn_down: "Connection trouble — reconnecting…",
    keep_private: "This page's link is your ticket: do not share it.",
    err_ticket_not_waiting: "Your number has already been called, so it can no longer be cancelled: please go to the window.",
    err_already_rated: "This visit has already been rated: one rating per ticket.",
    err_not_completed: "You can rate the visit once it is complete.",
    err_invalid_rating: "Please choose a rating.",
    err_invalid_field: "The rating could not be accepted: please check it and try again.",
    err_ticket_not_found: "Ticket not found.",
    err_redis_unavailable: "The system is busy right now: please try again shortly.",
    err_network: "Could not connect: please try again shortly.",
    err_other: "That did not work: {message}",
  },
};

const config = readConfig();
const i18n = new I18n(CATALOGUE);
const $ = (id) => document.getElementById(id);
const api = `${config.api}/tickets/${encodeURIComponent(config.ticket_id)}`;
const windowNames = new Map(config.windows.map((w) => [w.id, w.name]));
const serviceNames = new Map(config.services.map((s) => [s.id, s.name]));
const clock = new Intl.DateTimeFormat("zh-CN", {
  timeZone: config.hall.timezone,
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

const state = {
  ticket: null,
  transferredTo: null, // a service id, once the ticket came back from a window to another line
  rating: undefined, // undefined: not asked yet; null: not rated; else {score, reason, rated_at}
  alreadyRated: false,
  cancelRefusal: null, // the API's error, kept to explain it after the page catches up
  missing: Boolean(config.missing),
  connDown: false,
  polls: 0,
  skewMs: 0, // the server's clock minus this phone's, when over SKEW_MIN_MS
  rejoined: false, // this page put the ticket back in line
  rejoinRefusal: null, // the API's error: the offer is withdrawn
  hallClosed: undefined, // an expired ticket's hall: {zh, en} when it takes no tickets now, else null
};
window.qmsVisitor = state; // for tests and for whoever debugs a visitor's phone

let timer = null;
let inFlight = false;
let failures = 0;
let stopped = false;

// ------------------------------------------------------------------- poll

function nextDelay(ticket) {
  if (document.hidden) return HIDDEN_MS;
  if (ticket.status === "waiting") {
    return ticket.position !== null && ticket.position < NEAR_POSITIONS ? NEAR_MS : WAITING_MS;
  }
  if (ticket.status === "called") return CALLED_MS;
  if (ticket.status === "parked") return PARKED_MS;
  return NO_SHOW_MS;
}

function schedule(ms) {
  clearTimeout(timer);
  if (!stopped) timer = setTimeout(poll, ms);
}

async function poll() {
  if (inFlight || stopped) return;
  inFlight = true;
  clearTimeout(timer);
  try {
    const response = await request(api);
    state.polls += 1;
    if (response.status === 404) {
      state.missing = true;
      stopped = true;
      render();
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    noteSkew(response.headers.get("date"));
    const ticket = await response.json();
    failures = 0;
    state.connDown = false;
    await update(ticket);
    if (TERMINAL.has(ticket.status)) stopped = true;
    else schedule(nextDelay(ticket));
  } catch {
    failures += 1;
    state.connDown = true;
    render();
    schedule(Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1)));
  } finally {
    inFlight = false;
  }
}

function noteSkew(date) {
  const server = Date.parse(date ?? "");
  if (Number.isNaN(server)) return;
  // The header is truncated to the second: its middle is the best guess.
  const skew = server + 500 - Date.now();
  state.skewMs = Math.abs(skew) > SKEW_MIN_MS ? skew : 0;
}

async function update(ticket) {
  const before = state.ticket;
  if (before && before.status === "called" && ticket.status === "waiting") {
    state.transferredTo = ticket.service;
  } else if (ticket.status !== "waiting") {
    state.transferredTo = null;
  }
  state.ticket = ticket;
  if (ticket.status === "called" && before && before.status !== "called") {
    // Phones that can, buzz: the visitor may be looking elsewhere.
    navigator.vibrate?.([300, 150, 300]);
  }
  if (ticket.status === "completed" && state.rating === undefined) await loadRating();
  if (ticket.status === "expired" && state.hallClosed === undefined) await loadHallHours();
  render();
}

// An expired ticket's visitor is told when the hall next takes tickets, in
// the server's words ("今日已停止取号，明天 08:30 开始取号。").
async function loadHallHours() {
  try {
    const response = await request(`${config.api}/services`);
    if (!response.ok) return;
    const body = await response.json();
    state.hallClosed = body.open ? null : body.hours?.message ?? null;
  } catch {
    // Without it the page still says the ticket expired.
  }
}

async function loadRating() {
  try {
    const response = await request(`${api}/rating`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const rating = await response.json();
    state.rating = rating.score ? rating : null;
  } catch {
    // Unknown: offer the form; if it was rated, the refusal says so.
    state.rating = null;
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden || stopped) return;
  poll(); // back to the page: show the truth now, then the usual rhythm
});

// ----------------------------------------------------------------- render

function show(id, visible) {
  $(id).hidden = !visible;
}

// A number with its words around it ("约 {n} 分钟"): the number large, the
// words small, so "about 120 minutes" still fits half a phone's width.
function minutes(seconds) {
  return Math.max(1, Math.round(seconds / 60));
}

function figure(el, key, n) {
  const said = `${i18n.lang}:${key}:${n}`;
  if (el.dataset.said === said) return; // unchanged: nothing for a screen reader to repeat
  el.dataset.said = said;
  const [before, after = ""] = i18n.t(key).split("{n}");
  const parts = [];
  if (before.trim()) parts.push(unit(before.trim()), " ");
  const big = document.createElement("b");
  big.textContent = String(n);
  parts.push(big);
  if (after.trim()) parts.push(" ", unit(after.trim()));
  el.replaceChildren(...parts);
}

// Live regions re-announce rewritten text even when it is the same: each
// poll writes only what changed.
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
  delete el.dataset.said;
}

function unit(text) {
  const span = document.createElement("span");
  span.className = "unit";
  span.textContent = text;
  return span;
}

function serviceName(id) {
  return serviceNames.get(id) ?? id;
}

function render() {
  const { ticket, missing } = state;
  $("lang").textContent = i18n.t("lang_switch");
  $("lang").lang = i18n.lang === "zh" ? "en" : "zh-CN";
  show("conn", state.connDown && !missing);
  setText($("conn"), i18n.t("conn_down"));
  if (missing) {
    document.body.dataset.view = "missing";
    for (const id of ["ticket", "notice", "waiting", "called", "parked", "final", "rating-form", "rated", "cancel-area"]) {
      show(id, false);
    }
    show("missing", true);
    return;
  }
  if (!ticket) return;
  document.body.dataset.view = ticket.status;
  show("missing", false);
  show("ticket", true);
  $("number").textContent = ticket.number;
  $("service").textContent = serviceName(ticket.service);
  $("issued").textContent = i18n.t("issued_at", { time: clock.format(new Date(ticket.issued_at)) });

  const waiting = ticket.status === "waiting";
  const near = waiting && ticket.position === 0;
  setText($("status-line"), i18n.t(near ? "status_next" : `status_${ticket.status}`));

  // A refused cancel is explained where the cancel button was, and once the
  // page learns the ticket was called, above the window to go to.
  const refused =
    ticket.status === "called" && state.cancelRefusal?.code === "ticket_not_waiting" ? state.cancelRefusal : null;
  show("notice", (waiting && (state.transferredTo !== null || state.rejoined)) || Boolean(refused));
  if (waiting && state.transferredTo) {
    setText($("notice"), i18n.t("transferred", { service: serviceName(state.transferredTo) }));
  } else if (waiting && state.rejoined) {
    setText($("notice"), i18n.t("rejoined"));
  } else if (refused) {
    setText($("notice"), errorText(i18n, refused));
  }
  show("cancel-error", waiting && Boolean(state.cancelRefusal));
  if (waiting && state.cancelRefusal) setText($("cancel-error"), errorText(i18n, state.cancelRefusal));

  show("waiting", waiting);
  if (waiting) {
    if (ticket.position === null) setText($("ahead"), "—");
    else figure($("ahead"), "ahead_value", ticket.position);
    if (ticket.eta_seconds === null) setText($("eta"), i18n.t("eta_none"));
    else figure($("eta"), "eta_value", minutes(ticket.eta_seconds));
    // The 80% range: eight visitors in ten are called within it.
    const range = ticket.eta_range_seconds;
    show("eta-range", Boolean(range));
    if (range) {
      const [lo, hi] = range.map(minutes);
      setText($("eta-range"), i18n.t("eta_range", { lo: Math.min(lo, hi), hi }));
    }
  }

  const called = ticket.status === "called";
  show("called", called);
  if (called) setText($("window-name"), windowNames.get(ticket.window) ?? ticket.window);
  $("called").querySelector(".go-after").hidden = !i18n.t("go_after");

  const parked = ticket.status === "parked";
  show("parked", parked);
  if (parked) setText($("parked-window"), windowNames.get(ticket.window) ?? ticket.window ?? "");
  $("parked").querySelector("[data-i18n=parked_after]").hidden = !i18n.t("parked_after");

  show("cancel-area", waiting);
  // Called (or served) while the confirmation was open: nothing left to cancel.
  if (!waiting && dialog.open) dialog.close("no");

  const final = !waiting && !called && !parked;
  show("final", final);
  const rejoin = rejoinOpen(ticket);
  if (final) {
    $("final-title").textContent = i18n.t(`final_${ticket.status}`);
    const body = rejoin ? "final_no_show_rejoin" : `final_${ticket.status}_body`;
    $("final-body").textContent = i18n.t(body);
  }
  const hours = final && ticket.status === "expired" ? state.hallClosed : null;
  show("final-hours", Boolean(hours));
  if (hours) setText($("final-hours"), hours[i18n.lang] ?? hours.zh);
  drawRejoin(ticket, rejoin);

  const completed = ticket.status === "completed";
  const rated = completed && state.rating;
  show("rating-form", completed && state.rating !== undefined && !rated);
  show("rated", Boolean(rated));
  if (rated) {
    $("rated-title").textContent = i18n.t(state.alreadyRated ? "rated_already" : "rated_thanks");
    show("rated-score", Boolean(rated.score));
    if (rated.score) {
      $("rated-score").textContent = i18n.t("rated_score", { score: i18n.t(`score_${rated.score}`) });
    }
    show("rated-reason", Boolean(rated.reason));
    $("rated-reason").textContent = rated.reason ?? "";
  }
}

// ----------------------------------------------------------------- rejoin

let rejoinTimer = null;
let rejoinKey = null; // one intent: a retry after a lost answer reuses it

// A missed ticket may come back while its `rejoin_until` has not passed (on
// the server's clock) and the server has not refused it.
function rejoinOpen(ticket) {
  if (ticket.status !== "no_show" || !ticket.rejoin_until || state.rejoinRefusal) return false;
  return Date.parse(ticket.rejoin_until) > Date.now() + state.skewMs;
}

function drawRejoin(ticket, open) {
  clearTimeout(rejoinTimer);
  const refusal = ticket.status === "no_show" ? state.rejoinRefusal : null;
  show("rejoin-area", open || Boolean(refusal));
  show("rejoin", open);
  show("rejoin-hint", open);
  show("rejoin-error", Boolean(refusal));
  // A closed hall's sentence names its next opening: shown as the server says it.
  if (refusal) {
    setText($("rejoin-error"), refusal.code === "hall_closed" ? refusal.message : errorText(i18n, refusal));
  }
  if (!open) return;
  setText($("rejoin-hint"), i18n.t("rejoin_until", { time: clock.format(new Date(ticket.rejoin_until)) }));
  // Gone when the time is up, though the next poll is far off.
  const left = Date.parse(ticket.rejoin_until) - (Date.now() + state.skewMs);
  rejoinTimer = setTimeout(render, Math.min(left + 50, 2 ** 31 - 1));
}

$("rejoin").addEventListener("click", async () => {
  const button = $("rejoin");
  if (button.disabled) return;
  button.disabled = true;
  rejoinKey ??= `rejoin-${Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("")}`;
  try {
    const response = await request(`${api}/rejoin`, {
      method: "POST",
      headers: { "Idempotency-Key": rejoinKey },
    });
    rejoinKey = null; // answered: nothing to retry
    if (response.ok) {
      state.rejoined = true;
      await update(await response.json());
      schedule(0); // the usual rhythm from here
      return;
    }
    const refusal = await errorOf(response);
    // Refused for good (too late, once already, the hall closed): the offer goes.
    if (response.status === 409 || response.status === 404) state.rejoinRefusal = refusal;
    else state.rejoinRefusal = null;
    render();
    if (!state.rejoinRefusal) {
      show("rejoin-error", true);
      setText($("rejoin-error"), errorText(i18n, refusal));
    }
    poll(); // whatever happened meanwhile (rejoined from the kiosk, say), show it
  } catch {
    show("rejoin-error", true);
    setText($("rejoin-error"), i18n.t("err_network"));
  } finally {
    button.disabled = false;
  }
});

// ----------------------------------------------------------------- cancel

const dialog = $("confirm");

$("cancel").addEventListener("click", () => {
  state.cancelRefusal = null;
  render();
  $("confirm-text").textContent = i18n.t("confirm_text", { number: state.ticket?.number ?? "" });
  dialog.returnValue = "";
  dialog.showModal();
});

dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "yes") {
    $("cancel").focus();
    return;
  }
  const button = $("cancel");
  button.disabled = true;
  try {
    const response = await request(`${api}/cancel`, { method: "POST" });
    if (response.ok) {
      await update(await response.json());
      stopped = true;
      clearTimeout(timer);
      return;
    }
    state.cancelRefusal = await errorOf(response);
    render();
    poll(); // whatever happened (most likely: called), show it
  } catch {
    state.cancelRefusal = { code: "network", message: "" };
    render();
  } finally {
    button.disabled = false;
  }
});

// ----------------------------------------------------------------- rating

const form = $("rating-form");
const reason = $("reason");

form.addEventListener("change", () => {
  $("rating-error").hidden = true; // a choice was made: the reminder is done
});

reason.addEventListener("input", () => {
  $("reason-count").textContent = `${reason.value.length} / ${REASON_MAX}`;
});

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = $("rating-error");
  error.hidden = true;
  const picked = form.querySelector('input[name="score"]:checked');
  if (!picked || !SCORES.includes(picked.value)) {
    error.textContent = i18n.t("rate_pick");
    error.hidden = false;
    form.querySelector('input[name="score"]').focus();
    return;
  }
  const body = { score: picked.value };
  const text = reason.value.trim().slice(0, REASON_MAX);
  if (text) body.reason = text;
  const submit = $("rating-submit");
  submit.disabled = true;
  try {
    const response = await request(`${api}/rating`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status === 201) {
      state.rating = await response.json();
      state.alreadyRated = false;
      render();
      $("rated-title").focus();
      return;
    }
    const refusal = await errorOf(response);
    if (refusal.code === "already_rated") {
      // Rated from another tab or phone: show what was given, not this form.
      state.alreadyRated = true;
      state.rating = undefined;
      await loadRating();
      if (!state.rating) state.rating = { score: null, reason: null }; // given, but unread
      render();
      $("rated-title").focus();
      return;
    }
    error.textContent = errorText(i18n, refusal);
    error.hidden = false;
  } catch {
    error.textContent = i18n.t("err_network");
    error.hidden = false;
  } finally {
    submit.disabled = false;
  }
});

// ------------------------------------------------------------------- start

$("lang").addEventListener("click", () => {
  i18n.lang = i18n.lang === "zh" ? "en" : "zh";
  render();
});
$("rated-title").tabIndex = -1;

i18n.apply();
render();
if (state.missing) stopped = true;
else poll();
