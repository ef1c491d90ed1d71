"""KPIs per group (treatment, holdout) and per action, and the uplift of treatment over holdout.

The visitor is the unit of randomization (holdout assignment is sticky per visitor), so KPIs per
visitor (conversions, revenue, profit and incentive cost per visitor) get Welch intervals over
per-visitor totals; ratio KPIs (conversion rate per decision, AOV) get delta-method intervals over
the same per-visitor totals. Events still waiting for an outcome count as not converted; the
report says how many are pending.

>>> import numpy as np
>>> ci = welch_interval(np.array([1.0, 2, 3, 4]), np.array([0.0, 1, 2, 3]), 0.05)
>>> round(ci[0], 6)
1.0
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

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

    def to_dict(self) -> dict:
        return asdict(self)


def _safe(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def welch_interval(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(difference of means, lower, upper) of a - b with Welch's t interval."""
    na, nb = len(a), len(b)
    diff = float(a.mean() - b.mean())
    va, vb = (a.var(ddof=1) / na if na > 1 else np.inf), (b.var(ddof=1) / nb if nb > 1 else np.inf)
    se2 = va + vb
    if not np.isfinite(se2):
        return diff, float("-inf"), float("inf")
    if se2 == 0:
        return diff, diff, diff
    df = se2**2 / ((va**2 / (na - 1) if na > 1 else 0) + (vb**2 / (nb - 1) if nb > 1 else 0))
    half = stats.t.ppf(1 - alpha / 2, df) * np.sqrt(se2)
    return diff, float(diff - half), float(diff + half)


def _ratio_var(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Ratio mean(y)/mean(x) over visitors and its delta-method variance."""
    n = len(x)
    mx = x.mean()
    if n < 2 or mx == 0:
        return _safe(y.sum(), x.sum()), float("inf")
    r = y.mean() / mx
    cov = np.cov(y, x, ddof=1)
    return float(r), float((cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * mx * mx))


def ratio_interval(yt, xt, yh, xh, alpha: float) -> tuple[float, float, float, float, float]:
    """(treatment ratio, holdout ratio, difference, lower, upper) by the delta method."""
    rt, vt = _ratio_var(yt, xt)
    rh, vh = _ratio_var(yh, xh)
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(vt + vh)
    return rt, rh, rt - rh, float(rt - rh - half), float(rt - rh + half)


def _kpis(rows: np.ndarray) -> Kpis:
    """KPIs from per-visitor rows (decisions, conversions, revenue, cost, profit)."""
    n = len(rows)
    decisions, conversions, revenue, cost, profit = (rows[:, i].sum() for i in range(5))
    return Kpis(n, int(decisions), int(conversions), _safe(conversions, decisions),
                _safe(revenue, conversions), _safe(conversions, n), _safe(revenue, n),
                _safe(profit, n), _safe(cost, n))


def build_report(store, margin: float, alpha: float = 0.05, spend=None,
                 now: float | None = None) -> Report:
    """Compute the report from an :class:`~bandit.store.EventStore` (``spend``: the engine's
    :class:`~bandit.guardrails.SpendTracker`, to show today's incentive spend)."""
    per_visitor = store.db.execute(
        "SELECT d.grp, d.action, d.visitor_hash, COUNT(*), COALESCE(SUM(c.converted), 0), "
        "COALESCE(SUM(c.order_value * c.converted), 0), COALESCE(SUM(c.cost), 0) "
        "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id "
        "GROUP BY d.grp, d.action, d.visitor_hash").fetchall()
    groups: dict[str, dict[str, np.ndarray]] = {}
    by_group: dict[str, dict] = {}
    by_action: dict[str, dict] = {}
    for grp, action, visitor, n, conv, rev, cost in per_visitor:
        row = np.array([n, conv, rev, cost, margin * rev - cost])
        for table, key in ((by_group, grp), (by_action, action)):
            acc = table.setdefault(key, {})
            acc[visitor] = acc.get(visitor, 0) + row
    for grp, acc in by_group.items():
        groups[grp] = np.array(list(acc.values()))
    uplift = []
    t, h = groups.get("treatment"), groups.get("holdout")
    if t is not None and h is not None and len(t) > 1 and len(h) > 1:
        for kpi, col in (("conversions_per_visitor", 1), ("revenue_per_visitor", 2),
                         ("profit_per_visitor", 4), ("cost_per_visitor", 3)):
            diff, lo, hi = welch_interval(t[:, col], h[:, col], alpha)
            hm = float(h[:, col].mean())
            uplift.append(Uplift(kpi, float(t[:, col].mean()), hm, diff, lo, hi,
                                 diff / hm if hm else None, "welch"))
        for kpi, num, den in (("conversion_rate", 1, 0), ("aov", 2, 1)):
            rt, rh, diff, lo, hi = ratio_interval(t[:, num], t[:, den], h[:, num], h[:, den], alpha)
            uplift.append(Uplift(kpi, rt, rh, diff, lo, hi, diff / rh if rh else None, "delta"))
    return Report(
        groups={g: asdict(_kpis(rows)) for g, rows in groups.items()},
        actions={a: asdict(_kpis(np.array(list(acc.values())))) for a, acc in by_action.items()},
        uplift=tuple(asdict(u) for u in uplift), pending_events=store.open_count(),
        confidence=1 - alpha, generated_at=time.time(),
        incentive_spend_today=(spend.spent(now or time.time())
                               if spend is not None and spend.budget else None),
        daily_budget=spend.budget.daily if spend is not None and spend.budget else None)


def timeline(store, margin: float, bins: int = 12, alpha: float = 0.05) -> dict:
    """Per group, KPIs per visitor in ``bins`` equal time slices, with Welch-style intervals.

    Returns {group: {"t": [...], "profit": [(mean, lower, upper)], "conversions": [...]}}.
    """
    rows = store.db.execute(
        "SELECT d.grp, d.visitor_hash, MIN(d.ts), COALESCE(SUM(c.converted), 0), "
        "COALESCE(SUM(c.order_value * c.converted), 0), COALESCE(SUM(c.cost), 0) "
        "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id "
        "GROUP BY d.grp, d.visitor_hash").fetchall()
    if not rows:
        return {}
    ts = np.array([r[2] for r in rows])
    edges = np.linspace(ts.min(), ts.max() + 1e-9, bins + 1)
    z = stats.norm.ppf(1 - alpha / 2)
    out: dict = {}
    for grp in sorted({r[0] for r in rows}):
        sel = np.array([r[0] == grp for r in rows])
        conv = np.array([r[3] for r in rows])[sel]
        profit = np.array([margin * r[4] - r[5] for r in rows])[sel]
        slot = np.digitize(ts[sel], edges[1:-1])
        series = {"t": [], "profit": [], "conversions": []}
        for b in range(bins):
            here = slot == b
            if here.sum() < 2:
                continue
            series["t"].append(float((edges[b] + edges[b + 1]) / 2))
            for name, values in (("profit", profit[here]), ("conversions", conv[here])):
                m, se = values.mean(), values.std(ddof=1) / np.sqrt(here.sum())
                series[name].append((float(m), float(m - z * se), float(m + z * se)))
        out[grp] = series
    return out


def plot_timeline(series: dict, path: str, currency: str = "") -> None:
    """Draw KPIs per visitor of each group over time with intervals (needs ``[plot]``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'cartwheel[plot]'") from None
    from datetime import datetime, timezone

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kpi, label in ((axes[0], "profit", f"profit per visitor {currency}"),
                           (axes[1], "conversions", "conversions per visitor")):
        for grp, s in series.items():
            t = [datetime.fromtimestamp(x, timezone.utc) for x in s["t"]]
            mean, lo, hi = (np.array(v) for v in zip(*s[kpi])) if s[kpi] else ([], [], [])
            ax.plot(t, mean, marker="o", label=grp)
            ax.fill_between(t, lo, hi, alpha=0.2)
        ax.set(title=label, xlabel="time (UTC)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
