"""The report: KPIs and intervals from SQL-side sums equal the textbook per-visitor formulas;
one report computation serves concurrent requests."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from engine_helpers import Clock, shop
from scipy import stats

from bandit import Engine
from bandit.http.serving import SingleFlight
from bandit.insight.report import build_report
from bandit.insight.stats import welch_interval

MARGIN = 0.3


def _per_visitor(store, group):
    """Per-visitor totals (decisions, conversions, revenue, cost, profit), straight from SQL."""
    rows = store.db.execute(
        "SELECT COUNT(*), COALESCE(SUM(c.converted), 0), "
        "COALESCE(SUM(c.order_value * c.converted), 0), COALESCE(SUM(c.cost), 0) "
        "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id WHERE d.grp = ? "
        "GROUP BY d.visitor_hash", (group,)).fetchall()
    n, c, r, k = np.array(rows, dtype=float).T
    return n, c, r, k, MARGIN * r - k


def _delta(y, x):
    """Textbook delta-method variance of sum(y)/sum(x) over visitors."""
    r, mx = y.sum() / x.sum(), x.mean()
    cov = np.cov(y, x, ddof=1)
    return r, (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (len(x) * mx * mx)


@pytest.fixture(scope="module")
def store_report(tmp_path_factory):
    clock = Clock()
    engine = Engine.open(shop(holdout={"fraction": 0.3}, objective={"margin": MARGIN}),
                         tmp_path_factory.mktemp("report"), seed=0, clock=clock)
    rng = np.random.default_rng(7)
    for i in range(3000):  # visitors come back: per-visitor totals are not single decisions
        d = engine.decide(f"v{rng.integers(0, 1200)}", {"cart_value": float(rng.uniform(5, 200))},
                          commit=False)
        if rng.random() < 0.15:
            engine.record_outcome(d.event_id, True, float(rng.gamma(2.0, 30.0)), commit=False)
        clock.t += 1
    engine.commit()
    clock.t += engine.config.attribution.window_s + 1
    engine.expire()  # every decision's outcome final: the per-action KPIs count them all
    yield engine.store, build_report(engine.store, MARGIN, alpha=0.1)
    engine.close()


def test_kpis_and_intervals_equal_the_per_visitor_formulas(store_report):
    store, report = store_report
    t, h = _per_visitor(store, "treatment"), _per_visitor(store, "holdout")
    uplift = {u["kpi"]: u for u in report.uplift}
    for kpi, col in (("conversions_per_visitor", 1), ("revenue_per_visitor", 2),
                     ("cost_per_visitor", 3), ("profit_per_visitor", 4)):
        diff, lo, hi = welch_interval(t[col], h[col], 0.1)
        assert (uplift[kpi]["difference"], uplift[kpi]["lower"], uplift[kpi]["upper"]) == \
            pytest.approx((diff, lo, hi), rel=1e-9, abs=1e-12)
        # and Welch's interval is scipy's, not only our own formula twice
        ci = stats.ttest_ind(t[col], h[col], equal_var=False).confidence_interval(0.9)
        assert (uplift[kpi]["lower"], uplift[kpi]["upper"]) == pytest.approx(
            (ci.low, ci.high), rel=1e-9, abs=1e-12)
    z = stats.norm.ppf(0.95)
    for kpi, y, x in (("conversion_rate", 1, 0), ("aov", 2, 1)):
        (rt, vt), (rh, vh) = _delta(t[y], t[x]), _delta(h[y], h[x])
        half = z * np.sqrt(vt + vh)
        assert (uplift[kpi]["treatment"], uplift[kpi]["holdout"], uplift[kpi]["lower"],
                uplift[kpi]["upper"]) == pytest.approx((rt, rh, rt - rh - half, rt - rh + half),
                                                       rel=1e-9)
    groups = report.groups
    assert groups["treatment"]["visitors"] == len(t[0])
    assert groups["holdout"]["decisions"] == int(h[0].sum())
    assert groups["treatment"]["profit_per_visitor"] == pytest.approx(t[4].mean(), rel=1e-12)
    # actions per decision, straight from SQL
    per_action = store.db.execute(
        "SELECT d.action, COUNT(*), COALESCE(SUM(c.converted), 0), "
        "COALESCE(SUM(c.order_value * c.converted), 0), COALESCE(SUM(c.cost), 0) "
        "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id GROUP BY d.action"
    ).fetchall()
    assert set(report.actions) == {row[0] for row in per_action}
    for action, n, c, r, k in per_action:
        got = report.actions[action]
        assert (got["decisions"], got["conversions"]) == (n, c)
        assert (got["conversion_rate"], got["aov"], got["revenue_per_decision"],
                got["profit_per_decision"], got["cost_per_decision"]) == pytest.approx(
            (c / n, r / c if c else 0.0, r / n, (MARGIN * r - k) / n, k / n), rel=1e-12)


def test_concurrent_report_requests_share_one_computation():
    release, calls = threading.Event(), []

    def compute():
        calls.append(1)
        release.wait(10)
        return len(calls)

    flight = SingleFlight(compute)

    async def scenario():
        waiting = [asyncio.ensure_future(flight()) for _ in range(5)]
        await asyncio.sleep(0.05)  # all five are waiting on the one running computation
        release.set()
        first = await asyncio.gather(*waiting)
        return first, await flight()  # finished: the next call computes anew

    first, later = asyncio.run(scenario())
    assert first == [1] * 5 and later == 2 and len(calls) == 2
