// The LED strip over one window: its name and the number it serves.
import { readConfig, showStatus, startScreen } from "./connection.js";
import { fitText } from "./fit.js";
import { HallState } from "./state.js";

const config = readConfig();
const state = new HallState(config);
const body = document.getElementById("strip");
const number = document.getElementById("strip-number");
const conn = document.getElementById("conn");

const TEXT = { paused: "暂停服务", closed: "窗口关闭" };

function show(flash) {
  const w = state.windows.get(config.window) ?? { status: "closed", number: null };
  body.dataset.status = w.status;
  number.dataset.number = w.status === "open" && w.number ? w.number : "";
  number.textContent = TEXT[w.status] ?? w.number ?? "欢迎光临";
  number.classList.toggle("is-number", Boolean(number.dataset.number));
  fitText(number);
  if (flash) {
    number.classList.remove("flash");
    void number.offsetWidth; // restart the animation for a repeated call
    number.classList.add("flash");
  }
}

window.qmsLink = startScreen(config, {
  onStatus: (s) => showStatus(conn, s),
  onSnapshot: (snap) => {
    state.reset(snap);
    show(false);
  },
  onEvent: (ev) => {
    const call = state.apply(ev);
    if (ev.window === config.window) show(Boolean(call));
  },
});

show(false);
new ResizeObserver(() => fitText(number)).observe(document.body);
