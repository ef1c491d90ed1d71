// cartwheel dashboard, the panels: each turns a part of GET /v1/report (or /v1/segments)
// into nodes, with the kit of dashboard_kit.js. Colours say whether a change is good for the
// shop (a cost going up is bad), and only when its interval excludes 0.
"use strict";

// groups per visitor (the holdout is randomized per visitor), actions per decision
const GROUP_COLS = [["visitors", "int"], ["decisions", "int"], ["conversion_rate", "pct"],
  ["aov", "money"], ["revenue_per_visitor", "money"], ["profit_per_visitor", "money"],
  ["cost_per_visitor", "money"]];
const ACTION_COLS = [["decisions", "int"], ["conversions", "int"], ["conversion_rate", "pct"],
  ["aov", "money"], ["revenue_per_decision", "money"], ["profit_per_decision", "money"],
  ["cost_per_decision", "money"]];
const MONEY = new Set(["money"]);
// how each uplift KPI's values and differences are written
const UPLIFT_FORMATS = { conversion_rate: ["pct", "pp"], conversions_per_visitor: ["rate3", "d3"] };

function heading(key, format, currency) {
  const unit = MONEY.has(format) && currency ? ` (${currency})` : "";
  return tip(label(key) + unit, key);
}

function kpiTable(rows, prefix, title, cols, currency) {
  const names = Object.keys(rows).sort();
  if (!names.length) return empty("Nothing logged yet.");
  const heads = [title, ...cols.map(([c, f]) => heading(c, f, currency))];
  const body = names.map((name) => el("tr", {}, cell(title, tip(name, name)),
    ...cols.map(([c, f]) => cell(label(c), num("span", rows[name][c], f,
      `${prefix}.${name}.${c}`)))));
  return table(heads, body);
}

function upliftTable(r) {
  if (!r.uplift.length) {
    const why = r.holdout_fraction === 0
      ? "No holdout in this shop: set [holdout] fraction (e.g. 0.05) in the shop's config to measure uplift."
      : "holdout" in r.groups
        ? "Both groups need two visitors or more before an interval exists."
        : "No holdout visitor has come yet: the comparison starts with them.";
    return empty(why);
  }
  const level = `${Math.round(100 * r.confidence)}%`;
  const heads = ["KPI", tip("treatment", "treatment"), tip("holdout", "holdout"), "difference",
    tip(`${level} interval`, "interval"), tip("relative", "relative")];
  const body = r.uplift.map((u, i) => {
    const [f, d] = UPLIFT_FORMATS[u.kpi] || ["money", "mdiff"];
    const p = `report.uplift.${i}`;
    const unit = f === "money" && r.currency ? ` (${r.currency})` : d === "pp" ? " (points)" : "";
    return el("tr", { class: verdictClass(u.kpi, u.lower, u.upper) },
      cell("KPI", tip(label(u.kpi) + unit, u.kpi)),
      cell("treatment", num("span", u.treatment, f, `${p}.treatment`)),
      cell("holdout", num("span", u.holdout, f, `${p}.holdout`)),
      cell("difference", num("span", u.difference, d, `${p}.difference`)),
      cell(`${level} interval`, interval(u.lower, u.upper, d, p)),
      cell("relative", u.relative === null ? "-" : num("span", u.relative, "share", `${p}.relative`)));
  });
  return table(heads, body);
}

function verdictPanel(r) {
  const v = r.verdict;
  if (!v) return empty("No verdict in this report.");
  return el("p", { "data-verdict": v.status, class: `verdict ${v.status}` }, v.sentence);
}

// each action against the holdout visitors it would have gone to (report.per_action_uplift)
function actionUplift(r, placement) {
  const rows = (r.per_action_uplift || []).map((u, i) => [u, i])
    .filter(([u]) => !placement || u.placement === placement);
  if (!rows.length) {
    return empty("Appears once visitors' first decisions are final (their attribution window " +
      "has passed), in both the treatment and the holdout.");
  }
  const level = `${Math.round(100 * r.confidence)}%`, cur = r.currency ? ` (${r.currency})` : "";
  const many = new Set(rows.map(([u]) => u.placement)).size > 1;
  const heads = [...(many ? ["placement"] : []), "action", tip("treated", "treatment"),
    tip("holdout", "holdout"), tip("conversion rate difference (points)", "conversion_rate"),
    tip(`profit per visitor difference${cur}`, "profit_per_visitor"),
    tip(`cannibalized spend${cur}`, "cannibalized")];
  const body = rows.map(([u, i]) => {
    const p = `report.per_action_uplift.${i}`, c = u.conversion_uplift, m = u.profit_uplift;
    const spent = u.cannibalized_spend;
    return el("tr", { class: verdictClass("profit_per_visitor", m.lower, m.upper) },
      ...(many ? [cell("placement", u.placement)] : []), cell("action", u.action),
      cell("treated", num("span", u.treated.visitors, "int", `${p}.treated.visitors`)),
      cell("holdout", num("span", u.holdout.visitors, "int", `${p}.holdout.visitors`)),
      cell("conversion", num("span", c.difference, "pp", `${p}.conversion_uplift.difference`),
        " ", interval(c.lower, c.upper, "pp", `${p}.conversion_uplift`)),
      cell("profit / visitor", num("span", m.difference, "mdiff", `${p}.profit_uplift.difference`),
        " ", interval(m.lower, m.upper, "mdiff", `${p}.profit_uplift`)),
      cell("cannibalized", spent ? el("span", {},
        num("span", spent.total, "money", `${p}.cannibalized_spend.total`), " of ",
        num("span", spent.spend, "money", `${p}.cannibalized_spend.spend`)) : "-"));
  });
  return el("div", {}, table(heads, body), el("p", { class: "note" },
    `Treated visitors drawn each action against holdout visitors who would have been drawn it ` +
    `(${level} intervals; a visitor counts once, by their first decision). Cannibalized spend: ` +
    `the incentive cost paid to visitors who would have bought anyway, of all it cost.`));
}

function upliftOverTime(r, grain) {
  const buckets = (r.timeline || {})[grain] || [];
  if (!buckets.length) return [empty("Nothing logged yet.")];
  const cur = r.currency ? ` (${r.currency})` : "";
  const groups = [...new Set(buckets.flatMap((b) => Object.keys(b.groups)))].sort();
  const perGroup = chart(buckets, groups.map((g, i) => ({
    name: g, color: COLORS[i], points: buckets.map((b) => (b.groups[g] ?
      b.groups[g].profit_per_decision : null)) })), null,
    `profit per decision${cur} by ${grain} (UTC)`, grain);
  const withUplift = buckets.some((b) => b.uplift);
  const diff = withUplift ? chart(buckets, [{ name: "treatment − holdout", color: COLORS[0],
    points: buckets.map((b) => (b.uplift ? b.uplift.profit_per_decision.difference : null)) }],
    buckets.map((b) => (b.uplift ? [b.uplift.profit_per_decision.lower,
      b.uplift.profit_per_decision.upper] : null)),
    `uplift in profit per decision${cur} with ${Math.round(100 * r.confidence)}% intervals`, grain)
    : empty("No uplift per " + grain + ": it needs holdout traffic in the same " + grain + ".");
  const last = buckets[buckets.length - 1];
  const lastLine = last.uplift ? el("p", { class: "note" }, `latest ${grain}: `,
    num("span", last.uplift.profit_per_decision.difference, "mdiff",
      `report.timeline.${grain}.${buckets.length - 1}.uplift.profit_per_decision.difference`),
    ` profit per decision${cur}`) : "";
  return [perGroup, diff, lastLine];
}

function actionMix(r, grain) {
  const buckets = ((r.timeline || {})[grain] || []).filter(
    (b) => Object.keys(b.treatment_actions).length);
  if (!buckets.length) return empty("No treatment decisions yet.");
  const actions = [...new Set(buckets.flatMap((b) => Object.keys(b.treatment_actions)))].sort();
  const W = chartWidth(), H = 170, L = 40, B = 24, T = 6, bw = (W - L) / buckets.length;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "action mix" });
  buckets.forEach((b, i) => {
    const total = Object.values(b.treatment_actions).reduce((a, c) => a + c, 0);
    let top = T;
    actions.forEach((a, j) => {
      const h = (b.treatment_actions[a] || 0) / total * (H - T - B);
      const rect = svg("rect", { x: L + i * bw + 1, y: top, width: Math.max(bw - 2, 1),
        height: h, fill: COLORS[j % COLORS.length] });
      const title = svg("title", {});
      title.textContent = `${timeLabel(b.start, grain)} ${a}: ${b.treatment_actions[a] || 0} of ${total}`;
      rect.append(title);
      root.append(rect);
      top += h;
    });
  });
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((b, i) => {
    if (i % every) return;
    const t = svg("text", { x: L + (i + 0.5) * bw, y: H - 8, "text-anchor": "middle" });
    t.textContent = timeLabel(b.start, grain);
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
    return empty("No daily incentive budget: set [budget] daily_incentive_spend in the shop's " +
      "config to cap what incentives cost a day.");
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
  const level = `${Math.round(100 * s.confidence)}%`;
  const heads = ["segment", "traffic", "policy prefers", "picks it",
    tip(`uplift over ${s.control} (${level})`, "interval"), "randomized rows"];
  const rows = s.segments.map((g, i) => {
    const u = g.uplift, p = `segments.segments.${i}`;
    return el("tr", { class: verdictClass(s.objective, u.lower, u.upper) },
      el("td", { class: "cond", "data-label": "segment" }, g.condition),
      cell("traffic", num("span", g.share, "share", `${p}.share`)), cell("prefers", g.action),
      cell("picks it", num("span", g.picks, "share", `${p}.picks`)),
      cell("uplift", num("span", u.difference, "diff", `${p}.uplift.difference`), " ",
        interval(u.lower, u.upper, "diff", `${p}.uplift`),
        u.reliable ? "" : el("span", { class: "badge" }, " few data")),
      cell("rows", num("span", u.rows, "int", `${p}.uplift.rows`)));
  });
  return el("div", {}, table(heads, rows), el("p", { class: "note" },
    `A depth-${s.depth} tree over the context that agrees with the policy's choice for `,
    num("span", s.fidelity, "share", "segments.fidelity"), ` of visitors; uplift of each segment's ` +
    `action over ${s.control} in ${s.objective}, from the randomized decisions of that segment.`));
}

// the promotion gate of each placement (report.policy_gate): who decides, how the
// challengers stand, and what changed
function gatePanel(r, placement) {
  const gates = r.policy_gate || {};
  const ids = Object.keys(gates).filter((id) => !placement || id === placement);
  if (!ids.length) return [];
  const cur = r.currency ? ` (${r.currency})` : "";
  return ids.map((id) => {
    const g = gates[id], p = `report.policy_gate.${id}`, level = `${Math.round(100 * g.confidence)}%`;
    const heads = ["policy", "role", tip("traffic", "share"), tip("decided", "decisions"),
      tip(`advantage per visitor${cur}`, "advantage"), tip(`${level} bounds`, "interval"),
      tip("still needs", "still_needs")];
    const body = g.policies.map((x, i) => el("tr", {
      class: x.role === "champion" ? null : verdictClass("profit_per_visitor", x.lower, x.upper),
      "data-role": x.role },
    cell("policy", x.spec), cell("role", x.role + (x.pinned ? " (pinned)" : "")),
    cell("traffic", num("span", x.share, "pct", `${p}.policies.${i}.share`)),
    cell("decided", num("span", x.decided, "int", `${p}.policies.${i}.decided`)),
    cell("advantage", x.role === "champion" ? "-" : num("span", x.estimate, "mdiff", `${p}.policies.${i}.estimate`)),
    cell("bounds", x.role === "champion" ? "-" : interval(x.lower, x.upper, "mdiff", `${p}.policies.${i}`)),
    cell("still needs", x.role !== "challenger" ? "-" : x.rows_needed === null ? "no decision in sight"
      : el("span", {}, num("span", x.rows_needed, "int", `${p}.policies.${i}.rows_needed`), " visitors"))));
    const history = [
      ...g.promotions.map((e) => `${e.to_spec} became the champion after ${e.row.toLocaleString("en")} visitors (${e.by === "person" ? "by a person" : "its bound cleared"})`),
      ...g.retired.filter((e) => e.reason === "bound").map((e) => `${e.spec} was retired after ${e.row.toLocaleString("en")} visitors: its bound says it earns less`),
      ...g.rollbacks.map((e) => `${e.to_spec} came back after ${e.row.toLocaleString("en")} visitors: ${e.reason}`)];
    const sentence = `${ids.length > 1 ? `At ${id}: ` : ""}${g.champion} decides. ` +
      (g.share > 0 ? `Challengers share ${Math.round(100 * g.share)}% of the traffic until a ${level} bound says one earns more (it takes over) or less (it stops).`
        : "Challengers only learn alongside (shadow mode): they are never promoted.") +
      (g.mode === "manual" ? " A person promotes (manual mode)." : "");
    return el("div", { "data-gate": id }, el("p", {}, sentence), table(heads, body),
      ...(history.length ? [el("ul", { class: "note" }, ...history.map((h) => el("li", {}, h)))] : []));
  });
}
