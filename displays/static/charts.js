// Small charts in plain SVG for the dashboard: a meter, a stacked bar, and
// bars with a line. No library (the page loads nothing from outside and its
// CSP forbids inline styles): shapes get classes, dashboard.css colours them.

const NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

// The smallest "round" number (1, 2, 2.5, 5 × 10^n) at or above `value`, so
// an axis ends on a number people read at a glance.
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

// A horizontal meter filled to `share` (0–1; null draws the track only).
// Stretched to its box: viewBox units are percent.
export function meter(share, className = "meter") {
  const root = svg("svg", {
    class: className,
    viewBox: "0 0 100 10",
    preserveAspectRatio: "none",
    "aria-hidden": "true",
  });
  root.append(svg("rect", { class: "track", x: 0, y: 0, width: 100, height: 10 }));
  if (share !== null && share !== undefined && share > 0) {
    const width = Math.min(1, share) * 100;
    root.append(svg("rect", { class: "fill", x: 0, y: 0, width: width.toFixed(2), height: 10 }));
  }
  return root;
}

// One bar split into parts [{key, value}], each a rect of class `part` with
// data-key; nothing but the track when they add up to 0.
export function stackedBar(parts, className = "stack") {
  const root = svg("svg", {
    class: className,
    viewBox: "0 0 100 10",
    preserveAspectRatio: "none",
    "aria-hidden": "true",
  });
  root.append(svg("rect", { class: "track", x: 0, y: 0, width: 100, height: 10 }));
  const total = parts.reduce((sum, p) => sum + (p.value || 0), 0);
  if (total <= 0) return root;
  let x = 0;
  for (const p of parts) {
    if (!p.value) continue;
    const width = (p.value / total) * 100;
    root.append(
      svg("rect", {
        class: "part",
        "data-key": p.key,
        x: x.toFixed(2),
        y: 0,
        width: width.toFixed(2),
        height: 10,
      }),
    );
    x += width;
  }
  return root;
}

// Bars (left axis) with a line over them (right axis), drawn at the box's
// pixel size so text is never stretched.
// points: [{label, bar, line (null: a gap in the line)}]
// opts: {width, height, barTitle(p), lineTitle(p)}
export function barsWithLine(points, opts) {
  const { width, height } = opts;
  const root = svg("svg", {
    class: "bars-line",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
  });
  const pad = { left: 40, right: 44, top: 22, bottom: 26 };
  const plotW = Math.max(10, width - pad.left - pad.right);
  const plotH = Math.max(10, height - pad.top - pad.bottom);
  const barMax = niceMax(Math.max(0, ...points.map((p) => p.bar || 0)));
  const lineMax = niceMax(Math.max(0, ...points.map((p) => p.line ?? 0)));
  const y = (v, max) => pad.top + plotH - (v / max) * plotH;

  // Grid and the two axes' ticks.
  const axes = svg("g", { class: "axes" });
  const right = pad.left + plotW;
  for (const f of [0, 0.5, 1]) {
    const gy = pad.top + plotH - f * plotH;
    axes.append(
      svg("line", { class: f === 0 ? "base" : "grid", x1: pad.left, x2: right, y1: gy, y2: gy }),
      svg("text", { class: "tick left", x: pad.left - 6, y: gy + 4 }, fmtTick(barMax * f)),
      svg("text", { class: "tick right", x: right + 6, y: gy + 4 }, fmtTick(lineMax * f)),
    );
  }
  root.append(axes);

  const n = points.length;
  if (!n) return root;
  const slot = plotW / n;
  const barW = Math.max(2, Math.min(slot * 0.62, 56));
  const bars = svg("g", { class: "bars" });
  const labels = svg("g", { class: "labels" });
  // Only as many hour labels as fit, always the first and the last.
  const every = Math.max(1, Math.ceil(24 / Math.max(1, slot)));
  points.forEach((p, i) => {
    const cx = pad.left + slot * i + slot / 2;
    const value = p.bar || 0;
    const top = y(value, barMax);
    const rect = svg("rect", {
      class: "bar",
      "data-label": p.label,
      x: (cx - barW / 2).toFixed(1),
      y: top.toFixed(1),
      width: barW.toFixed(1),
      height: (pad.top + plotH - top).toFixed(1),
    });
    if (opts.barTitle) rect.append(svg("title", {}, opts.barTitle(p)));
    bars.append(rect);
    if (value > 0 && barW >= 14) {
      labels.append(svg("text", { class: "value", x: cx, y: top - 4 }, String(value)));
    }
    if (i % every === 0 || i === n - 1) {
      labels.append(svg("text", { class: "hour", x: cx, y: height - 8 }, p.label));
    }
  });
  root.append(bars);

  // The line, broken where an hour has no wait to show.
  let d = "";
  let pen = false;
  const dots = svg("g", { class: "dots" });
  points.forEach((p, i) => {
    const cx = pad.left + slot * i + slot / 2;
    if (p.line === null || p.line === undefined) {
      pen = false;
      return;
    }
    const cy = y(p.line, lineMax);
    d += `${pen ? "L" : "M"}${cx.toFixed(1)},${cy.toFixed(1)}`;
    pen = true;
    const dot = svg("circle", { class: "dot", cx: cx.toFixed(1), cy: cy.toFixed(1), r: 3.5 });
    if (opts.lineTitle) dot.append(svg("title", {}, opts.lineTitle(p)));
    dots.append(dot);
  });
  if (d) root.append(svg("path", { class: "line", d }));
  root.append(dots, labels);
  return root;
}

function fmtTick(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
