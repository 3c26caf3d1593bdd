// The manager's live dashboard (运营看板): sign in with a manager's (or
// admin's) token, read GET /dashboard, follow the hall's WebSocket so window
// states, current tickets and waiting counts move at once, and re-read the
// figures shortly after events and every few seconds. The top bar says
// whether the hall issues tickets (and when it next does), how many are
// parked and how many expired today.
import { barsWithLine, meter, niceMax, stackedBar } from "./charts.js";
import { HallLink, oneReadAtATime, readConfig, screenId, store, takeUrlToken } from "./connection.js";
import { DashboardModel } from "./dashboard-live.js";
import { I18n } from "./i18n.js";

const CATALOGUE = {
  zh: {
    dashboard: "运营看板",
    overview: "概览",
    as_of: "数据时间",
    report_day: "报表日期",
    report_download: "下载报表",
    "conn.connecting": "连接中",
    "conn.live": "已连接",
    "conn.down": "连接中断，正在重连",
    "conn.token": "需要令牌",
    sign_out: "退出登录",
    "kpi.waiting": "当前等候",
    "kpi.longest": "最长等候",
    "kpi.mean": "近1小时平均等候",
    "kpi.p90": "近1小时P90等候",
    "kpi.served": "今日办结",
    "kpi.windows": "开放窗口",
    "kpi.breaches": "超时等候",
    "kpi.rating": "今日好评率",
    "unit.people": "人",
    "unit.min": "分钟",
    "unit.windows": "/ {n} 个",
    "sub.groups": "{n} 个窗口组",
    "sub.longest_in": "{group}",
    "sub.nobody": "无人等候",
    "sub.called": "近1小时叫号 {n} 人",
    "sub.no_calls": "近1小时没有叫号",
    "sub.served": "叫号 {called} 人",
    "sub.windows": "暂停 {paused} · 关闭 {closed}",
    "sub.breaches": "超过业务目标等候时间",
    "sub.no_targets": "未设置目标等候时间",
    "sub.rated": "{n} 人评价",
    "sub.unrated": "暂无评价",
    queue_title: "等候情况",
    by_group: "按窗口组",
    by_service: "按业务",
    "col.service": "业务",
    "col.waiting": "等候",
    "col.eta": "新取号预计",
    "col.target": "目标",
    "col.over": "超时",
    "col.number": "号码",
    "col.waited": "已等",
    "col.over_by": "超出目标",
    "group.meta": "最长 {longest} · 开放 {open} 个窗口",
    "group.meta_idle": "开放 {open} 个窗口",
    "group.none_open": "没有开放的窗口",
    "eta.none": "待定",
    "eta.range": "{low}–{high}",
    windows_title: "窗口",
    "heat.hot_legend": "繁忙 ≥85%",
    "heat.warm_legend": "正常",
    "heat.cold_legend": "空闲 ≤40%",
    "status.open": "服务中",
    "status.paused": "暂停",
    "status.closed": "关闭",
    "win.idle": "空闲",
    "win.elapsed": "办理 {t}",
    "win.served": "已办 {n}",
    "win.util": "利用率 {p}",
    "win.util_none": "利用率 —",
    hours_title: "今日每小时",
    "legend.served": "办结人数",
    "legend.mean_wait": "平均等候（分钟）",
    "hours.none": "今天还没有办理记录",
    "hours.bar_title": "{hour}：办结 {served} 人，叫号 {called} 人",
    "hours.line_title": "{hour}：平均等候 {mins} 分钟",
    breaches_title: "超时等候",
    no_breaches: "没有超过目标时间的等候",
    quality_title: "预估准确度与评价",
    "acc.mae": "平均误差",
    "acc.in_range": "落在80%区间",
    "acc.samples": "样本",
    "acc.last_hour": "近1小时",
    "acc.today": "今日",
    ratings_title: "好差评",
    "ratings.total": "共 {n} 条 · 好评率 {share}",
    "ratings.none": "今天还没有评价",
    "score.very_satisfied": "非常满意",
    "score.satisfied": "满意",
    "score.neutral": "基本满意",
    "score.basic": "基本满意",
    "score.dissatisfied": "不满意",
    "score.very_dissatisfied": "非常不满意",
    screens_title: "屏幕",
    "screens.summary": "在线 {online} · 离线 {offline}",
    no_screens: "还没有屏幕连接过",
    "page.display": "大厅屏",
    "page.strip": "窗口屏",
    "page.console": "叫号台",
    "page.kiosk": "取号机",
    "page.other": "其他",
    "screen.online_since": "{since} 起在线",
    "screen.offline_since": "{since} 离线",
    signin_title: "运营看板登录",
    token_label: "请输入大厅管理员令牌",
    sign_in: "登录",
    "signin.bad_token": "令牌无效，请重新输入",
    "signin.wrong_role": "这是{role}令牌，不能查看运营看板：请使用大厅管理员令牌",
    "signin.unreachable": "暂时连不上服务器，正在重试…",
    "role.kiosk": "取号机",
    "role.clerk": "办事员",
    "role.display": "显示屏",
    "role.manager": "大厅管理员",
    "role.admin": "系统管理员",
    "notice.no_dashboard": "服务器暂时给不出看板数据（{status}），正在重试…",
    "notice.network": "网络连接中断，看板数据可能不是最新的，正在重试…",
    "notice.report_ok": "已下载 {day} 的报表",
    "notice.report_none": "没有 {day} 的报表：{message}",
    "notice.report_failed": "报表下载失败：{message}",
    "notice.report_network": "报表下载失败：连不上服务器",
    "dur.hm": "{h}小时{m}分",
    "dur.ms": "{m}分{s}秒",
    "dur.s": "{s}秒",
    "short.hm": "{h}小时{m}分",
    "short.ms": "{m}分{s}秒",
    "short.s": "{s}秒",
    "mins.n": "{n}分钟",
    "mins.lt1": "不到1分钟",
    "hour.label": "{h}时",
    "hall.open": "营业中",
    "hall.until": "{when} 停止取号",
    "hall.calling": "停止取号，仍在叫号",
    "hall.closed": "已闭厅",
    "hall.closed_by_manager": "已闭厅（手动）",
    "hall.opens": "{when} 开始取号",
    "hall.no_opening": "暂无开放安排",
    "hall.parked": "暂挂",
    "hall.expired": "今日过期",
    "day.tomorrow": "明天 {time}",
    "day.other": "{date} {time}",
  },
  en: {
    dashboard: "Dashboard",
    overview: "Overview",
    as_of: "Figures at",
    report_day: "Report day",
    report_download: "Download report",
    "conn.connecting": "Connecting",
    "conn.live": "Connected",
    "conn.down": "Connection lost, retrying",
    "conn.token": "Token needed",
    sign_out: "Sign out",
    "kpi.waiting": "Waiting now",
    "kpi.longest": "Longest wait",
    "kpi.mean": "Mean wait, last hour",
    "kpi.p90": "P90 wait, last hour",
    "kpi.served": "Served today",
    "kpi.windows": "Open windows",
    "kpi.breaches": "Past target",
    "kpi.rating": "Satisfied today",
    "unit.people": "",
    "unit.min": "min",
    "unit.windows": "of {n}",
    "sub.groups": "groups: {n}",
    "sub.longest_in": "{group}",
    "sub.nobody": "Nobody waiting",
    "sub.called": "{n} called in the last hour",
    "sub.no_calls": "No calls in the last hour",
    "sub.served": "{called} called",
    "sub.windows": "{paused} paused · {closed} closed",
    "sub.breaches": "Waited past the target",
    "sub.no_targets": "No target waits set",
    "sub.rated": "ratings: {n}",
    "sub.unrated": "No ratings yet",
    queue_title: "Waiting",
    by_group: "By window group",
    by_service: "By service",
    "col.service": "Service",
    "col.waiting": "Waiting",
    "col.eta": "New ticket waits",
    "col.target": "Target",
    "col.over": "Past",
    "col.number": "Number",
    "col.waited": "Waited",
    "col.over_by": "Over target",
    "group.meta": "longest {longest} · open windows: {open}",
    "group.meta_idle": "open windows: {open}",
    "group.none_open": "no window open",
    "eta.none": "unknown",
    "eta.range": "{low}–{high}",
    windows_title: "Windows",
    "heat.hot_legend": "busy ≥85%",
    "heat.warm_legend": "normal",
    "heat.cold_legend": "idle ≤40%",
    "status.open": "Open",
    "status.paused": "Paused",
    "status.closed": "Closed",
    "win.idle": "idle",
    "win.elapsed": "for {t}",
    "win.served": "served {n}",
    "win.util": "busy {p}",
    "win.util_none": "busy —",
    hours_title: "Today by hour",
    "legend.served": "Served",
    "legend.mean_wait": "Mean wait (min)",
    "hours.none": "Nothing served yet today",
    "hours.bar_title": "{hour} — {served} served, {called} called",
    "hours.line_title": "{hour} — mean wait {mins} min",
    breaches_title: "Past target",
    no_breaches: "Nobody has waited past a target",
    quality_title: "Estimates and ratings",
    "acc.mae": "Mean error",
    "acc.in_range": "Inside 80% range",
    "acc.samples": "Samples",
    "acc.last_hour": "Last hour",
    "acc.today": "Today",
    ratings_title: "Ratings",
    "ratings.total": "ratings: {n} · {share} satisfied",
    "ratings.none": "No ratings yet today",
    "score.very_satisfied": "Very satisfied",
    "score.satisfied": "Satisfied",
    "score.neutral": "Fair",
    "score.basic": "Fair",
    "score.dissatisfied": "Dissatisfied",
    "score.very_dissatisfied": "Very dissatisfied",
    screens_title: "Screens",
    "screens.summary": "{online} online · {offline} offline",
    no_screens: "No screen has connected yet",
    "page.display": "Hall screen",
    "page.strip": "Window strip",
    "page.console": "Console",
    "page.kiosk": "Kiosk",
    "page.other": "Other",
    "screen.online_since": "online since {since}",
    "screen.offline_since": "offline since {since}",
    signin_title: "Dashboard sign-in",
    token_label: "Manager token",
    sign_in: "Sign in",
    "signin.bad_token": "Token rejected, please enter it again",
    "signin.wrong_role": "This is a {role} token: the dashboard needs a manager's token",
    "signin.unreachable": "Cannot reach the server, retrying…",
    "role.kiosk": "kiosk",
    "role.clerk": "clerk",
    "role.display": "display",
    "role.manager": "manager",
    "role.admin": "admin",
    "notice.no_dashboard": "The server cannot give the figures now ({status}); retrying…",
    "notice.network": "Connection lost: the figures may be out of date; retrying…",
    "notice.report_ok": "Report for {day} downloaded",
    "notice.report_none": "No report for {day}: {message}",
    "notice.report_failed": "Report download failed: {message}",
    "notice.report_network": "Report download failed: cannot reach the server",
    "dur.hm": "{h} h {m} min",
    "dur.ms": "{m} min {s} s",
    "dur.s": "{s} s",
    "short.hm": "{h}h {m}m",
    "short.ms": "{m}m {s}s",
    "short.s": "{s}s",
    "mins.n": "{n} min",
    "mins.lt1": "under 1 min",
    "hour.label": "{h}:00",
    "hall.open": "Open",
    "hall.until": "issuing until {when}",
    "hall.calling": "Not issuing, still calling",
    "hall.closed": "Closed",
    "hall.closed_by_manager": "Closed by a manager",
    "hall.opens": "opens {when}",
    "hall.no_opening": "no opening scheduled",
    "hall.parked": "Parked",
    "hall.expired": "Expired today",
    "day.tomorrow": "tomorrow {time}",
    "day.other": "{date} {time}",
  },
};

const ROLES_ALLOWED = new Set(["manager", "admin"]);
const REQUEST_TIMEOUT_MS = 8_000;
// Events in a burst cost one read; the figures follow within this.
const EVENT_DEBOUNCE_MS = 250;
// Between events the figures still move (waits grow, screens drop off).
const POLL_MS = 5_000;
// A replica reads the figures every couple of seconds: while its read is
// older than the last event seen, ask again this often, this many times.
const CHASE_MS = 500;
const CHASE_MAX = 8;
const SIGNIN_RETRY_MS = 3_000;
// Figures older than this are marked stale beside their time.
const STALE_MS = 15_000;
// Utilisation of the open time: at or above is hot, at or below is cold.
const HOT = 0.85;
const COLD = 0.4;
const SCORES = ["very_satisfied", "satisfied", "neutral", "dissatisfied", "very_dissatisfied"];

const config = readConfig();
const i18n = new I18n(CATALOGUE);
const $ = (id) => document.getElementById(id);
const tokenKey = `qms.token.${config.hall.id}.dashboard`;
const model = new DashboardModel(config);
const groupNames = new Map(config.groups.map((g) => [g.id, g.name]));
const serviceConf = new Map(config.services.map((s) => [s.id, s]));
const zone = config.hall.timezone;

let token = null;
let receivedAt = 0; // Date.now() of the last good read
let notice = null; // {kind, key, vars}: re-rendered on a language switch
let signinNote = null; // {key, role?}: the sign-in form's reason
let dayChosen = false; // the manager picked a report day: leave it

// ------------------------------------------------------------- formatting

const clock = new Intl.DateTimeFormat("en-GB", {
  timeZone: zone,
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});
const clockHm = new Intl.DateTimeFormat("en-GB", {
  timeZone: zone,
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});
// en-CA writes dates as YYYY-MM-DD, what <input type=date> takes.
const isoDay = new Intl.DateTimeFormat("en-CA", {
  timeZone: zone,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
});

const pad = (n) => String(n).padStart(2, "0");
const known = (v) => v !== null && v !== undefined;

// `kind` "short": for a window card, where English words do not fit.
function dur(seconds, kind = "dur") {
  if (!known(seconds)) return "—";
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return i18n.t(`${kind}.hm`, { h, m: pad(m) });
  if (m) return i18n.t(`${kind}.ms`, { m, s: pad(s) });
  return i18n.t(`${kind}.s`, { s });
}

// Minutes for a figure: one decimal under ten minutes, whole above.
function mins(seconds) {
  if (!known(seconds)) return "—";
  const m = seconds / 60;
  return m < 10 ? m.toFixed(1) : String(Math.round(m));
}

function roundMins(seconds) {
  return i18n.t("mins.n", { n: Math.max(0, Math.round(seconds / 60)) });
}

function percent(share) {
  if (!known(share)) return "—";
  return `${Math.round(share * 100)}%`;
}

function serviceName(id) {
  return serviceConf.get(id)?.name ?? id;
}

function groupName(id) {
  return groupNames.get(id) ?? id;
}

function heat(utilisation) {
  if (!known(utilisation)) return "none";
  if (utilisation >= HOT) return "hot";
  if (utilisation <= COLD) return "cold";
  return "warm";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// ------------------------------------------------------------------ HTTP

async function request(path) {
  const r = await fetch(path, {
    headers: { Authorization: `Bearer ${token}` },
    cache: "no-store",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  let data = null;
  try {
    data = await r.json();
  } catch {
    data = null;
  }
  return { status: r.status, data };
}

// ---------------------------------------------------------------- notices

function say(kind, key, vars = {}) {
  notice = kind ? { kind, key, vars } : null;
  showNotice();
}

function showNotice() {
  const box = $("notice");
  box.hidden = !notice;
  box.dataset.kind = notice?.kind ?? "";
  box.textContent = notice ? i18n.t(notice.key, notice.vars) : "";
}

// A notice about reading the figures goes once a read succeeds; one about a
// download stays until the next.
function clearReadNotice() {
  if (notice && notice.key.startsWith("notice.") && !notice.key.startsWith("notice.report")) {
    say(null);
  }
}

// ---------------------------------------------------------------- sign-in

// A screen id of its own for presence (`dashboard-…`), though the gateway
// hears the page as `other`.
const link = new HallLink(config, screenId({ ...config, page: "dashboard" }), {
  onSnapshot: (frame) => {
    model.applySnapshot(frame);
    drawLive();
    readSoon(0); // after a reconnect: whatever was missed
  },
  onEvent: (frame) => {
    model.applyEvent(frame);
    drawLive();
    chases = 0;
    readSoon(EVENT_DEBOUNCE_MS);
  },
  onStatus: (state) => showConn(state),
  // The link's token check was refused: ask /credential again for why.
  onRefused: () => signIn(token),
});

function ask(note) {
  link.stop();
  token = null;
  signinNote = note;
  document.body.dataset.signedIn = "false";
  showConn("token");
  showSignin();
  $("token-form").hidden = false;
  const input = $("token-input");
  input.value = "";
  input.focus();
}

function showSignin() {
  const error = $("token-error");
  error.hidden = !signinNote;
  // A role is named in the chosen language, so it is kept raw in the note.
  const vars = signinNote?.role ? { role: roleName(signinNote.role) } : {};
  error.textContent = signinNote ? i18n.t(signinNote.key, vars) : "";
}

function roleName(role) {
  return `role.${role}` in CATALOGUE.zh ? i18n.t(`role.${role}`) : role;
}

let signinRetry = null;

async function signIn(candidate) {
  clearTimeout(signinRetry);
  token = candidate;
  let answer;
  try {
    answer = await request(config.credential_path);
  } catch {
    answer = null;
  }
  if (token !== candidate) return; // signed out or another token meanwhile
  if (answer && answer.status === 401) {
    store.remove(tokenKey);
    ask({ key: "signin.bad_token" });
    return;
  }
  if (answer && answer.status === 200 && !ROLES_ALLOWED.has(answer.data?.role)) {
    store.remove(tokenKey);
    const role = answer.data?.role ?? "?";
    ask({ key: "signin.wrong_role", role });
    return;
  }
  if (!answer || answer.status !== 200) {
    // The server is down or restarting: keep the token, try again.
    signinNote = { key: "signin.unreachable" };
    showSignin();
    $("token-form").hidden = false;
    signinRetry = setTimeout(() => signIn(candidate), SIGNIN_RETRY_MS);
    return;
  }
  store.set(tokenKey, candidate);
  signinNote = null;
  $("token-form").hidden = true;
  document.body.dataset.signedIn = "true";
  read();
  link.start(candidate);
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const candidate = $("token-input").value.trim();
  if (candidate) signIn(candidate);
});

$("sign-out").addEventListener("click", () => {
  store.remove(tokenKey);
  say(null);
  ask(null);
});

// ---------------------------------------------------------------- reading

let readTimer = null;
let readDue = 0; // performance.now() the scheduled read is due at
let chases = 0;

// One scheduled read at a time: a request for an earlier one brings it
// forward, one for a later one is already served by it.
function readSoon(delay) {
  if (!token) return;
  const due = performance.now() + delay;
  if (readTimer !== null) {
    if (due >= readDue) return;
    clearTimeout(readTimer);
  }
  readDue = due;
  readTimer = setTimeout(() => {
    readTimer = null;
    read();
  }, delay);
}

const readSerially = oneReadAtATime(readOnce, () => Boolean(token));

async function read() {
  if (!(await readSerially())) return; // a read in flight will read again
  if (token && model.behind && chases < CHASE_MAX) {
    chases += 1;
    readSoon(CHASE_MS);
  }
}

async function readOnce() {
  const asked = token;
  let answer;
  try {
    answer = await request(config.dashboard_path);
  } catch {
    if (token === asked) say("warn", "notice.network");
    return;
  }
  if (token !== asked) return;
  if (answer.status === 401 || answer.status === 403) {
    signIn(asked);
    return;
  }
  if (answer.status !== 200 || !answer.data) {
    say("warn", "notice.no_dashboard", { status: answer.status });
    return;
  }
  receivedAt = Date.now();
  clearReadNotice();
  if (model.setBase(answer.data)) drawAll();
}

setInterval(() => readSoon(0), POLL_MS);

// --------------------------------------------------------------- drawing

function drawAll() {
  const base = model.base;
  if (!base) return;
  document.body.dataset.loaded = "true";
  document.body.dataset.seq = String(base.seq);
  $("as-of").textContent = clock.format(new Date(base.at));
  $("as-of").dateTime = base.at;
  defaultReportDay();
  drawServices();
  drawHours();
  drawQuality();
  drawScreens();
  drawLive();
}

// Everything the socket moves: window cards, group bars, breaches, KPIs.
function drawLive() {
  if (!model.base) return;
  const windows = model.windows();
  const groups = model.groups();
  drawGroups(groups);
  drawWindows(windows);
  drawBreaches();
  drawKpis(windows, groups);
  drawHall();
  tick();
}

function kpi(id, value, unit, sub, state) {
  const card = $(id);
  card.querySelector(".kpi-value b").textContent = value;
  card.querySelector(".kpi-value .unit").textContent = unit;
  card.querySelector(".kpi-sub").textContent = sub;
  card.dataset.state = state ?? "";
}

// "17:30", "明天 08:30", "11-23 08:30": a moment in the hall's zone, said
// against the server's today.
function when(iso) {
  const at = new Date(iso);
  const time = clockHm.format(at);
  const day = isoDay.format(at);
  const today = isoDay.format(new Date(model.serverNow()));
  if (day === today) return time;
  const tomorrow = isoDay.format(new Date(Date.parse(`${today}T12:00:00Z`) + 86_400_000));
  if (day === tomorrow) return i18n.t("day.tomorrow", { time });
  return i18n.t("day.other", { date: day.slice(5), time });
}

// Open or closed as the last read said, or as a `hall` event since says
// (its next opening then waits for the read the event brings).
function drawHall() {
  const { hours, event } = model.hall();
  const box = $("hall-state");
  let open = hours ? hours.open : null;
  if (event) open = event === "open";
  box.dataset.open = open === null ? "" : String(open);
  let text = "—";
  let sub = "";
  if (open === true) {
    text = i18n.t("hall.open");
    const closes = hours?.open ? hours.closes_at : null;
    // A hall without hours "closes" at midnight: not worth saying.
    if (closes && clockHm.format(new Date(closes)) !== "00:00") sub = i18n.t("hall.until", { when: when(closes) });
  } else if (open === false) {
    const known = hours && hours.open === false ? hours : null;
    if (known?.closed_by_manager) text = i18n.t("hall.closed_by_manager");
    else if (known?.in_span && event !== "closed") text = i18n.t("hall.calling");
    else text = i18n.t("hall.closed");
    if (known) sub = known.opens_at ? i18n.t("hall.opens", { when: when(known.opens_at) }) : i18n.t("hall.no_opening");
  }
  $("hall-state-text").textContent = text;
  $("hall-state-when").textContent = sub;
  box.dataset.opensAt = open === false ? (hours?.opens_at ?? "") : "";
  const counts = { "hall-parked": model.parked(), "hall-expired": model.expiredToday() };
  for (const [id, n] of Object.entries(counts)) {
    const el = $(id);
    el.dataset.n = String(n);
    el.querySelector("b").textContent = String(n);
  }
}

function drawKpis(windows, groups) {
  const base = model.base;
  const waiting = groups.reduce((n, g) => n + g.waiting, 0);
  const groupCount = i18n.t("sub.groups", { n: groups.length });
  kpi("kpi-waiting", String(waiting), i18n.t("unit.people"), groupCount);

  let longest = null;
  for (const g of groups) {
    if (known(g.oldest_wait_seconds) && !(longest?.oldest_wait_seconds >= g.oldest_wait_seconds)) {
      longest = g;
    }
  }
  kpi(
    "kpi-longest",
    longest ? mins(longest.oldest_wait_seconds) : "—",
    longest ? i18n.t("unit.min") : "",
    longest ? groupName(longest.id) : i18n.t("sub.nobody"),
  );

  const hour = base.waits?.last_hour ?? {};
  const calls = hour.called ?? 0;
  const callsSub = calls ? i18n.t("sub.called", { n: calls }) : i18n.t("sub.no_calls");
  const hasMean = known(hour.mean_seconds);
  const hasP90 = known(hour.p90_seconds);
  kpi("kpi-mean", mins(hour.mean_seconds), hasMean ? i18n.t("unit.min") : "", callsSub);
  kpi("kpi-p90", mins(hour.p90_seconds), hasP90 ? i18n.t("unit.min") : "", callsSub);

  const served = base.hours.reduce((n, h) => n + (h.served ?? 0), 0);
  const called = base.hours.reduce((n, h) => n + (h.called ?? 0), 0);
  kpi("kpi-served", String(served), i18n.t("unit.people"), i18n.t("sub.served", { called }));

  const by = { open: 0, paused: 0, closed: 0 };
  for (const w of windows) by[w.status] = (by[w.status] ?? 0) + 1;
  kpi(
    "kpi-windows",
    String(by.open),
    i18n.t("unit.windows", { n: windows.length }),
    i18n.t("sub.windows", by),
    by.open === 0 && waiting > 0 ? "alert" : "",
  );

  // The body lists the longest few breaches; the services' counts are all.
  const listed = base.breaches.length;
  const total = Math.max(listed, base.services.reduce((n, sv) => n + (sv.over_target ?? 0), 0));
  const breaches = total - (listed - model.breaches().length);
  const targets = config.services.some((s) => s.target_minutes !== null);
  kpi(
    "kpi-breaches",
    targets ? String(breaches) : "—",
    targets ? i18n.t("unit.people") : "",
    targets ? i18n.t("sub.breaches") : i18n.t("sub.no_targets"),
    breaches > 0 ? "alert" : "",
  );

  const ratings = base.ratings ?? {};
  const share = ratings.satisfied_share;
  kpi(
    "kpi-rating",
    known(share) ? String(Math.round(share * 100)) : "—",
    known(share) ? "%" : "",
    ratings.rated ? i18n.t("sub.rated", { n: ratings.rated }) : i18n.t("sub.unrated"),
  );
}

function drawGroups(groups) {
  const box = $("group-bars");
  const max = niceMax(Math.max(1, ...groups.map((g) => g.waiting)));
  const rows = groups.map((g) => {
    const row = el("div", "group-row");
    row.dataset.group = g.id;
    row.dataset.waiting = String(g.waiting);
    row.dataset.open = String(g.open_windows);
    const head = el("div", "group-head");
    head.append(el("span", "group-name", groupName(g.id)));
    const count = el("span", "group-count");
    count.append(el("b", null, String(g.waiting)), el("span", "unit", i18n.t("unit.people")));
    head.append(count);
    row.append(head, meter(g.waiting / max, "meter group-meter"));
    let meta;
    if (g.open_windows === 0) meta = i18n.t("group.none_open");
    else if (g.oldest_wait_seconds !== null) {
      meta = i18n.t("group.meta", { longest: dur(g.oldest_wait_seconds), open: g.open_windows });
    } else meta = i18n.t("group.meta_idle", { open: g.open_windows });
    const metaEl = el("p", "group-meta", meta);
    if (g.open_windows === 0 && g.waiting > 0) metaEl.dataset.alert = "true";
    if (g.oldest_wait_seconds !== null) metaEl.dataset.oldest = String(g.oldest_wait_seconds);
    row.append(metaEl);
    return row;
  });
  box.replaceChildren(...rows);
}

function drawServices() {
  const figures = new Map(model.base.services.map((s) => [s.id, s]));
  const extra = [...figures.keys()].filter((id) => !serviceConf.has(id));
  const ids = [...config.services.map((s) => s.id), ...extra];
  const rows = ids.map((id) => {
    const f = figures.get(id) ?? {};
    const tr = el("tr");
    tr.dataset.service = id;
    const over = f.over_target ?? 0;
    tr.classList.toggle("breach", over > 0);
    const name = el("td", "service");
    name.append(el("span", "service-name", serviceName(id)));
    name.append(el("span", "service-group", groupName(serviceConf.get(id)?.group ?? f.group)));
    tr.append(name);
    tr.append(el("td", "num waiting", String(f.waiting ?? 0)));
    let eta = i18n.t("eta.none");
    if (known(f.eta_seconds)) {
      eta = f.eta_seconds < 60 ? i18n.t("mins.lt1") : roundMins(f.eta_seconds);
      if (known(f.eta_low_seconds) && known(f.eta_high_seconds)) {
        const low = Math.round(f.eta_low_seconds / 60);
        const high = Math.round(f.eta_high_seconds / 60);
        if (high > low) eta += ` (${i18n.t("eta.range", { low, high })})`;
      }
    }
    tr.append(el("td", "num eta", eta));
    const target = f.target_minutes ?? serviceConf.get(id)?.target_minutes ?? null;
    tr.append(el("td", "num target", target === null ? "—" : i18n.t("mins.n", { n: target })));
    const overCell = el("td", "num over", target === null ? "—" : String(over));
    tr.append(overCell);
    return tr;
  });
  $("service-body").replaceChildren(...rows);
}

function drawWindows(windows) {
  const grid = $("window-grid");
  const cards = windows.map((w) => {
    const li = el("li", "win");
    li.dataset.window = w.id;
    li.dataset.status = w.status;
    li.dataset.heat = heat(w.utilisation);
    li.dataset.number = w.ticket?.number ?? "";
    const head = el("div", "win-head");
    const name = el("span", "win-name", w.name);
    name.title = w.name; // a long name is cut short on its card
    head.append(name, el("span", "win-status", i18n.t(`status.${w.status}`)));
    const now = el("div", "win-now");
    if (w.ticket) {
      now.append(
        el("span", "win-number", w.ticket.number),
        el("span", "win-service", serviceName(w.ticket.service)),
      );
    } else {
      const idle = w.status === "open" ? i18n.t("win.idle") : "";
      // The word stands in for the number on a dense card, which has no pill.
      const word = w.status === "open" ? idle : i18n.t(`status.${w.status}`);
      now.append(
        el("span", "win-number idle", "—"),
        el("span", "win-word", word),
        el("span", "win-service", idle),
      );
    }
    const meta = el("div", "win-meta");
    const elapsed = el("span", "win-elapsed");
    if (w.ticket?.called_at) elapsed.dataset.calledAt = w.ticket.called_at;
    meta.append(elapsed, el("span", "win-served", i18n.t("win.served", { n: w.served })));
    const util = el("div", "win-util");
    const share = known(w.utilisation)
      ? i18n.t("win.util", { p: percent(w.utilisation) })
      : i18n.t("win.util_none");
    util.append(meter(w.utilisation, "meter util-meter"), el("span", "win-util-text", share));
    li.append(head, now, meta, util);
    return li;
  });
  grid.replaceChildren(...cards);
  // A large hall's cards shrink before the panel has to scroll.
  grid.dataset.dense = "false";
  if (grid.scrollHeight > grid.clientHeight) grid.dataset.dense = "true";
}

function drawBreaches() {
  const list = model.breaches();
  const rows = list.map((b) => {
    const tr = el("tr", "breach");
    tr.dataset.number = b.number;
    tr.dataset.service = b.service;
    tr.append(el("td", "number", b.number));
    const service = el("td", "service");
    service.append(el("span", "service-name", serviceName(b.service)));
    tr.append(service);
    const waited = el("td", "num waited", dur(b.waited_seconds));
    waited.dataset.base = String(b.waited_seconds - model.ageSeconds());
    tr.append(waited);
    const over = el("td", "num over-by", `+${dur(b.waited_seconds - b.target_seconds)}`);
    over.dataset.target = String(b.target_seconds);
    tr.append(over);
    return tr;
  });
  $("breach-body").replaceChildren(...rows);
  $("breach-empty").hidden = list.length > 0;
  const count = $("breach-count");
  count.textContent = String(list.length);
  count.dataset.zero = String(list.length === 0);
}

function hourRange(hours, at) {
  const seen = hours.map((h) => Number(h.hour));
  const now = Number(at.slice(11, 13));
  if (!seen.length) return [];
  const first = Math.min(...seen);
  const last = Math.max(...seen, Number.isNaN(now) ? 0 : now);
  const out = [];
  for (let h = first; h <= last; h++) out.push(h);
  return out;
}

function drawHours() {
  const box = $("hours-chart");
  const base = model.base;
  const byHour = new Map(base.hours.map((h) => [Number(h.hour), h]));
  const points = hourRange(base.hours, base.at).map((h) => {
    const f = byHour.get(h) ?? { served: 0, called: 0, mean_wait_seconds: null };
    return {
      label: i18n.t("hour.label", { h }),
      bar: f.served ?? 0,
      called: f.called ?? 0,
      line: known(f.mean_wait_seconds) ? f.mean_wait_seconds / 60 : null,
    };
  });
  // Tickets issued but nobody called yet is no chart either.
  if (!points.some((p) => p.bar > 0 || p.line !== null)) {
    box.replaceChildren(el("p", "empty", i18n.t("hours.none")));
    return;
  }
  const width = Math.max(120, Math.floor(box.clientWidth));
  const height = Math.max(80, Math.floor(box.clientHeight));
  const chart = barsWithLine(points, {
    width,
    height,
    barTitle: (p) => i18n.t("hours.bar_title", { hour: p.label, served: p.bar, called: p.called }),
    lineTitle: (p) => i18n.t("hours.line_title", { hour: p.label, mins: p.line.toFixed(1) }),
  });
  chart.setAttribute("aria-label", i18n.t("hours_title"));
  box.replaceChildren(chart);
}

function drawQuality() {
  const estimates = model.base.estimates ?? {};
  for (const span of ["last_hour", "today"]) {
    const row = $(`acc-${span}`);
    const e = estimates[span] ?? {};
    const mae = e.mae_seconds;
    row.querySelector(".mae").textContent = known(mae)
      ? i18n.t("mins.n", { n: (mae / 60).toFixed(1) })
      : "—";
    const inRange = row.querySelector(".in-range");
    inRange.textContent = percent(e.in_range);
    // An 80% range should hold about 80% of the waits; far fewer means the
    // estimates mislead the people who read them.
    inRange.dataset.state = known(e.in_range) && e.in_range < 0.6 ? "alert" : "";
    row.querySelector(".samples").textContent = String(e.samples ?? 0);
  }

  const ratings = model.base.ratings ?? { rated: 0, scores: {} };
  const scores = ratings.scores ?? {};
  // The middle level may come as `basic` (基本满意) rather than `neutral`;
  // a level this page has no words for is shown by its key, last.
  const middle = !("neutral" in scores) && "basic" in scores ? "basic" : "neutral";
  const scale = SCORES.map((k) => (k === "neutral" ? middle : k));
  const order = [...scale, ...Object.keys(scores).filter((k) => !scale.includes(k))];
  const parts = order.map((k) => ({ key: k, value: scores[k] ?? 0 }));
  $("ratings-total").textContent = ratings.rated
    ? i18n.t("ratings.total", { n: ratings.rated, share: percent(ratings.satisfied_share) })
    : i18n.t("ratings.none");
  $("ratings-bar").replaceChildren(stackedBar(parts, "stack ratings-stack"));
  const legend = parts.map((p) => {
    const li = el("li");
    li.dataset.key = p.key;
    const label = `score.${p.key}` in CATALOGUE.zh ? i18n.t(`score.${p.key}`) : p.key;
    li.append(el("span", "chip"), el("span", "label", label), el("b", null, String(p.value)));
    return li;
  });
  $("ratings-legend").replaceChildren(...legend);
}

function drawScreens() {
  const screens = model.base.screens ?? { online: [], offline: [] };
  const windowNames = new Map(config.windows.map((w) => [w.id, w.name]));
  // An offline screen's page is not remembered: its id says what it was.
  const describe = (s) => {
    if (!s.page) return "";
    // Dashboards join as `other`; their made-up id says which they are.
    if (s.page === "other" && s.id.startsWith("dashboard-")) return i18n.t("dashboard");
    const page = `page.${s.page}` in CATALOGUE.zh ? i18n.t(`page.${s.page}`) : s.page;
    return s.window ? `${page} · ${windowNames.get(s.window) ?? s.window}` : page;
  };
  // Problems first: a screen that dropped off is what a manager acts on.
  const items = [
    ...screens.offline.map((s) => ({ ...s, online: false, at: s.last_seen })),
    ...screens.online.map((s) => ({ ...s, online: true, at: s.since })),
  ];
  const rows = items.map((s) => {
    const li = el("li", "screen");
    li.dataset.online = String(s.online);
    li.dataset.screen = s.id;
    const since = s.at ? clockHm.format(new Date(s.at)) : "—";
    const when = i18n.t(s.online ? "screen.online_since" : "screen.offline_since", { since });
    li.append(
      el("span", "dot"),
      el("span", "screen-id", s.id),
      el("span", "screen-page", describe(s)),
      el("span", "screen-when", when),
    );
    return li;
  });
  $("screen-list").replaceChildren(...rows);
  $("screens-empty").hidden = items.length > 0;
  const summary = $("screens-summary");
  summary.textContent = i18n.t("screens.summary", {
    online: screens.online.length,
    offline: screens.offline.length,
  });
  summary.dataset.alert = String(screens.offline.length > 0);
}

// Once a second: time at each window, waits that keep growing, and whether
// the figures have gone stale.
function tick() {
  const now = model.serverNow();
  for (const span of document.querySelectorAll(".win-elapsed")) {
    const calledAt = span.dataset.calledAt;
    const t = calledAt ? dur((now - Date.parse(calledAt)) / 1000, "short") : null;
    span.textContent = t ? i18n.t("win.elapsed", { t }) : "";
  }
  const age = model.ageSeconds();
  for (const td of document.querySelectorAll("#breach-body td.waited")) {
    td.textContent = dur(Number(td.dataset.base) + age);
  }
  for (const td of document.querySelectorAll("#breach-body td.over-by")) {
    const waited = Number(td.parentElement.querySelector("td.waited").dataset.base) + age;
    td.textContent = `+${dur(waited - Number(td.dataset.target))}`;
  }
  const stale = receivedAt > 0 && Date.now() - receivedAt > STALE_MS;
  $("as-of").dataset.stale = String(stale);
}

setInterval(() => {
  if (!model.base) return;
  // The longest waits grow by the second too (cheap: a few groups, 8 cards).
  const groups = model.groups();
  drawGroups(groups);
  drawKpis(model.windows(), groups);
  tick();
}, 1000);

function showConn(state) {
  const conn = $("conn");
  conn.dataset.state = state;
  const label = conn.querySelector(".label");
  label.dataset.i18n = `conn.${state}`;
  label.textContent = i18n.t(`conn.${state}`);
}

// Charts are drawn at their box's pixel size: again when the box changes.
let drawnSize = "";
new ResizeObserver(() => {
  const box = $("hours-chart");
  const size = `${box.clientWidth}x${box.clientHeight}`;
  if (size === drawnSize) return;
  drawnSize = size;
  if (model.base) drawHours();
}).observe($("hours-chart"));

// ----------------------------------------------------------------- report

function today() {
  // The server's day: its read time carries the hall's offset.
  const at = model.base?.at;
  return at ? at.slice(0, 10) : isoDay.format(new Date());
}

function defaultReportDay() {
  const input = $("report-day");
  input.max = today();
  if (!dayChosen) input.value = today();
}

$("report-day").addEventListener("change", () => {
  dayChosen = true;
});

function fileName(disposition, day) {
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition ?? "");
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      /* fall through */
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(disposition ?? "");
  return plain ? plain[1] : `${config.hall.id}-${day}.csv`;
}

// The report needs the bearer header, so a plain link cannot fetch it: it
// is fetched here and handed to the browser as a file.
async function downloadReport(day) {
  const button = $("report-download");
  button.disabled = true;
  try {
    let r;
    try {
      r = await fetch(`${config.report_path}${day}.csv`, {
        headers: { Authorization: `Bearer ${token}` },
        cache: "no-store",
        signal: AbortSignal.timeout(30_000),
      });
    } catch {
      say("error", "notice.report_network");
      return;
    }
    if (r.status === 401 || r.status === 403) {
      signIn(token);
      return;
    }
    if (!r.ok) {
      let message = `HTTP ${r.status}`;
      try {
        message = (await r.json())?.error?.message ?? message;
      } catch {
        /* not JSON */
      }
      const key = r.status === 404 ? "notice.report_none" : "notice.report_failed";
      say("error", key, { day, message });
      return;
    }
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const a = el("a");
    a.href = url;
    a.download = fileName(r.headers.get("content-disposition"), day);
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    // The download has its own copy by then.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    say("ok", "notice.report_ok", { day });
  } finally {
    button.disabled = false;
  }
}

$("report-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const day = $("report-day").value;
  if (/^\d{4}-\d{2}-\d{2}$/.test(day) && token) downloadReport(day);
});

// --------------------------------------------------------------- language

function applyLanguage() {
  i18n.apply();
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.setAttribute("aria-pressed", String(b.dataset.lang === i18n.lang));
  }
  document.title = `${i18n.t("dashboard")} · ${config.hall.name}`;
  if (model.base) drawAll();
  showNotice();
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

// For tests and the curious: the live link and the model.
window.qmsDashboard = { link, model };
