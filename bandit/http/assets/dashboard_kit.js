// cartwheel dashboard, the kit: number formats, DOM and SVG builders, the one-line
// explanations of every KPI, and the line chart. Loaded first (bandit/http/dashboard.py joins
// the dashboard's scripts into one); every number is written with textContent (never
// innerHTML), with data-path (where it sits in the report) and data-format, so a test can
// check it against the report.
"use strict";

const COLORS = ["#3358d4", "#e5484d", "#30a46c", "#f76b15", "#8e4ec6", "#0d9488", "#a18072",
  "#d6409f", "#5b5bd6", "#978365"];
const SVG_NS = "http://www.w3.org/2000/svg";

// money in the shop's currency with cents, differences signed; rates as percentages and their
// differences in percentage points
const fmt = {
  int: (x) => Math.round(x).toLocaleString("en-US"),
  pct: (x) => (100 * x).toFixed(2) + "%",
  money: (x) => x.toFixed(2),
  mdiff: (x) => (x >= 0 ? "+" : "") + x.toFixed(2),
  pp: (x) => (x >= 0 ? "+" : "") + (100 * x).toFixed(2),
  rate3: (x) => x.toFixed(3),
  d3: (x) => (x >= 0 ? "+" : "") + x.toFixed(3),
  diff: (x) => (x >= 0 ? "+" : "") + x.toFixed(4),
  share: (x) => (100 * x).toFixed(1) + "%",
  price: (x) => x.toFixed(3),
};

// one line per KPI, shown on hover and on keyboard focus
const EXPLAIN = {
  treatment: "Visitors cartwheel personalizes for.",
  holdout: "A random share of visitors that always gets the control, so the difference is what personalization adds.",
  visitors: "Distinct (hashed) visitors with at least one decision.",
  decisions: "Times cartwheel chose what a visitor sees.",
  conversions: "Decisions followed by an order within the attribution window.",
  conversion_rate: "Orders per decision.",
  conversions_per_visitor: "Orders per visitor (an order counts once).",
  aov: "Average order value: revenue per order.",
  revenue_per_visitor: "Order revenue per visitor.",
  profit_per_visitor: "Margin on revenue minus incentive cost, per visitor: what the shop keeps.",
  cost_per_visitor: "Incentive cost (discounts, free shipping) paid per visitor: lower is better.",
  revenue_per_decision: "Order revenue per decision.",
  profit_per_decision: "Margin on revenue minus incentive cost, per decision.",
  cost_per_decision: "Incentive cost paid per decision: lower is better.",
  relative: "The difference as a share of the holdout's value.",
  cannibalized: "Incentive cost paid to visitors who would have bought anyway (from the holdout visitors the action would have gone to).",
  interval: "The range the true difference lies in with the stated confidence: when it excludes 0 the difference is real.",
  advantage: "What a policy earns per visitor more than the champion, estimated on the traffic they share (doubly robust), with bounds that stay valid however often they are read.",
  still_needs: "Visitors the comparison still needs before its bound clears, if the estimate holds.",
  share: "The part of the traffic this policy decides for now.",
};
// KPIs where more is worse for the shop (their significant increase is coloured bad)
const WORSE_WHEN_UP = new Set(["cost_per_visitor", "cost_per_decision"]);

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    // styles through the CSSOM: the page's CSP refuses inline style attributes
    if (k === "style") for (const [p, x] of Object.entries(v)) node.style.setProperty(p, x);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const kid of kids) node.append(kid instanceof Node ? kid : document.createTextNode(kid));
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
// a number: its text is fmt[format](value); null (an interval with too little data) is "n/a"
function num(tag, value, format, path) {
  const text = value === null || value === undefined ? "n/a" : fmt[format](value);
  return el(tag, { "data-path": path, "data-format": format }, text);
}
function put(id, ...nodes) { document.getElementById(id).replaceChildren(...nodes); }
function empty(text) { return el("p", { class: "empty" }, text); }
// a label with its explanation on hover and focus (keyboard users reach it with Tab)
function tip(text, key) {
  const why = EXPLAIN[key];
  return why ? el("span", { class: "tip", tabindex: "0", "data-tip": why,
    "aria-label": `${text}: ${why}` }, text) : text;
}
function label(key) { return key.replaceAll("_", " "); }
// "good" or "bad" for the shop when an interval excludes 0 (a cost going up is bad), else null
function verdictClass(kpi, lower, upper) {
  const sign = lower > 0 ? 1 : upper < 0 ? -1 : 0;
  if (!sign) return null;
  return sign * (WORSE_WHEN_UP.has(kpi) ? -1 : 1) > 0 ? "good" : "bad";
}
// a cell of a table that stacks into label: value lines on a phone
function cell(head, ...kids) { return el("td", { "data-label": head }, ...kids); }
function table(heads, rows) {
  return el("div", { class: "table-wrap" }, el("table", { class: "stack" },
    el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)));
}
function interval(lower, upper, format, path) {
  return el("span", { class: "interval" }, "[", num("span", lower, format, `${path}.lower`), ", ",
    num("span", upper, format, `${path}.upper`), "]");
}

// charts drawn at the panel's own width: text stays legible on a phone
function chartWidth() {
  return Math.max(300, Math.min(1400, document.querySelector("main").clientWidth - 40));
}
function timeLabel(t, grain) {
  const d = new Date(t * 1000).toISOString();
  return grain === "day" ? d.slice(5, 10) : d.slice(11, 13) + "h";
}

// a line chart of series [{name, color, points: [y|null]}] with an optional band
// [[lo, hi]|null] (one bucket: drawn as an error bar)
function chart(buckets, series, band, yLabel, grain) {
  const W = chartWidth(), H = 200, L = 56, R = 10, T = 10, B = 28;
  const ys = series.flatMap((s) => s.points).concat(
    (band || []).flatMap((b) => (b ? b : []))).filter((y) => y !== null && isFinite(y));
  if (!ys.length) return empty("Not enough data yet.");
  let lo = Math.min(0, ...ys), hi = Math.max(0, ...ys);
  if (hi === lo) hi = lo + 1;
  const n = buckets.length, x = (i) => L + (n === 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1));
  const y = (v) => T + (hi - Math.max(lo, Math.min(hi, v))) * (H - T - B) / (hi - lo);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": yLabel });
  for (const v of [lo, 0, hi]) {
    root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#dde1e8" }));
    const t = svg("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" });
    t.textContent = v.toPrecision(3);
    root.append(t);
  }
  const every = Math.max(1, Math.ceil(n / 8));
  buckets.forEach((b, i) => {
    if (i % every) return;
    const t = svg("text", { x: x(i), y: H - 8, "text-anchor": "middle" });
    t.textContent = timeLabel(b.start, grain);
    root.append(t);
  });
  if (band) {
    const idx = band.map((b, i) => (b && isFinite(b[0]) && isFinite(b[1]) ? i : -1))
      .filter((i) => i >= 0);
    if (idx.length === 1) {
      const [i] = idx;
      root.append(svg("line", { x1: x(i), x2: x(i), y1: y(band[i][0]), y2: y(band[i][1]),
        stroke: "#3358d4", "stroke-opacity": "0.4", "stroke-width": 8, class: "band" }));
    } else if (idx.length) {
      const top = idx.map((i) => `${x(i)},${y(band[i][1])}`);
      const bottom = idx.slice().reverse().map((i) => `${x(i)},${y(band[i][0])}`);
      root.append(svg("polygon", { points: top.concat(bottom).join(" "), fill: "#3358d4",
        "fill-opacity": "0.15", class: "band" }));
    }
  }
  for (const s of series) {
    const pts = s.points.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    root.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: s.color,
      "stroke-width": 2 }));
    s.points.forEach((v, i) => {
      if (v !== null) root.append(svg("circle", { cx: x(i), cy: y(v), r: 2.5, fill: s.color }));
    });
  }
  const legend = el("div", { class: "legend" }, ...series.map((s) =>
    el("span", { style: { "--c": s.color } }, s.name)));
  return el("div", {}, root, legend, el("p", { class: "note" }, yLabel));
}
