// Remote 取号 on a phone: the hall's services with how many wait and about
// how long, a mobile number when the hall asks for one, one tap for a
// ticket, then the visitor page of that ticket. Where the hall has a gateway,
// a number to be texted when the turn nears may be left too (optional).
// Outside the hall's hours it says when tickets are issued again instead.
import { readConfig, store } from "./connection.js";
import { I18n } from "./i18n.js";
import { errorOf, errorText, request } from "./phone.js";

const REFRESH_MS = 15_000; // waiting counts: a glance, not a race
const RETRY_MS = 5_000;
const ACTIVE = new Set(["waiting", "called", "parked"]);
// A refusal (409 hall_closed) closes the page at once, though the /services
// it reads may be up to a second older than the hall's closing.
const CLOSED_HINT_MS = 3_000;

const CATALOGUE = {
  zh: {
    lang_switch: "English",
    title: "网上取号",
    intro: "请选择要办理的事项。取号后请留意手机页面的叫号提醒。",
    loading: "正在加载…",
    waiting: "等候 {n} 人",
    eta: "约 {n} 分钟",
    eta_none: "暂无窗口开放",
    take: "取号",
    taking: "正在取号…",
    phone_label: "手机号码",
    phone_hint: "用于核对身份，每个号码同时只能持有一个号。",
    phone_missing: "请填写手机号码。",
    phone_bad: "手机号码格式不正确，请输入 11 位手机号，例如 13800138000。",
    mine_text: "您已取号：{number}（{service}）",
    mine_link: "查看我的号",
    disabled_title: "本大厅暂未开放网上取号",
    disabled_body: "请到大厅的取号机取号，或向咨询台工作人员求助。",
    conn_down: "网络不稳定，正在重新连接…",
    foot: "取号后请按时到达大厅；过号需重新取号。",
    err_rate_limited: "取号太频繁了：同一网络每小时取号次数有限，请稍后再试，或到大厅取号机取号。",
    err_remote_quota_exhausted: "今天这个事项的网上取号已经取完，请到大厅取号机取号。",
    err_service_full: "这个事项今天的号已经取完，请改日再来。",
    err_phone_has_ticket: "这个手机号已有一个未办理的号，请先办理或取消那个号。",
    err_invalid_phone: "手机号码格式不正确，请输入 11 位手机号，例如 13800138000。",
    err_missing_field: "请填写手机号码。",
    err_remote_not_offered: "本大厅暂未开放网上取号，请到大厅取号。",
    err_service_not_found: "这个事项已不再办理，请刷新页面。",
    err_redis_unavailable: "系统暂时无法处理，请稍后再试。",
    err_network: "网络连接失败，请稍后再试。",
    err_other: "取号未成功：{message}",
    closed_title: "现在不能取号",
    closed_body: "开始取号后，请再打开本页取号。",
    closed_unknown: "现在不是取号时间。",
    notify_title: "快到时短信提醒我",
    notify_same: "用上面的手机号接收提醒",
    notify_label: "接收提醒的手机号码（选填）",
    notify_hint: "快到您和叫到您时发短信给您；不填也可以取号。",
    notify_bad: "提醒用的手机号码格式不正确：请输入 11 位手机号，或者清空不填。",
    err_invalid_notify: "提醒用的手机号码格式不正确：请输入 11 位手机号，或者清空不填。",
    err_notify_not_offered: "本大厅暂不提供短信提醒：请清空提醒用的手机号后再取号。",
  },
  en: {
    lang_switch: "中文",
    title: "Take a ticket online",
    intro: "Choose what you need. Once you have a ticket, keep its page open to see when you are called.",
    loading: "Loading…",
    waiting: "{n} waiting",
    eta: "about {n} min",
    eta_none: "No window open yet",
    take: "Take",
    taking: "Taking…",
    phone_label: "Mobile number",
    phone_hint: "One ticket at a time per number.",
    phone_missing: "Please enter your mobile number.",
    phone_bad: "That is not a mobile number: 11 digits, such as 13800138000.",
    mine_text: "Your ticket: {number} ({service})",
    mine_link: "Show my ticket",
    disabled_title: "This hall does not offer online tickets",
    disabled_body: "Please take a ticket at the hall's kiosk, or ask at the information desk.",
    conn_down: "Connection trouble — reconnecting…",
    foot: "Please be in the hall when your number comes up; a missed number needs a new ticket.",
    err_rate_limited: "Too many tickets taken from this network in the last hour. Please try later, or use the kiosk in the hall.",
    err_remote_quota_exhausted: "Today's online tickets for this service are all taken. Please use the kiosk in the hall.",
    err_service_full: "Today's tickets for this service are all taken. Please come back another day.",
    err_phone_has_ticket: "This mobile number already holds a ticket. Use or cancel that one first.",
    err_invalid_phone: "That is not a mobile number: 11 digits, such as 13800138000.",
    err_missing_field: "Please enter your mobile number.",
    err_remote_not_offered: "This hall does not offer online tickets. Please take one in the hall.",
    err_service_not_found: "This service is no longer offered. Please reload the page.",
    err_redis_unavailable: "The system is busy right now: please try again shortly.",
    err_network: "Could not connect: please try again shortly.",
    err_other: "No ticket: {message}",
    closed_title: "No tickets now",
    closed_body: "Please come back to this page once tickets are issued again.",
    closed_unknown: "The hall is not issuing tickets now.",
    notify_title: "Text me when my turn nears",
    notify_same: "Use the number above for reminders",
    notify_label: "Mobile number for reminders (optional)",
    notify_hint: "A text when your turn nears and when you are called. You can take a ticket without it.",
    notify_bad: "The reminder number is not a mobile number: 11 digits, or leave it empty.",
    err_invalid_notify: "The reminder number is not a mobile number: 11 digits, or leave it empty.",
    err_notify_not_offered: "Text reminders are not offered here now: empty the reminder number and try again.",
  },
};

const config = readConfig();
const i18n = new I18n(CATALOGUE);
const $ = (id) => document.getElementById(id);
const lastKey = `qms.remote.${config.hall.id}.last`;
const groupNames = new Map(config.groups.map((g) => [g.id, g.name]));

const state = {
  services: null, // the last /services body
  mine: null, // an active ticket this phone took before
  connDown: false,
  busy: null, // the service id being taken
  error: null, // {text, field}: the field it is about ("phone", "notify"), or null
  requests: 0, // POSTs sent (tests count them)
  closedHint: null, // {message, until}: a hall_closed refusal /services has not caught up with
};
window.qmsRemote = state;

// One intent, one key: a double tap or a retry after a lost answer sends the
// same key, and the server answers with the same ticket. A new choice (or an
// answer of any kind) starts a new intent.
let intent = null;
let refreshTimer = null;

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs https
  return `remote-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// Mainland mobile, as the server reads it: spaces and dashes dropped, +86 or
// 0086 before it allowed, then 11 digits starting 13–19.
export function mobileNumber(text) {
  let digits = text.replace(/[\s-]/g, "");
  if (digits.startsWith("+86")) digits = digits.slice(3);
  else if (digits.startsWith("0086")) digits = digits.slice(4);
  return /^1[3-9]\d{9}$/.test(digits) ? digits : null;
}

// --------------------------------------------------------------- loading

async function loadServices() {
  clearTimeout(refreshTimer);
  try {
    const response = await request(`${config.api}/services`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.services = await response.json();
    state.connDown = false;
    refreshTimer = setTimeout(loadServices, REFRESH_MS);
  } catch {
    state.connDown = true;
    refreshTimer = setTimeout(loadServices, RETRY_MS);
  }
  render();
}

async function loadMine() {
  const id = store.get(lastKey);
  if (!id) return;
  try {
    const response = await request(`${config.api}/tickets/${encodeURIComponent(id)}`);
    if (response.status === 404) {
      store.remove(lastKey);
      return;
    }
    if (!response.ok) {
      // Busy or away for a moment (a 503): ask again, as for the services.
      setTimeout(loadMine, RETRY_MS);
      return;
    }
    const ticket = await response.json();
    if (ACTIVE.has(ticket.status)) state.mine = ticket;
    else store.remove(lastKey); // served or gone: nothing to go back to
  } catch {
    setTimeout(loadMine, RETRY_MS); // offline: the offer shows once it is back
  }
  render();
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) clearTimeout(refreshTimer);
  else loadServices();
});

// ---------------------------------------------------------------- taking

async function take(serviceId) {
  if (state.busy) return; // the second tap of a double tap
  state.error = null;
  const body = { service: serviceId };
  const requirePhone = Boolean(state.services?.remote.require_phone);
  if (requirePhone) {
    const input = $("phone");
    const phone = mobileNumber(input.value);
    if (!phone) {
      state.error = { text: i18n.t(input.value.trim() ? "phone_bad" : "phone_missing"), field: "phone" };
      render();
      input.focus();
      return;
    }
    body.phone = phone;
  }
  if (state.services?.notify?.enabled) {
    const input = $("notify-phone");
    let to = null;
    if (requirePhone && $("notify-same").checked) to = body.phone;
    else if (input.value.trim()) {
      to = mobileNumber(input.value);
      if (!to) {
        state.error = { text: i18n.t("notify_bad"), field: "notify" };
        render();
        input.focus();
        return;
      }
    }
    if (to) body.notify = { phone: to };
  }
  const notifyTo = body.notify?.phone;
  if (!intent || intent.service !== body.service || intent.phone !== body.phone || intent.notify !== notifyTo) {
    intent = { service: body.service, phone: body.phone, notify: notifyTo, key: newKey() };
  }
  state.busy = serviceId;
  render();
  let navigating = false;
  try {
    state.requests += 1;
    const response = await request(`${config.api}/remote/tickets`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": intent.key },
      body: JSON.stringify(body),
    });
    intent = null; // answered: the next tap is a new request
    if (response.status === 201) {
      const ticket = await response.json();
      store.set(lastKey, ticket.id);
      navigating = true;
      location.assign(config.ticket_path + encodeURIComponent(ticket.id));
      return;
    }
    const refusal = await errorOf(response);
    let field = null;
    if (["invalid_phone", "missing_field", "phone_has_ticket"].includes(refusal.code)) field = "phone";
    // Without a required number, a bad number can only be the reminder's.
    if (refusal.code === "invalid_phone" && !requirePhone) field = "notify";
    if (["invalid_notify", "notify_not_offered"].includes(refusal.code)) field = "notify";
    if (refusal.code === "hall_closed") {
      state.closedHint = { message: refusal.message, until: performance.now() + CLOSED_HINT_MS };
      // Read again once /services (up to a second old) has caught up.
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(loadServices, 1_200);
    } else {
      state.error = { text: errorText(i18n, refusal), field };
      loadServices(); // counts may have moved while the phone was asking
    }
    if (refusal.code === "remote_not_offered" && state.services) state.services.remote.enabled = false;
  } catch {
    // No answer: the intent (and its key) stays, so tapping again cannot
    // give a second ticket if the first request did get through.
    state.error = { text: i18n.t("err_network"), field: null };
  } finally {
    if (!navigating) {
      state.busy = null;
      render();
      const target = { phone: $("phone"), notify: $("notify-phone") }[state.error?.field] ?? $("take-error");
      if (state.error) target.focus();
    }
  }
}

// ---------------------------------------------------------------- render

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function etaText(seconds) {
  if (seconds === null) return i18n.t("eta_none");
  return i18n.t("eta", { n: Math.max(1, Math.round(seconds / 60)) });
}

function serviceButton(service) {
  const button = el("button", "service-button");
  button.type = "button";
  button.dataset.service = service.id;
  button.disabled = state.busy !== null;
  button.setAttribute("aria-busy", String(state.busy === service.id));
  const text = el("span", "service-text");
  text.append(el("span", "service-name", service.name));
  text.append(
    el("span", "service-meta", `${i18n.t("waiting", { n: service.waiting })} · ${etaText(service.eta_seconds)}`),
  );
  button.append(text, el("span", "take", i18n.t(state.busy === service.id ? "taking" : "take")));
  button.addEventListener("click", () => take(service.id));
  return button;
}

function renderGroups(body) {
  const container = $("groups");
  const focused = document.activeElement?.dataset?.service;
  container.replaceChildren();
  for (const group of body.groups) {
    const services = body.services.filter((s) => s.group === group.id);
    if (services.length === 0) continue;
    const section = el("section", "group");
    const heading = el("h2", "group-head");
    heading.append(el("span", "group-name", group.name ?? groupNames.get(group.id) ?? group.id));
    heading.append(el("span", "group-waiting", i18n.t("waiting", { n: group.waiting })));
    section.append(heading);
    const list = el("ul", "services");
    for (const service of services) {
      const item = el("li");
      item.append(serviceButton(service));
      list.append(item);
    }
    section.append(list);
    container.append(section);
  }
  // A refresh rebuilds the list: keep the keyboard where it was.
  if (focused) container.querySelector(`[data-service="${CSS.escape(focused)}"]`)?.focus();
}

function isClosed(body) {
  const hint = state.closedHint;
  if (hint && performance.now() >= hint.until) state.closedHint = null;
  return body.open === false || state.closedHint !== null;
}

// The server's sentence names the next opening, in each language.
function closedMessage(body) {
  const said = body.open === false ? body.hours?.message : null;
  return said?.[i18n.lang] ?? said?.zh ?? (state.closedHint?.message || i18n.t("closed_unknown"));
}

function render() {
  $("lang").textContent = i18n.t("lang_switch");
  $("lang").lang = i18n.lang === "zh" ? "en" : "zh-CN";
  $("conn").textContent = i18n.t("conn_down");
  $("conn").hidden = !state.connDown;

  const mine = state.mine;
  $("mine").hidden = !mine;
  if (mine) {
    const name = config.services.find((s) => s.id === mine.service)?.name ?? mine.service;
    $("mine-text").textContent = i18n.t("mine_text", { number: mine.number, service: name });
    $("mine-link").href = config.ticket_path + encodeURIComponent(mine.id);
  }

  const body = state.services;
  if (!body) {
    document.body.dataset.view = "loading";
    return;
  }
  const enabled = body.remote.enabled;
  const closed = enabled && isClosed(body);
  document.body.dataset.view = !enabled ? "disabled" : closed ? "closed" : "offer";
  $("disabled").hidden = enabled;
  $("closed").hidden = !closed;
  $("offer").hidden = !enabled || closed;
  document.querySelector(".foot").hidden = !enabled || closed; // advice for ticket holders only
  if (closed) $("closed-message").textContent = closedMessage(body);
  if (!enabled || closed) return;

  const requirePhone = body.remote.require_phone;
  $("phone-area").hidden = !requirePhone;
  // Offered whenever the hall has a gateway; the number of the phone field
  // may serve (a box to tick), else one of its own.
  $("notify-area").hidden = !body.notify?.enabled;
  $("notify-same-row").hidden = !requirePhone;
  $("notify-own").hidden = requirePhone && $("notify-same").checked;
  const errors = { phone: $("phone-error"), notify: $("notify-error") };
  const field = state.error?.field ?? null;
  const target = errors[field] ?? $("take-error");
  for (const el of [errors.phone, errors.notify, $("take-error")]) el.hidden = !state.error || el !== target;
  if (state.error) target.textContent = state.error.text;
  $("phone").setAttribute("aria-invalid", String(field === "phone"));
  $("notify-phone").setAttribute("aria-invalid", String(field === "notify"));
  renderGroups(body);
}

$("lang").addEventListener("click", () => {
  i18n.lang = i18n.lang === "zh" ? "en" : "zh";
  state.error = null; // its words were in the other language
  render();
});
for (const [id, field] of [["phone", "phone"], ["notify-phone", "notify"]]) {
  $(id).addEventListener("input", () => {
    if (state.error?.field === field) {
      state.error = null;
      render();
    }
  });
}
$("notify-same").addEventListener("change", () => {
  if (state.error?.field === "notify") state.error = null;
  render();
});

i18n.apply();
render();
loadServices();
loadMine();
