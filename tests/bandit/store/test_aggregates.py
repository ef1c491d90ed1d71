"""The report's incremental aggregates equal a full scan of the log after any mix of
decisions, outcomes, expiries, rolled-back groups and restarts; a store written before they
existed is backfilled once; the per-hour timeline equals textbook per-decision formulas."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop
from scipy import stats

from bandit import Engine
from bandit.insight.timeline import timeline
from bandit.store import aggregates as store_aggregates
from bandit.store.events import EventStore

MARGIN = 0.3
CONFIG = shop(holdout={"fraction": 0.3}, objective={"margin": MARGIN},
              attribution={"window_s": 7200})


def _traffic(engine, clock, rng, n):
    """Returning visitors over several hours; some convert, some are left to expire."""
    events = []
    for i in range(n):
        d = engine.decide(f"v{rng.integers(0, n // 3)}",
                          {"cart_value": float(rng.uniform(5, 200))}, commit=False)
        events.append(d.event_id)
        if rng.random() < 0.2:  # a recent decision converts (a conversion closes it)
            engine.record_outcome(events.pop(rng.integers(max(0, len(events) - 20),
                                                          len(events))),
                                  True, float(rng.gamma(2.0, 30.0)), commit=False)
        clock.t += float(rng.exponential(40.0))
        if i % 97 == 0:
            engine.commit()
            engine.expire()
    engine.commit()


# the report's sums the slow way: grouped over the whole log
_SCAN_MOMENTS = """
WITH v AS (
    SELECT d.grp AS grp, COUNT(*) AS n, COALESCE(SUM(c.converted), 0) AS c,
           COALESCE(SUM(c.order_value * c.converted), 0) AS r, COALESCE(SUM(c.cost), 0) AS k
    FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id
    GROUP BY d.grp, d.visitor_hash),
w AS (SELECT grp, n, c, r, k, :m * r - k AS p FROM v)
SELECT grp, COUNT(*), SUM(n), SUM(c), SUM(r), SUM(k), SUM(p), SUM(n * n), SUM(c * c),
       SUM(r * r), SUM(k * k), SUM(p * p), SUM(c * n), SUM(r * c)
FROM w GROUP BY grp ORDER BY grp
"""
_SCAN_SUMS = """
SELECT {keys}, COUNT(*), COALESCE(SUM(c.converted), 0),
       COALESCE(SUM(c.order_value * c.converted), 0), COALESCE(SUM(c.cost), 0),
       COALESCE(SUM(c.order_value * c.converted * c.order_value * c.converted), 0),
       COALESCE(SUM(c.cost * c.cost), 0), COALESCE(SUM(c.order_value * c.converted * c.cost), 0)
FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id
GROUP BY {keys} ORDER BY {keys}
"""


def scan_moments(db):
    return db.execute(_SCAN_MOMENTS, {"m": MARGIN}).fetchall()


def _equal(kept, scanned, keys: int):
    assert [row[:keys] for row in kept] == [row[:keys] for row in scanned]
    assert np.array([r[keys:] for r in kept], dtype=float) == pytest.approx(
        np.array([r[keys:] for r in scanned], dtype=float), rel=1e-9, abs=1e-9)


def _assert_equal_to_scan(store):
    _equal(store.aggregates.group_moments(MARGIN), scan_moments(store.db), 2)
    _equal(store.aggregates.action_sums(), store.db.execute(
        _SCAN_SUMS.format(keys="d.grp, d.action")).fetchall(), 2)
    _equal(store.aggregates.hourly(0), store.db.execute(_SCAN_SUMS.format(
        keys="CAST(d.ts / 3600 AS INTEGER), d.grp, d.action")).fetchall(), 3)


def test_aggregates_follow_the_log_through_rollbacks_and_restarts(tmp_path):
    clock, rng = Clock(), np.random.default_rng(3)
    engine = Engine.open(CONFIG, tmp_path, seed=0, clock=clock)
    _traffic(engine, clock, rng, 1500)
    # a group that is rolled back must leave the aggregates as the log: untouched
    before = engine.store.aggregates.group_moments(MARGIN)
    for i in range(20):
        engine.decide(f"rolled{i}", {"cart_value": 30.0}, commit=False)
    engine.store.rollback()
    assert engine.store.aggregates.group_moments(MARGIN) == before
    _assert_equal_to_scan(engine.store)  # and the next commit folds from where it was
    engine.close()
    engine = Engine.open(CONFIG, tmp_path, seed=1, clock=clock)
    _traffic(engine, clock, rng, 800)
    clock.t += 10 * 7200
    engine.expire()
    engine.commit()
    assert engine.store.open_count() == 0
    assert engine.store.count("closed") == engine.store.count("decisions")
    _assert_equal_to_scan(engine.store)
    engine.close()


def test_a_store_from_before_the_aggregates_is_backfilled_once(tmp_path, caplog):
    clock, rng = Clock(), np.random.default_rng(5)
    engine = Engine.open(CONFIG, tmp_path, seed=0, clock=clock)
    _traffic(engine, clock, rng, 1000)
    engine.close()
    path = tmp_path / "events.sqlite3"
    # what an older cartwheel wrote: no aggregate tables, triggers or meta keys
    old = EventStore(path)
    for name in ("agg_visitor_new", "agg_visitor_change"):
        old.db.execute(f"DROP TRIGGER {name}")
    for name in ("visitor_totals", "moment_totals", "action_totals", "hourly"):
        old.db.execute(f"DROP TABLE {name}")
    old.db.execute("DELETE FROM meta WHERE key IN ('aggregates', 'aggregates_folded')")
    old.db.close()
    reader = EventStore.read_only(path)  # a read-only report of it says what to do
    assert not store_aggregates.installed(reader.db)
    with pytest.raises(RuntimeError, match="start `cartwheel serve`"):
        reader.aggregates.group_moments(MARGIN)
    reader.close()
    with caplog.at_level("WARNING"):
        engine = Engine.open(CONFIG, tmp_path, seed=0, clock=clock)
    assert "report aggregates built from 1000 logged decisions" in caplog.text
    _assert_equal_to_scan(engine.store)
    _traffic(engine, clock, rng, 500)  # and the triggers keep it up to date afterwards
    _assert_equal_to_scan(engine.store)
    engine.close()
    caplog.clear()
    with caplog.at_level("WARNING"):
        Engine.open(CONFIG, tmp_path, seed=0, clock=clock).close()
    assert "report aggregates built" not in caplog.text  # once


def test_hourly_timeline_equals_per_decision_welch(tmp_path):
    clock, rng = Clock(1_700_000_000.0 - 1_700_000_000.0 % 86400), np.random.default_rng(9)
    engine = Engine.open(CONFIG, tmp_path, seed=0, clock=clock)
    _traffic(engine, clock, rng, 3000)
    store = engine.store
    series = timeline(store, MARGIN, alpha=0.1)
    rows = store.db.execute(
        "SELECT CAST(d.ts / 3600 AS INTEGER), d.grp, d.action, COALESCE(c.converted, 0), "
        "COALESCE(c.order_value * c.converted, 0), COALESCE(c.cost, 0) "
        "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id").fetchall()
    hour, grp, action = (np.array([r[i] for r in rows]) for i in range(3))
    conv, rev, cost = (np.array([r[i] for r in rows], dtype=float) for i in range(3, 6))
    profit = MARGIN * rev - cost
    assert len(series["hour"]) == min(48, len(set(hour)))
    assert len(series["day"]) == len(set(hour // 24))
    checked = 0
    for bucket in series["hour"]:
        here = hour == bucket["start"] // 3600
        t, h = here & (grp == "treatment"), here & (grp == "holdout")
        assert bucket["groups"]["treatment"]["decisions"] == t.sum()
        assert bucket["groups"]["treatment"]["profit_per_decision"] == pytest.approx(
            profit[t].mean())
        mix = {a: int((t & (action == a)).sum()) for a in set(action[t])}
        assert bucket["treatment_actions"] == mix
        if bucket["uplift"] is None:
            assert min(t.sum(), h.sum()) < 2
            continue
        for kpi, values in (("profit_per_decision", profit), ("conversion_rate", conv)):
            ci = stats.ttest_ind(values[t], values[h], equal_var=False).confidence_interval(0.9)
            up = bucket["uplift"][kpi]
            assert (up["lower"], up["upper"]) == pytest.approx((ci.low, ci.high), rel=1e-6)
            assert up["difference"] == pytest.approx(values[t].mean() - values[h].mean())
        checked += 1
    assert checked >= 20
    day = series["day"][-1]
    here = (hour // 24) == day["start"] // 86400
    assert day["groups"]["holdout"]["decisions"] == (here & (grp == "holdout")).sum()
    engine.close()
