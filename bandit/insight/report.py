"""KPIs per group (treatment, holdout) and per action, and the uplift of treatment over holdout.

The visitor is the unit of randomization (holdout assignment is sticky per visitor), so KPIs per
visitor (conversions, revenue, profit and incentive cost per visitor) get Welch intervals over
per-visitor totals; ratio KPIs (conversion rate per decision, AOV) get delta-method intervals over
the same per-visitor totals. Events still waiting for an outcome count as not converted; the
report says how many are pending (intervals: :mod:`bandit.insight.stats`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import stats

from bandit.insight.action_uplift import per_action_uplift
from bandit.insight.stats import Sums, mean_var, safe_ratio, welch_t
from bandit.insight.verdict import verdict

KPIS = ("conversions_per_visitor", "revenue_per_visitor", "profit_per_visitor",
        "cost_per_visitor", "conversion_rate", "aov")


@dataclass(frozen=True)
class Kpis:
    """KPIs of one group or one action."""

    visitors: int
    decisions: int
    conversions: int
    conversion_rate: float
    aov: float
    conversions_per_visitor: float
    revenue_per_visitor: float
    profit_per_visitor: float
    cost_per_visitor: float


@dataclass(frozen=True)
class Uplift:
    """Treatment minus holdout for one KPI, with a (1 - alpha) interval."""

    kpi: str
    treatment: float
    holdout: float
    difference: float
    lower: float
    upper: float
    relative: float | None
    method: str


@dataclass(frozen=True)
class Report:
    """What ``GET /v1/report`` and ``cartwheel report`` show."""

    groups: dict
    actions: dict
    uplift: tuple
    pending_events: int
    confidence: float
    generated_at: float
    incentive_spend_today: float | None = None
    daily_budget: float | None = None
    #: what the budget's pacing plan allows to be spent by now (None: no pacing)
    spend_target: float | None = None
    #: the pacing's shadow price per unit of incentive cost, in reward units (0: not binding)
    pacing_price: float | None = None
    #: uplift over time and the action mix (:func:`bandit.timeline.timeline`)
    timeline: dict | None = None
    #: the serving model: ``{"version", "learned_until", "age_s"}`` (:func:`with_engine`)
    model: dict | None = None
    shop: str | None = None
    currency: str | None = None
    #: per placement id (every configured one, also before any data): ``{"actions": KPIs per
    #: action}`` of the decisions made there
    placements: dict | None = None
    #: decisions left out of the per-action KPIs: their outcome is not final yet (inside their
    #: attribution window at the last expiry; with ``final_only``)
    actions_left_out: int = 0
    #: per placement and action, treated visitors drawn it against holdout visitors who would
    #: have been, with intervals and (incentives) the cannibalized spend
    #: (:mod:`bandit.insight.action_uplift`); empty before an outcome is final
    per_action_uplift: list = field(default_factory=list)
    #: one sentence on whether personalization pays, and its figures
    #: (:mod:`bandit.insight.verdict`)
    verdict: dict | None = None
    #: the shop's configured holdout share (None: not known to who built the report)
    holdout_fraction: float | None = None
    #: treated visitors a day at the latest 24 hours' traffic (None: no treated visitor)
    treated_visitors_per_day: float | None = None
    #: per placement that runs a promotion gate, its standing (bandit.core.gate.gate_view:
    #: champion, challengers with their advantage and bounds, history); None: no gate
    policy_gate: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Moments:
    """Sums over the visitors of one group (or action) of their per-visitor totals.

    Per visitor: ``n`` decisions, ``c`` conversions, ``r`` revenue, ``k`` incentive cost and
    ``p = margin * r - k`` profit. Every KPI and interval of the report is a function of these
    sums, so SQLite aggregates the log and no per-visitor row reaches Python.
    """

    visitors: int
    n: float
    c: float
    r: float
    k: float
    p: float
    nn: float = 0.0
    cc: float = 0.0
    rr: float = 0.0
    kk: float = 0.0
    pp: float = 0.0
    cn: float = 0.0
    rc: float = 0.0

    def mean_var(self, column: str) -> tuple[float, float]:
        """Mean over visitors of a per-visitor total and its sample variance (ddof 1)."""
        return mean_var(getattr(self, column), getattr(self, column * 2), self.visitors)

    def ratio_var(self, y: str, x: str, yx: str) -> tuple[float, float]:
        """Ratio sum(y) / sum(x) over visitors and its delta-method variance."""
        v = self.visitors
        sx, sy = getattr(self, x), getattr(self, y)
        if v < 2 or sx == 0:
            return safe_ratio(sy, sx), float("inf")
        r, mx = sy / sx, sx / v
        var_x = (getattr(self, x * 2) - sx * mx) / (v - 1)
        var_y = (getattr(self, y * 2) - sy * sy / v) / (v - 1)
        cov = (getattr(self, yx) - sy * mx) / (v - 1)
        return float(r), float(max(var_y - 2 * r * cov + r * r * var_x, 0.0) / (v * mx * mx))

    def kpis(self) -> Kpis:
        v = self.visitors
        return Kpis(v, int(round(self.n)), int(round(self.c)), safe_ratio(self.c, self.n),
                    safe_ratio(self.r, self.c), safe_ratio(self.c, v), safe_ratio(self.r, v), safe_ratio(self.p, v),
                    safe_ratio(self.k, v))


def welch(a: Moments, b: Moments, column: str, alpha: float) -> tuple[float, float, float]:
    """(difference of means, lower, upper) of a - b for a per-visitor total, Welch's t."""
    (ma, va), (mb, vb) = a.mean_var(column), b.mean_var(column)
    return welch_t(ma - mb, va / a.visitors, vb / b.visitors, a.visitors, b.visitors, alpha)


def ratio_interval(t: Moments, h: Moments, y: str, x: str, yx: str,
                   alpha: float) -> tuple[float, float, float, float, float]:
    """(treatment ratio, holdout ratio, difference, lower, upper) by the delta method."""
    rt, vt = t.ratio_var(y, x, yx)
    rh, vh = h.ratio_var(y, x, yx)
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(vt + vh)
    return rt, rh, rt - rh, float(rt - rh - half), float(rt - rh + half)


def moments(store, margin: float) -> dict[str, Moments]:
    """:class:`Moments` per group."""
    return {key: Moments(count, *map(float, sums))
            for key, count, *sums in store.aggregates.group_moments(margin)}


def action_kpis(store, margin: float, placement: str | None = None,
                final_only: bool = True) -> dict[str, dict]:
    """KPIs per action over its decisions (at one ``placement``, or all; only those whose
    outcome is final unless ``final_only`` is false), treatment and holdout (the control's
    holdout decisions included): per decision, the unit an action is drawn for (an order sent
    by visitor id converts each decision it closed)."""
    sums: dict[str, Sums] = {}
    rows = (store.aggregates.final_action_sums(placement) if final_only
            else store.aggregates.action_sums(placement))
    for _, action, *row in rows:
        sums.setdefault(action, Sums()).add(*row)
    return {a: s.kpis(margin) for a, s in sorted(sums.items())}


def build_report(store, margin: float, alpha: float = 0.05, spend=None,
                 now: float | None = None, placements=(), costed=frozenset(),
                 holdout_fraction: float | None = None, currency: str = "") -> Report:
    """Compute the report from an :class:`~bandit.store.EventStore` (``spend``: the engine's
    :class:`~bandit.guardrails.SpendTracker`, to show today's incentive spend; ``placements``:
    the shop's placement ids, reported also before any decision was made there; ``costed``:
    the ids of the shop's incentives, whose cannibalized spend is shown; ``holdout_fraction``
    and ``currency``: the shop's, for the verdict's sentence). The
    per-action KPIs count only decisions whose outcome is final (censoring: a young
    decision's early conversion must not count before its neighbours' non-conversions).

    Every figure is read from the store's incrementally kept aggregates
    (:mod:`bandit.store_aggregates`), so the cost is O(groups + actions + hours shown),
    whatever the log's size.
    """
    from bandit.insight.timeline import timeline

    groups = moments(store, margin)
    uplift = []
    t, h = groups.get("treatment"), groups.get("holdout")
    if t is not None and h is not None and t.visitors > 1 and h.visitors > 1:
        for kpi, column in (("conversions_per_visitor", "c"), ("revenue_per_visitor", "r"),
                            ("profit_per_visitor", "p"), ("cost_per_visitor", "k")):
            diff, lo, hi = welch(t, h, column, alpha)
            hm = getattr(h, column) / h.visitors
            uplift.append(Uplift(kpi, getattr(t, column) / t.visitors, hm, diff, lo, hi,
                                 diff / hm if hm else None, "welch"))
        for kpi, y, x, yx in (("conversion_rate", "c", "n", "cn"), ("aov", "r", "c", "rc")):
            rt, rh, diff, lo, hi = ratio_interval(t, h, y, x, yx, alpha)
            uplift.append(Uplift(kpi, rt, rh, diff, lo, hi, diff / rh if rh else None, "delta"))
    series = timeline(store, margin, alpha)
    per_day = treated_per_day(series["hour"], t)
    profit = next((u for u in uplift if u.kpi == "profit_per_visitor"), None)
    judged = verdict(None if profit is None else asdict(profit),
                     sd=tuple(math.sqrt(g.mean_var("p")[1]) if g is not None and g.visitors > 1
                              else 0.0 for g in (t, h)),
                     visitors=tuple(0 if g is None else g.visitors for g in (t, h)),
                     per_day=per_day, currency=currency, confidence=1 - alpha,
                     holdout_fraction=holdout_fraction)
    actions = action_kpis(store, margin)
    left_out = (sum(k["decisions"] for k in action_kpis(store, margin, final_only=False)
                    .values()) - sum(k["decisions"] for k in actions.values()))
    return with_spend(Report(
        groups={g: asdict(m.kpis()) for g, m in groups.items()},
        actions=actions, actions_left_out=left_out,
        uplift=tuple(asdict(u) for u in uplift), pending_events=store.open_count(),
        confidence=1 - alpha, generated_at=time.time(),
        timeline=series, verdict=judged, holdout_fraction=holdout_fraction,
        treated_visitors_per_day=per_day,
        placements={p: {"actions": action_kpis(store, margin, p)}
                    for p in dict.fromkeys([*placements, *store.aggregates.placement_ids()])},
        per_action_uplift=per_action_uplift(store.aggregates.arm_sums(), margin, costed,
                                            alpha)),
        spend, now)


def treated_per_day(hours: list[dict], treated: Moments | None) -> float | None:
    """Treated visitors a day at the latest 24 hours' traffic: their decisions in those hours
    (scaled to a day when the log is younger) times visitors per decision so far."""
    if treated is None or not treated.n or not hours:
        return None
    last = hours[-1]["start"]
    recent = [b for b in hours if b["start"] > last - 24 * 3600]
    span_h = (last - recent[0]["start"]) / 3600 + 1
    decisions = sum(b["groups"].get("treatment", {}).get("decisions", 0) for b in recent)
    return decisions * 24 / span_h * treated.visitors / treated.n


def with_spend(report: Report, spend, now: float | None = None) -> Report:
    """``report`` with today's incentive spend and the daily budget, when ``spend`` (a
    :class:`~bandit.guardrails.SpendTracker`) has a budget."""
    if spend is None or spend.budget is None:
        return report
    from bandit.core.pacing import DayPlan

    budget, now = spend.budget, now or time.time()
    target = (None if budget.pacing == "none" else
              DayPlan(budget.timezone, budget.profile).planned(now, budget.daily))
    return replace(report, incentive_spend_today=spend.spent(now), daily_budget=budget.daily,
                   spend_target=target)


def with_engine(report: Report, engine, now: float | None = None) -> Report:
    """``report`` with the shop's name and currency and the serving model: its version and
    when the newest event it learned from closed (``age_s`` before ``now``; None while
    it has learned nothing)."""
    learned_until = engine.store.closed_ts(engine.last_learned_seq)
    now = time.time() if now is None else now
    price = engine.pacing_price
    # what each placement may show (the dashboard's preview offers these)
    placements = {pid: {**part, "choices": list(engine.config.placement(pid).actions)}
                  if pid in engine.config.placement_ids else part
                  for pid, part in (report.placements or {}).items()}
    return replace(report, shop=engine.config.name, currency=engine.config.currency,
                   placements=placements, policy_gate=engine.models.gates() or None,
                   pacing_price=None if price is None else price.price,
                   model={"version": engine.model_version, "learned_until": learned_until,
                          "age_s": None if learned_until is None else max(0.0, now - learned_until)})
