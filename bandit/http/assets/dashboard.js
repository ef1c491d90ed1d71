// cartwheel dashboard: renders GET /v1/report and GET /v1/segments (or the data embedded by
// `cartwheel report --html`) with the panels of dashboard_panels.js; refreshes, the
// placement choice, the grain toggle and preview links. Loaded last.
"use strict";
(function () {
  const REFRESH_MS = 30000, SEGMENTS_MS = 120000;
  let report = null, segments = null, grain = "day";
  // until someone picks a grain, a log of one day is shown per hour (a single day's bucket
  // would hide how the interval narrows)
  let grainChosen = false;
  // the placement the actions table and the segments are shown for ("": all; segments: the
  // shop's first placement's model)
  let placement = "";

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
    if (!grainChosen) setGrain(((r.timeline || {}).day || []).length < 2 ? "hour" : "day");
    put("verdict", verdictPanel(r));
    put("kpis", kpiTable(r.groups, "report.groups", "group", GROUP_COLS, r.currency));
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
        "action", ACTION_COLS, r.currency)
      : kpiTable(r.actions, "report.actions", "action", ACTION_COLS, r.currency), young);
    document.getElementById("segments-at").textContent =
      placement && !embeddedData ? `at ${placement}` : "";
    put("uplift", upliftTable(r));
    put("action-uplift", actionUplift(r, placement));
    put("uplift-time", ...upliftOverTime(r, grain));
    put("mix", actionMix(r, grain));
    put("spend", spend(r));
    const gates = gatePanel(r, placement);
    document.getElementById("gate-panel").hidden = !gates.length;
    put("gate", ...gates);
    put("segments", segmentsPanel(segments));
  }
  function setGrain(g) {
    grain = g;
    for (const b of document.querySelectorAll("#grain button")) {
      b.setAttribute("aria-pressed", String(b.dataset.grain === g));
    }
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
    grainChosen = true;
    setGrain(g);
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
