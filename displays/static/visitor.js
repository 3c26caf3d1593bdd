// The visitor's phone: one ticket followed by polling its id (the id in the
// URL is the only credential, so there is no WebSocket for it), the window
// to go to when called, cancel while waiting, and the 好差评 rating once served;
// a ticket set aside at a window (parked) says where to wait, an expired one
// says so, and a missed one may come back in line (我回来了) while the hall
// allows it. 提醒我 tells the visitor (a notification, a buzz) when one person
// is ahead and when called, from this page alone; 我需要晚一点 puts the turn
// back once.
import { readConfig, store } from "./connection.js";
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
// "Almost your turn" (and 提醒我's first reminder) from this many ahead.
const NEAR_AHEAD = 1;
const NEAR_BUZZ = [200, 100, 200];
const CALLED_BUZZ = [300, 150, 300];
// The server's bounds of a snooze; the choices step by five minutes.
const SNOOZE_MIN = 5;
const SNOOZE_STEP = 5;

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
    status_near: "前面只剩 1 人",
    near_title: "马上到您了",
    near_body: "请到等候区，留意叫号。",
    title_near: "马上到您了",
    title_called: "请到{window}",
    notify_on: "已登记提醒：快到您和叫到您时，大厅会发消息给您。",
    remind_label: "提醒我",
    remind_off: "开启后，前面只剩 1 人和叫到您时，手机会弹出通知并振动。",
    remind_on: "已开启：前面只剩 1 人和叫到您时，手机会弹出通知并振动。请不要关闭本页。",
    remind_off_limited:
      "这个浏览器现在不能为本页弹出通知。开启后，本页开着时，前面只剩 1 人和叫到您时会醒目提示，手机支持时还会振动。",
    remind_asking: "请在浏览器的询问中选择“允许”。",
    remind_unsupported:
      "这个浏览器不能弹出通知。请不要关闭本页：快到您和叫到您时，本页会醒目提示，手机支持时还会振动。",
    remind_denied:
      "浏览器没有允许本页发通知（可在浏览器的网站设置中打开）。请不要关闭本页：快到您和叫到您时，本页会醒目提示，手机支持时还会振动。",
    note_near: "{number} 号：前面还有 {n} 人",
    note_next: "{number} 号：下一位就是您",
    note_near_body: "马上到您了，请到等候区，留意叫号。",
    note_called: "{number} 号：请到{window}办理",
    note_called_body: "已叫到您的号。",
    snooze: "我需要晚一点",
    snooze_hint: "还没准备好？可以把您的号往后顺延一次，其间后面的人先办理。",
    snooze_title: "要顺延多久？",
    snooze_body: "您的位置会往后移，其间后面的人先办理。每个号只能顺延一次。",
    snooze_minutes: "{n} 分钟",
    snooze_yes: "顺延 {n} 分钟",
    snooze_no: "不用了",
    snoozed: "已为您顺延至 {time}",
    snoozed_body: "前面等候人数和预计时间已按新的位置更新。每个号只能顺延一次。",
    snooze_err_already_snoozed: "这个号已经顺延过一次，不能再顺延。",
    snooze_err_ticket_not_waiting: "您的号已不在排队中（可能刚被叫到），不能再顺延。",
    snooze_err_snooze_not_offered: "本大厅不提供顺延。",
    snooze_err_bad_minutes: "顺延时间不在允许的范围内，请重新选择。",
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
    status_near: "One person ahead of you",
    near_title: "Almost your turn",
    near_body: "Please go to the waiting area and listen for your number.",
    title_near: "Almost your turn",
    title_called: "Go to {window}",
    notify_on: "Reminders registered: the hall will message you when your turn nears and when you are called.",
    remind_label: "Remind me",
    remind_off: "Turn on for a notification and a buzz when one person is ahead of you and when you are called.",
    remind_on: "On: a notification and a buzz when one person is ahead of you and when you are called. Keep this page open.",
    remind_off_limited:
      "This browser cannot show notifications for this page now. Turned on, this page (while open) shows a clear alert, and buzzes where the phone can, when one person is ahead of you and when you are called.",
    remind_asking: "Please choose “Allow” when the browser asks.",
    remind_unsupported:
      "This browser cannot show notifications. Keep this page open: it will show a clear alert, and buzz where the phone can, when you are nearly up and when you are called.",
    remind_denied:
      "The browser does not allow this page to notify you (this can be changed in the browser's site settings). Keep this page open: it will show a clear alert, and buzz where the phone can, when you are nearly up and when you are called.",
    note_near: "Number {number}: {n} ahead of you",
    note_next: "Number {number}: you are next",
    note_near_body: "Almost your turn: please go to the waiting area and listen for your number.",
    note_called: "Number {number}: please go to {window}",
    note_called_body: "Your number has been called.",
    snooze: "I need a little longer",
    snooze_hint: "Not ready yet? You can put your turn back once; people behind you go first meanwhile.",
    snooze_title: "Put back by how long?",
    snooze_body: "Your place moves back and people behind you go first meanwhile. A ticket can be put back once only.",
    snooze_minutes: "{n} min",
    snooze_yes: "Put back {n} min",
    snooze_no: "Never mind",
    snoozed: "Put back until {time}",
    snoozed_body: "The people ahead and the estimate now count from your new place. A ticket can be put back once only.",
    snooze_err_already_snoozed: "This ticket has already been put back once.",
    snooze_err_ticket_not_waiting: "Your ticket is no longer waiting (it may just have been called), so it cannot be put back.",
    snooze_err_snooze_not_offered: "This hall does not offer putting a ticket back.",
    snooze_err_bad_minutes: "That length is not allowed: please choose again.",
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
  asking: false, // 提醒我 is waiting for the browser's permission answer
  reminded: [], // what 提醒我 told: {kind, shown}, shown = a notification was put up
  snoozeRefusal: null, // the API's error for this page's snooze
  snoozeWithdrawn: false, // the hall no longer offers it (409 snooze_not_offered)
};
window.qmsVisitor = state; // for tests and for whoever debugs a visitor's phone

let timer = null;
let inFlight = false;
let failures = 0;
let stopped = false;

// ------------------------------------------------------------------- poll

function nextDelay(ticket) {
  // With 提醒我 on, a hidden page is exactly when the visitor needs telling.
  if (document.hidden && !remind.on) return HIDDEN_MS;
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
  // Phones that can, buzz when called: the visitor may be looking elsewhere.
  let buzz = ticket.status === "called" && before && before.status !== "called" ? CALLED_BUZZ : null;
  const told = remindOf(before, ticket);
  if (told === "called") buzz = CALLED_BUZZ;
  else if (told === "near") buzz ??= NEAR_BUZZ;
  if (buzz) navigator.vibrate?.(buzz);
  if (TERMINAL.has(ticket.status)) forgetRemind();
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
    for (const id of [
      "ticket", "notice", "near", "snoozed", "snooze-error", "waiting", "called", "parked", "final",
      "rating-form", "rated", "remind-area", "snooze-area", "cancel-area",
    ]) {
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
  const near = waiting && isNear(ticket);
  const status = !near ? `status_${ticket.status}` : ticket.position === 0 ? "status_next" : "status_near";
  setText($("status-line"), i18n.t(status));
  // Told through the hall's gateway (a number left at the kiosk or online).
  show("notify-on", ticket.notify && (waiting || ticket.status === "parked"));
  // Almost there: a panel of its own, and the page's colours change.
  show("near", near);
  document.body.classList.toggle("is-near", near);
  drawTitle(ticket, near);

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
  drawSnooze(ticket);
  drawRemind(ticket);

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
  rejoinKey ??= newKey("rejoin");
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

// One intent's Idempotency-Key (randomUUID needs https).
function newKey(kind) {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `${kind}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// --------------------------------------------------------------- 提醒我

// Told by this page alone (no gateway needed): a notification where the
// browser allows one, a buzz where the phone can, and always the page itself
// (the near and called panels, and the tab's title). The switch is kept per
// ticket with what it told, so a reload tells nothing twice:
// {on, near: this approach to the front was told, calledAt: the call told}.
const remindKey = `qms.remind.${config.hall.id}.${config.ticket_id}`;
const remind = loadRemind();
const WORKER_URL = new URL("./remind-sw.js", import.meta.url);
let worker = null; // the promise of a service worker registration (see notify())

function loadRemind() {
  try {
    const saved = JSON.parse(store.get(remindKey) ?? "null");
    if (saved && typeof saved === "object") {
      const calledAt = typeof saved.calledAt === "string" ? saved.calledAt : null;
      return { on: saved.on === true, near: saved.near === true, calledAt };
    }
  } catch {
    /* unreadable: off */
  }
  return { on: false, near: false, calledAt: null };
}

function saveRemind() {
  store.set(remindKey, JSON.stringify(remind));
}

function forgetRemind() {
  remind.on = false;
  store.remove(remindKey);
}

function isNear(ticket) {
  return ticket.status === "waiting" && ticket.position !== null && ticket.position <= NEAR_AHEAD;
}

// "granted", "denied", "default", or "unsupported": no API, or a page not
// served over HTTPS, where browsers refuse it.
function notifications() {
  if (typeof Notification === "undefined" || !window.isSecureContext) return "unsupported";
  return Notification.permission;
}

// What a poll has to tell, once each: "near" when the ticket comes within one
// of the front, "called" for each call (known by its time: a reload does not
// tell it again, a second call after a transfer or a park is told). Back in
// line after a call (a transfer, a rejoin), the approach is a new one.
function remindOf(before, ticket) {
  let changed = false;
  if (ticket.status === "waiting" && before && before.status !== "waiting" && remind.near) {
    remind.near = false;
    changed = true;
  }
  let told = null;
  if (remind.on && isNear(ticket) && !remind.near) {
    remind.near = true;
    told = "near";
  } else if (remind.on && ticket.status === "called" && ticket.called_at && ticket.called_at !== remind.calledAt) {
    remind.calledAt = ticket.called_at;
    told = "called";
  }
  if (told || changed) saveRemind();
  if (told) tell(told, ticket);
  return told;
}

function tell(kind, ticket) {
  const vars = {
    number: ticket.number,
    n: ticket.position,
    window: windowNames.get(ticket.window) ?? ticket.window ?? "",
  };
  const title =
    kind === "called" ? i18n.t("note_called", vars) : i18n.t(ticket.position === 0 ? "note_next" : "note_near", vars);
  const entry = { kind, shown: false };
  state.reminded.push(entry);
  notify(title, {
    body: i18n.t(kind === "called" ? "note_called_body" : "note_near_body"),
    tag: `qms-${config.ticket_id}-${kind}`,
    lang: i18n.lang === "zh" ? "zh-CN" : "en",
    data: { url: location.href },
  }).then((shown) => {
    entry.shown = shown;
  });
}

async function notify(title, options) {
  if (notifications() !== "granted") return false;
  try {
    const note = new Notification(title, options);
    note.addEventListener("click", () => {
      window.focus();
      note.close();
    });
    return true;
  } catch {
    // Chrome on Android puts notifications up only through a service worker.
  }
  try {
    const registration = await serviceWorker();
    if (!registration) return false;
    await registration.showNotification(title, options);
    return true;
  } catch {
    return false;
  }
}

// remind-sw.js serves no requests (its scope is the static files): it only
// lets showNotification work, and brings this page forward when tapped.
function serviceWorker() {
  if (!("serviceWorker" in navigator)) return Promise.resolve(null);
  worker ??= navigator.serviceWorker
    .register(WORKER_URL)
    .then(activated)
    .catch(() => null);
  return worker;
}

// showNotification needs an active worker; a first registration is still installing.
function activated(registration) {
  const pending = registration.installing ?? registration.waiting;
  if (registration.active || !pending) return registration;
  return new Promise((resolve) => {
    pending.addEventListener("statechange", () => {
      if (pending.state === "activated") resolve(registration);
      else if (pending.state === "redundant") resolve(null);
    });
  });
}

// Older Safari takes a callback and returns nothing.
function askPermission() {
  return new Promise((resolve) => {
    const asked = Notification.requestPermission(resolve);
    asked?.then(resolve, () => resolve(Notification.permission));
  });
}

function drawRemind(ticket) {
  const offered = ticket.status === "waiting" || ticket.status === "parked";
  show("remind-area", offered);
  if (!offered) return;
  $("remind").setAttribute("aria-checked", String(remind.on));
  $("remind").disabled = state.asking;
  const can = notifications();
  let key = can === "granted" || can === "default" ? "remind_off" : "remind_off_limited";
  if (state.asking) key = "remind_asking";
  else if (remind.on) key = { granted: "remind_on", unsupported: "remind_unsupported" }[can] ?? "remind_denied";
  setText($("remind-state"), i18n.t(key));
}

const baseTitle = document.title;

// The tab's title says it too: seen from another tab, or the phone's switcher.
function drawTitle(ticket, near) {
  let cue = null;
  if (near) cue = i18n.t("title_near");
  else if (ticket.status === "called") {
    cue = i18n.t("title_called", { window: windowNames.get(ticket.window) ?? ticket.window ?? "" });
  }
  const title = cue ? `【${cue}】${baseTitle}` : baseTitle;
  if (document.title !== title) document.title = title;
}

$("remind").addEventListener("click", async () => {
  if (state.asking) return;
  if (remind.on) {
    remind.on = false;
    saveRemind();
    render();
    return;
  }
  remind.on = true;
  // What the page shows now is no news: only what comes next is told.
  const ticket = state.ticket;
  if (ticket && isNear(ticket)) remind.near = true;
  if (ticket?.called_at) remind.calledAt = ticket.called_at;
  saveRemind();
  if (notifications() === "default") {
    state.asking = true;
    render();
    try {
      await askPermission();
    } catch {
      /* no answer: said as not allowed */
    } finally {
      state.asking = false;
    }
  }
  if (notifications() === "granted") serviceWorker();
  render();
});

// ----------------------------------------------------------------- snooze

const snoozeMax = Number(config.snooze_max_minutes) || 0;
const snoozeDialog = $("snooze-dialog");
let snoozeIntent = null; // {minutes, key}: a retry after a lost answer reuses the key

// 5, 10, 15 … up to the hall's longest (itself a choice when off the step).
function snoozeChoices() {
  const choices = [];
  for (let m = SNOOZE_MIN; m <= snoozeMax; m += SNOOZE_STEP) choices.push(m);
  if (snoozeMax >= SNOOZE_MIN && choices.at(-1) !== snoozeMax) choices.push(snoozeMax);
  return choices;
}

function snoozeOffered(ticket) {
  return ticket.status === "waiting" && snoozeMax >= SNOOZE_MIN && !ticket.snoozed_until && !state.snoozeWithdrawn;
}

function snoozeErrorText(error) {
  const key = `snooze_err_${error.code}`;
  const text = i18n.t(key);
  return text === key ? errorText(i18n, error) : text;
}

function drawSnooze(ticket) {
  const waiting = ticket.status === "waiting";
  const offered = snoozeOffered(ticket);
  show("snooze-area", offered);
  if (!offered && snoozeDialog.open) snoozeDialog.close("no");
  const snoozed = waiting && Boolean(ticket.snoozed_until);
  show("snoozed", snoozed);
  if (snoozed) setText($("snoozed-title"), i18n.t("snoozed", { time: clock.format(new Date(ticket.snoozed_until)) }));
  // A refusal stays said while it explains the page: still waiting, or called meanwhile.
  const refusal = state.snoozeRefusal;
  show("snooze-error", Boolean(refusal) && (waiting || ticket.status === "called"));
  if (refusal) setText($("snooze-error"), snoozeErrorText(refusal));
  for (const input of $("snooze-choices").querySelectorAll("input")) {
    input.nextElementSibling.textContent = i18n.t("snooze_minutes", { n: input.value });
  }
  const picked = $("snooze-choices").querySelector("input:checked");
  $("snooze-yes").textContent = i18n.t("snooze_yes", { n: picked?.value ?? "" });
}

for (const [i, minutes] of snoozeChoices().entries()) {
  const label = document.createElement("label");
  label.className = "choice";
  const input = document.createElement("input");
  input.type = "radio";
  input.name = "minutes";
  input.value = String(minutes);
  input.checked = i === 0;
  label.append(input, document.createElement("span"));
  $("snooze-choices").append(label);
}
$("snooze-choices").addEventListener("change", render);

$("snooze").addEventListener("click", () => {
  state.snoozeRefusal = null;
  render();
  snoozeDialog.returnValue = "";
  snoozeDialog.showModal();
});

snoozeDialog.addEventListener("close", async () => {
  if (snoozeDialog.returnValue !== "yes") {
    if (!$("snooze-area").hidden) $("snooze").focus();
    return;
  }
  const minutes = Number($("snooze-choices").querySelector("input:checked")?.value);
  if (!minutes) return;
  if (snoozeIntent?.minutes !== minutes) snoozeIntent = { minutes, key: newKey("snooze") };
  const button = $("snooze");
  button.disabled = true;
  try {
    const response = await request(`${api}/snooze`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": snoozeIntent.key },
      body: JSON.stringify({ minutes }),
    });
    snoozeIntent = null; // answered: nothing to retry
    if (response.ok) {
      const ticket = await response.json();
      // Put back: the next approach to the front is told again.
      remind.near = isNear(ticket);
      if (remind.on) saveRemind();
      await update(ticket); // the new place, at once
      schedule(nextDelay(ticket));
      $("snoozed").focus();
      return;
    }
    const refusal = await errorOf(response);
    state.snoozeRefusal = refusal;
    if (refusal.code === "snooze_not_offered") state.snoozeWithdrawn = true;
    render();
    poll(); // whatever happened meanwhile (snoozed from another phone, called), show it
  } catch {
    state.snoozeRefusal = { code: "network", message: "" };
    render();
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
if (remind.on && notifications() === "granted") serviceWorker();
