// cartwheel dashboard: renders GET /v1/report and GET /v1/segments (or the data embedded by
// `cartwheel report --html`). Every number is written with textContent (never innerHTML), and
// each carries data-path (where it sits in the report) and data-format, so a test can check it.
"use strict";
(function () {
  const REFRESH_MS = 30000, SEGMENTS_MS = 120000;
  const COLORS = ["#3358d4", "#e5484d", "#30a46c", "#f76b15", "#8e4ec6", "#0d9488", "#a18072",
    "#d6409f", "#5b5bd6", "#978365"];
  const SVG = "http://www.w3.org/2000/svg";
  let report = null, segments = null, grain = "day";
  // the placement the actions table and the segments are shown for ("": all; segments: the
  // shop's first placement's model)
  let placement = "";

  const fmt = {
    int: (x) => Math.round(x).toLocaleString("en-US"),
    pct: (x) => (100 * x).toFixed(2) + "%",
    money: (x) => x.toFixed(2),
    diff: (x) => (x >= 0 ? "+" : "") + x.toFixed(4),
    share: (x) => (100 * x).toFixed(1) + "%",
    price: (x) => x.toFixed(3),
  };

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
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  // a number cell: its text is fmt[format](value); null (an interval with too little data) is "n/a"
  function num(tag, value, format, path) {
    const text = value === null || value === undefined ? "n/a" : fmt[format](value);
    return el(tag, { "data-path": path, "data-format": format }, text);
  }
  function put(id, ...nodes) { document.getElementById(id).replaceChildren(...nodes); }
  function empty(text) { return el("p", { class: "empty" }, text); }

  // groups per visitor (the holdout is randomized per visitor), actions per decision
  const GROUP_COLS = [["visitors", "int"], ["decisions", "int"], ["conversion_rate", "pct"],
    ["aov", "money"], ["revenue_per_visitor", "money"], ["profit_per_visitor", "money"],
    ["cost_per_visitor", "money"]];
  const ACTION_COLS = [["decisions", "int"], ["conversions", "int"], ["conversion_rate", "pct"],
    ["aov", "money"], ["revenue_per_decision", "money"], ["profit_per_decision", "money"],
    ["cost_per_decision", "money"]];
  function kpiTable(rows, prefix, title, cols) {
    const names = Object.keys(rows).sort();
    if (!names.length) return empty("Nothing logged yet.");
    const head = el("tr", {}, el("th", {}, title),
      ...cols.map(([c]) => el("th", {}, c.replaceAll("_", " "))));
    const body = names.map((name) => el("tr", {}, el("td", {}, name),
      ...cols.map(([c, f]) => num("td", rows[name][c], f, `${prefix}.${name}.${c}`))));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
  }

  function upliftTable(r) {
    if (!r.uplift.length) {
      const why = "holdout" in r.groups
        ? "Both groups need two visitors or more before an interval exists."
        : "No holdout in this shop's traffic: set [holdout] fraction (e.g. 0.05) to measure uplift.";
      return empty(why);
    }
    const head = el("tr", {}, ...["KPI", "treatment", "holdout", "difference",
      `${Math.round(100 * r.confidence)}% interval`, "relative"].map((h) => el("th", {}, h)));
    const body = r.uplift.map((u, i) => {
      const f = u.kpi === "conversion_rate" ? "pct" : "money";
      const sure = u.lower > 0 ? "up" : u.upper < 0 ? "down" : null;
      const p = `report.uplift.${i}`;
      return el("tr", { class: sure }, el("td", {}, u.kpi.replaceAll("_", " ")),
        num("td", u.treatment, f, `${p}.treatment`), num("td", u.holdout, f, `${p}.holdout`),
        num("td", u.difference, "diff", `${p}.difference`),
        el("td", {}, "[", num("span", u.lower, "diff", `${p}.lower`), ", ",
          num("span", u.upper, "diff", `${p}.upper`), "]"),
        u.relative === null ? el("td", {}, "-") : num("td", u.relative, "share", `${p}.relative`));
    });
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
  }

  // charts drawn at the panel's own width: text stays legible on a phone
  function width() {
    return Math.max(320, Math.min(1400, document.querySelector("main").clientWidth - 40));
  }
  function label(t) {
    const d = new Date(t * 1000).toISOString();
    return grain === "day" ? d.slice(5, 10) : d.slice(11, 13) + "h";
  }

  // a line chart of series [{name, color, points: [y|null]}], an optional band [[lo, hi]|null]
  function chart(buckets, series, band, yLabel) {
    const W = width(), H = 200, L = 56, R = 10, T = 10, B = 28;
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
      t.textContent = label(b.start);
      root.append(t);
    });
    if (band) {
      const idx = band.map((b, i) => (b && isFinite(b[0]) && isFinite(b[1]) ? i : -1))
        .filter((i) => i >= 0);
      if (idx.length) {
        const top = idx.map((i) => `${x(i)},${y(band[i][1])}`);
        const bottom = idx.slice().reverse().map((i) => `${x(i)},${y(band[i][0])}`);
        root.append(svg("polygon", { points: top.concat(bottom).join(" "), fill: "#3358d4",
          "fill-opacity": "0.15" }));
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
    const ylab = el("p", { class: "note" }, yLabel);
    return el("div", {}, root, legend, ylab);
  }

  function upliftOverTime(r) {
    const buckets = (r.timeline || {})[grain] || [];
    if (!buckets.length) return [empty("Nothing logged yet.")];
    const groups = [...new Set(buckets.flatMap((b) => Object.keys(b.groups)))].sort();
    const perGroup = chart(buckets, groups.map((g, i) => ({
      name: g, color: COLORS[i], points: buckets.map((b) => (b.groups[g] ?
        b.groups[g].profit_per_decision : null)) })), null,
      `profit per decision ${r.currency || ""} by ${grain} (UTC)`);
    const withUplift = buckets.some((b) => b.uplift);
    const diff = withUplift ? chart(buckets, [{ name: "treatment − holdout", color: COLORS[0],
      points: buckets.map((b) => (b.uplift ? b.uplift.profit_per_decision.difference : null)) }],
      buckets.map((b) => (b.uplift ? [b.uplift.profit_per_decision.lower,
        b.uplift.profit_per_decision.upper] : null)),
      `uplift in profit per decision with ${Math.round(100 * r.confidence)}% intervals`)
      : empty("No uplift per " + grain + ": it needs holdout traffic in the same " + grain + ".");
    const last = buckets[buckets.length - 1];
    const lastLine = last.uplift ? el("p", { class: "note" }, `latest ${grain}: `,
      num("span", last.uplift.profit_per_decision.difference, "diff",
        `report.timeline.${grain}.${buckets.length - 1}.uplift.profit_per_decision.difference`),
      " profit per decision") : "";
    return [perGroup, diff, lastLine];
  }

  function actionMix(r) {
    const buckets = ((r.timeline || {})[grain] || []).filter(
      (b) => Object.keys(b.treatment_actions).length);
    if (!buckets.length) return empty("No treatment decisions yet.");
    const actions = [...new Set(buckets.flatMap((b) => Object.keys(b.treatment_actions)))].sort();
    const W = width(), H = 170, L = 40, B = 24, T = 6, bw = (W - L) / buckets.length;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "action mix" });
    buckets.forEach((b, i) => {
      const total = Object.values(b.treatment_actions).reduce((a, c) => a + c, 0);
      let top = T;
      actions.forEach((a, j) => {
        const h = (b.treatment_actions[a] || 0) / total * (H - T - B);
        const rect = svg("rect", { x: L + i * bw + 1, y: top, width: Math.max(bw - 2, 1),
          height: h, fill: COLORS[j % COLORS.length] });
        const tip = svg("title", {});
        tip.textContent = `${label(b.start)} ${a}: ${b.treatment_actions[a] || 0} of ${total}`;
        rect.append(tip);
        root.append(rect);
        top += h;
      });
    });
    const every = Math.max(1, Math.ceil(buckets.length / 8));
    buckets.forEach((b, i) => {
      if (i % every) return;
      const t = svg("text", { x: L + (i + 0.5) * bw, y: H - 8, "text-anchor": "middle" });
      t.textContent = label(b.start);
      root.append(t);
    });
    const last = buckets[buckets.length - 1], p = `report.timeline.${grain}`;
    const idx = r.timeline[grain].indexOf(last);
    const legend = el("div", { class: "legend" }, ...actions.map((a, j) => el("span",
      { style: { "--c": COLORS[j % COLORS.length] } }, `${a} `,
      num("span", last.treatment_actions[a] || 0, "int", `${p}.${idx}.treatment_actions.${a}`))));
    return el("div", {}, root, legend, el("p", { class: "note" },
      `share of the treatment group's decisions per ${grain}; counts in the legend are the latest ${grain}'s`));
  }

  function spend(r) {
    if (r.daily_budget === null || r.daily_budget === undefined) {
      return empty("No daily incentive budget is configured ([budget] daily in the shop's config).");
    }
    const share = r.daily_budget ? r.incentive_spend_today / r.daily_budget : 0;
    const paced = r.spend_target !== null && r.spend_target !== undefined;
    const bar = el("div", { class: "bar" }, el("div", { class: share > 1 ? "over" : null,
      style: { width: `${Math.min(100, 100 * share)}%` } }));
    if (paced && r.daily_budget) {
      bar.append(el("div", { class: "target",
        style: { left: `${Math.min(100, 100 * r.spend_target / r.daily_budget)}%` } }));
    }
    const text = el("p", {}, num("span", r.incentive_spend_today, "money", "report.incentive_spend_today"), " of ",
      num("span", r.daily_budget, "money", "report.daily_budget"), ` ${r.currency || ""} (`,
      fmt.share(share), ")");
    const plan = paced ? el("p", { class: "note" }, "paced: the plan allows ",
      num("span", r.spend_target, "money", "report.spend_target"), " by now; incentive price ",
      num("span", r.pacing_price, "price", "report.pacing_price"),
      " per unit of cost (0: the budget is not binding)")
      : el("p", { class: "note" }, "hard stop only: incentives stop once the budget is spent");
    return el("div", {}, bar, text, plan);
  }

  function segmentsPanel(s) {
    if (!s) return empty("Loading segments…");
    if (s.status !== "ok") return empty(s.reason);
    const head = el("tr", {}, ...["segment", "traffic", "policy prefers", "picks it",
      `uplift over ${s.control} (${Math.round(100 * s.confidence)}%)`, "randomized rows"].map(
      (h) => el("th", {}, h)));
    const rows = s.segments.map((g, i) => {
      const u = g.uplift, p = `segments.segments.${i}`;
      const sure = u.lower > 0 ? "up" : u.upper < 0 ? "down" : null;
      return el("tr", { class: sure }, el("td", { class: "cond" }, g.condition),
        num("td", g.share, "share", `${p}.share`), el("td", {}, g.action),
        num("td", g.picks, "share", `${p}.picks`),
        el("td", {}, num("span", u.difference, "diff", `${p}.uplift.difference`), " [",
          num("span", u.lower, "diff", `${p}.uplift.lower`), ", ",
          num("span", u.upper, "diff", `${p}.uplift.upper`), "]",
          u.reliable ? "" : el("span", { class: "badge" }, " few data")),
        num("td", u.rows, "int", `${p}.uplift.rows`));
    });
    return el("div", {}, el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, head), el("tbody", {}, ...rows))), el("p", { class: "note" },
      `A depth-${s.depth} tree over the context that agrees with the policy's choice for `,
      num("span", s.fidelity, "share", "segments.fidelity"), ` of visitors; uplift of each segment's ` +
      `action over ${s.control} in ${s.objective}, from the randomized decisions of that segment.`));
  }

  function render() {
    const r = report;
    document.getElementById("shop").textContent = `cartwheel · ${r.shop || "shop"}`;
    const m = r.model;
    const model = [el("span", {}, "open events "), num("span", r.pending_events, "int", "report.pending_events")];
    if (m) {
      model.unshift(el("span", {}, "model version "), num("span", m.version, "int", "report.model.version"),
        el("span", {}, m.age_s === null ? " · nothing learned yet · "
          : ` · learned up to ${ago(m.age_s)} ago · `));
    }
    put("model", ...model);
    const fresh = !Object.keys(r.groups).length;
    document.getElementById("empty").hidden = !fresh;
    put("kpis", kpiTable(r.groups, "report.groups", "group", GROUP_COLS));
    placementChoice(r);
    previewPanel(r);
    // censoring: a decision counts once its attribution window has passed (its outcome is
    // final); the young ones are left out, and the page says how many
    const young = r.actions_left_out ? el("p", { class: "empty" },
      num("span", r.actions_left_out, "int", "report.actions_left_out"),
      " decisions still inside their attribution window are left out: their outcome is not " +
      "final yet") : "";
    put("actions", placement && r.placements && r.placements[placement]
      ? kpiTable(r.placements[placement].actions, `report.placements.${placement}.actions`,
        "action", ACTION_COLS)
      : kpiTable(r.actions, "report.actions", "action", ACTION_COLS), young);
    document.getElementById("segments-at").textContent =
      placement && !embeddedData ? `at ${placement}` : "";
    put("uplift", upliftTable(r));
    put("uplift-time", ...upliftOverTime(r));
    put("mix", actionMix(r));
    put("spend", spend(r));
    put("segments", segmentsPanel(segments));
  }
  // a preview link: pick what each placement shows, get a link to the shop's page with a
  // 15-minute token; the storefront script then shows exactly that and nothing is logged.
  // Built once (a refresh must not reset the choices); not in a shared file (no server).
  function previewPanel(r) {
    const panel = document.getElementById("preview-panel");
    if (embeddedData || !panel.hidden || !r.placements) return;
    const ids = Object.keys(r.placements).filter((id) => r.placements[id].choices);
    if (!ids.length) return;
    const selects = ids.map((id) => el("select", { "data-placement": id, "aria-label": id },
      el("option", { value: "" }, "(as decided)"),
      ...r.placements[id].choices.map((a) => el("option", { value: a }, a))));
    const page = el("input", { type: "url", id: "preview-page", size: "40",
      placeholder: "a page of the shop, e.g. https://www.shop.example/" });
    const out = el("p", { id: "preview-link" });
    const button = el("button", { type: "button", id: "preview-create" }, "Create preview link");
    button.addEventListener("click", async () => {
      const actions = {};
      for (const s of selects) if (s.value) actions[s.dataset.placement] = s.value;
      try {
        const res = await fetch("v1/preview", { method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ actions }) });
        const answer = await res.json();
        if (!res.ok) throw new Error(answer.error ? answer.error.message : res.status);
        const base = page.value || location.origin + "/";
        const href = base + (base.includes("?") ? "&" : "?") + answer.query;
        out.replaceChildren(el("a", { href, target: "_blank", rel: "noopener" }, href),
          ` (works for 15 minutes; nothing it shows is logged or learned)`);
      } catch (err) {
        out.textContent = `could not create a preview link: ${err.message}`;
      }
    });
    put("preview", ...ids.map((id, i) => el("label", {}, `${id} `, selects[i], " ")),
      el("p", {}, page, " ", button), out);
    panel.hidden = false;
  }
  // a shop with placements: a choice of where to look (a shop without them has one, "default")
  function placementChoice(r) {
    const select = document.getElementById("placement");
    const ids = Object.keys(r.placements || {});
    select.hidden = ids.length < 2 && (ids.length === 0 || ids[0] === "default");
    const options = [["", "all placements"], ...ids.map((id) => [id, id])];
    if (select.options.length !== options.length) {
      select.replaceChildren(...options.map(([v, t]) => el("option", { value: v }, t)));
    }
    select.value = placement;
  }
  function ago(s) {
    if (s < 120) return `${Math.round(s)} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    return s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} days`;
  }

  async function fetchJson(path) {
    const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 401) throw new Error("signed out: open the login link `cartwheel serve` printed");
    if (!res.ok) throw new Error(`${path} answered ${res.status}`);
    return res.json();
  }
  async function refresh(withSegments) {
    const status = document.getElementById("refreshed");
    document.body.dataset.loaded = "false";  // until what this refresh fetched is shown
    try {
      report = await fetchJson("v1/report");
      render();  // the figures first: segments take longer
      if (withSegments || !segments) {
        try {
          segments = await fetchJson(placement
            ? `v1/segments?placement=${encodeURIComponent(placement)}` : "v1/segments");
        } catch (err) {
          segments = { status: "unavailable", reason: `segments: ${err.message}` };
        }
        render();
      }
      status.textContent = `updated ${new Date().toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`;
    } catch (err) {
      status.textContent = `could not refresh: ${err.message}`;
    }
    document.body.dataset.loaded = "true";
  }

  document.getElementById("placement").addEventListener("change", (ev) => {
    placement = ev.target.value;
    if (!report) return;
    if (embeddedData) render();  // a shared file has the figures it was written with
    else refresh(true);
  });
  document.getElementById("grain").addEventListener("click", (ev) => {
    const g = ev.target.dataset.grain;
    if (!g || !report) return;
    grain = g;
    for (const b of document.querySelectorAll("#grain button")) {
      b.setAttribute("aria-pressed", String(b.dataset.grain === g));
    }
    render();
  });
  const embedded = document.getElementById("cartwheel-data").textContent.trim();
  const embeddedData = embedded && embedded !== "/*DATA*/";
  if (embeddedData) {  // a shared file (report --html): no refresh
    const data = JSON.parse(embedded);
    report = data.report;
    segments = data.segments;
    render();
    document.getElementById("refreshed").textContent =
      `snapshot of ${new Date(report.generated_at * 1000).toISOString().slice(0, 16)} UTC`;
    document.body.dataset.loaded = "true";
  } else {
    refresh(true);
    let ticks = 0;
    setInterval(() => refresh(++ticks % (SEGMENTS_MS / REFRESH_MS) === 0), REFRESH_MS);
  }
})();
