"""Retention (``[storage] keep_days``, ``Engine.compact``): exactly the decisions past the
horizon, final and covered by every kept snapshot go, with their rows; the report's history,
the model and its restore stay as they were (bandit.store.retention, bandit.core.retention)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop

from bandit import Engine
from bandit.domain.errors import UnknownEventError
from bandit.insight.report import build_report

T0 = 1_700_000_000.0
DAY = 86400.0


def _days(engine, clock, days: int, per_day: int = 60, seed: int = 0) -> list:
    """``days`` of traffic (a third converting), each day closed (expired as of an hour on,
    past the 1 h window) and snapshotted: every kept snapshot covers the days before it."""
    rng = np.random.default_rng(seed)
    decided = []
    for day in range(days):
        for i in range(per_day):
            d = engine.decide(f"d{day}v{i}", {"cart_value": float(i)}, commit=False)
            decided.append((d, clock.t))
            if rng.random() < 0.33:
                engine.record_outcome(d.event_id, True, float(rng.uniform(10, 90)),
                                      commit=False)
            clock.t += DAY / per_day
        engine.commit()
        engine.expire(now=clock.t + 3601)
        engine.snapshot()
    return decided


def _report(engine):
    r = build_report(engine.store, engine.config.objective.margin).to_dict()
    return {k: r[k] for k in ("groups", "actions", "uplift", "per_action_uplift", "timeline",
                              "placements")}


@pytest.fixture
def grown(tmp_path):
    config = shop(holdout={"fraction": 0.3}, attribution={"window_s": 3600.0},
                  storage={"keep_days": 3})
    clock = Clock(T0)
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    decided = _days(engine, clock, 6)
    return engine, config, clock, decided


def test_exactly_the_old_final_covered_decisions_go_and_the_report_stays(grown):
    engine, config, clock, decided = grown
    before = _report(engine)
    model = engine.models.first.learner.policy.get_state()
    removed = engine.compact()
    # 6 days kept 3: days 0-2 go (the oldest kept snapshot, after day 3, covers more)
    horizon = clock.t - 3 * DAY
    old = [d.event_id for d, at in decided if at < horizon]
    assert removed == len(old) > 0
    kept = {r[0] for r in engine.store.db.execute("SELECT event_id FROM decisions")}
    assert kept == {d.event_id for d, at in decided if at >= horizon}
    for table in ("closed", "outcomes"):  # nothing of a removed decision stays behind
        orphans = engine.store.db.execute(
            f"SELECT COUNT(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM decisions d "
            "WHERE d.event_id = t.event_id)").fetchone()[0]
        assert orphans == 0, table
    assert _report(engine) == before  # the history is in the aggregates
    # the per-visitor totals hold the kept window's visitors, not every one ever
    kept_visitors = engine.store.db.execute(
        "SELECT COUNT(DISTINCT visitor_hash) FROM decisions").fetchone()[0]
    assert engine.store.db.execute("SELECT COUNT(*) FROM visitor_totals").fetchone()[0] \
        == kept_visitors
    state = engine.models.first.learner.policy.get_state()
    assert all(np.array_equal(model[k], state[k]) for k in model)
    with pytest.raises(UnknownEventError):  # an outcome for a removed decision: 404
        engine.record_outcome(old[0], True, 10.0)
    assert engine.compact() == 0  # nothing more until time moves on
    # a restart restores from the snapshot and re-learns only what is kept: the same model
    engine.close()
    again = Engine.open(config, engine.data_dir, seed=0, clock=clock)
    restored = again.models.first.learner.policy.get_state()
    assert all(np.allclose(state[k], restored[k]) if state[k].dtype.kind == "f"
               else np.array_equal(state[k], restored[k]) for k in state)
    assert _report(again) == before
    again.close()


def test_nothing_a_restore_needs_goes_without_a_snapshot(grown):
    engine, config, clock, decided = grown
    for path in engine.snapshot_dir.glob("snapshot-*"):
        path.unlink()
    assert engine.compact() == 0
    engine.close()


def test_the_newest_row_stays_when_everything_is_old(grown):
    engine, config, clock, decided = grown
    clock.t += 30 * DAY  # a shop idle for a month
    engine.expire()
    newest = engine.snapshot()
    for path in engine.snapshot_dir.glob("snapshot-*"):  # only what every snapshot covers
        if path.stem != newest.stem:                     # goes: keep the newest alone
            path.unlink()
    # all but the newest decision and the one with the newest closing (each table keeps its
    # newest row, so its sequence numbers go on growing from there)
    removed = engine.compact()
    kept = [r[0] for r in engine.store.db.execute("SELECT seq FROM decisions")]
    assert removed == len(decided) - len(kept) and 1 <= len(kept) <= 2
    assert max(kept) == len(decided)
    assert engine.decide("back", {}).event_id
    assert engine.store.max_seq("decisions") == len(decided) + 1
    engine.close()


def test_keep_days_never_undercuts_what_caps_and_attribution_read():
    capped = shop(storage={"keep_days": 1}, caps={"incentives_per_visitor": 1,
                                                  "incentives_window_s": 10 * DAY})
    assert capped.retention_s == 10 * DAY
    assert shop(storage={"keep_days": 0}).retention_s is None
    assert shop(storage={"keep_days": 0.01}, attribution={"window_s": DAY}).retention_s == DAY
