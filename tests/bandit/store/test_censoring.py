"""Censoring: a young log's decisions count only once their attribution window has passed,
whether or not they converted early (bandit.store.logread, "Censoring"). Seeded; the one
statistical check states its tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop

import simulator
from bandit import Engine
from bandit.domain.errors import CartwheelError
from bandit.insight.report import build_report
from bandit.store.events import EventStore
from bandit.store.logread import read_log
from bandit.store.logwrite import write_log

WORLD = simulator.make_world("default")
T0 = 1_700_000_000.0
DAY = 86400.0


def young_log(tmp, seed: int, n: int = 6000):
    """``n`` visitors over 36 hours of a shop with a 24 h window; each order is reported
    when it happens (the world's delays), up to the last visitor's time. Returns the data
    dir, the config, the decision times, each decision's true expected reward, and the end."""
    config = shop(holdout={"fraction": 0.0})
    clock = Clock(T0)
    engine = Engine.open(config, tmp / "data", seed=0, clock=clock)
    rng = np.random.default_rng(seed)
    span = 36 * 3600.0
    batch = WORLD.visitors(n, rng)
    times = T0 + np.sort(rng.uniform(0, span, n))
    decided, truth = [], []
    R = WORLD.expected_rewards(batch)
    index = {a: i for i, a in enumerate(WORLD.actions)}
    for i in range(n):
        clock.t = float(times[i])
        d = engine.decide(f"v{i}", batch.contexts[i], commit=False)
        decided.append(d)
        truth.append(R[i, index[d.action]])
    engine.commit()
    actions = np.array([index[d.action] for d in decided])
    out = WORLD.outcomes(batch, actions, rng)
    end = T0 + span
    orders = sorted((times[i] + out.delay_s[i], i) for i in np.flatnonzero(out.converted))
    for at, i in orders:
        if at <= end:
            engine.record_outcome(decided[i].event_id, True, float(out.order_value[i]),
                                  now=float(at), commit=False)
    engine.commit()
    engine.close()
    return tmp / "data", config, times, np.array(truth), end


@pytest.fixture(scope="module")
def young(tmp_path_factory):
    return young_log(tmp_path_factory.mktemp("young"), seed=11)


def test_only_decisions_past_their_window_are_read(young):
    data_dir, config, times, truth, end = young
    data, report = read_log(data_dir, config, "sqlite", now=end)
    final = times < end - DAY
    assert len(data) == final.sum() and report.pending == (~final).sum()
    assert "still inside their 24 h attribution window" in report.summary()
    np.testing.assert_array_equal(np.sort(data.ts), times[final])
    # a conversion reported early for a decision still in its window is not read
    store = EventStore.read_only(data_dir / "events.sqlite3")
    early = store.db.execute("SELECT COUNT(*) FROM closed c JOIN decisions d ON d.event_id = "
                             "c.event_id WHERE d.ts >= ?", (end - DAY,)).fetchone()[0]
    store.close()
    assert early > 100  # the bias censoring avoids was there to be made


@pytest.mark.slow
def test_the_logging_value_of_a_young_log_covers_the_truth(tmp_path):
    """Over 30 seeded young logs, the logging policy's value read from the final decisions
    has a 95% normal interval that covers its simulated truth (the mean expected reward of
    those decisions) in at least 25 (binomial: below 1% chance at a true 95%); the same
    interval from every closed decision (the open ones' early conversions in) covers it in
    at most 5."""
    covered = biased_covered = 0
    for seed in range(30):
        data_dir, config, times, truth, end = young_log(tmp_path / f"s{seed}", seed, n=3000)
        data, _ = read_log(data_dir, config, "sqlite", now=end)
        want = truth[times < end - DAY].mean()
        covered += _covers(data.rewards, want)
        store = EventStore.read_only(data_dir / "events.sqlite3")
        early = np.array([r[0] for r in store.db.execute(
            "SELECT c.reward FROM closed c JOIN decisions d ON d.event_id = c.event_id "
            "WHERE d.ts >= ?", (end - DAY,))])
        store.close()
        biased_covered += _covers(np.concatenate([data.rewards, early]), want)
    print(f"covered {covered}/30, uncensored {biased_covered}/30")
    assert covered >= 25, covered
    assert biased_covered <= 5, biased_covered


def _covers(rewards, truth) -> bool:
    half = 1.96 * rewards.std(ddof=1) / np.sqrt(len(rewards))
    return abs(rewards.mean() - truth) <= half


def test_a_young_log_is_refused_saying_when_it_will_do(young):
    data_dir, config, times, truth, end = young
    with pytest.raises(ValueError, match="no decision in the log has a final outcome yet"):
        read_log(data_dir, config, "sqlite", now=T0 + 3600)
    data, report = read_log(data_dir, config, "sqlite", now=T0 + DAY + 1800)
    assert 0 < report.usable < 200
    with pytest.raises(CartwheelError, match=r"only \d+ decisions have a final outcome .* 200 "
                                             r"will by 2023-11-\d\d \d\d:\d\d UTC"):
        report.require_final()
    data, report = read_log(data_dir, config, "sqlite", now=end)
    report.require_final()  # enough now


def test_the_reports_action_kpis_count_final_decisions_only(young, tmp_path):
    data_dir, config, times, truth, end = young
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    engine = Engine.open(config, copy, seed=0, clock=Clock(end))
    report = build_report(engine.store, config.objective.margin)
    assert report.actions == {} and report.actions_left_out == len(times)  # nothing expired
    engine.expire()  # at the end of the log: the decisions past their window are final
    report = build_report(engine.store, config.objective.margin)
    final = times < end - DAY
    assert sum(k["decisions"] for k in report.actions.values()) == final.sum()
    assert report.actions_left_out == (~final).sum()
    data, _ = read_log(copy, config, "sqlite", now=end)  # the same decisions, the same sums
    assert sum(k["conversions"] for k in report.actions.values()) == np.count_nonzero(
        data.rewards > 0)
    # the final totals are the scan of the final decisions, sum for sum
    scan = engine.store.db.execute(
        "SELECT d.grp, d.action, COUNT(*), COALESCE(SUM(c.converted), 0), "
        "COALESCE(SUM(c.order_value * c.converted), 0), COALESCE(SUM(c.cost), 0) "
        "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id WHERE d.ts < ? "
        "GROUP BY d.grp, d.action ORDER BY d.grp, d.action", (end - DAY,)).fetchall()
    kept = [row[:6] for row in engine.store.aggregates.final_action_sums()]
    assert len(kept) == len(scan)
    for got, want in zip(kept, scan):
        assert got[:2] == want[:2] and got[2:] == pytest.approx(want[2:], rel=1e-12)
    engine.close()


def test_export_writes_open_decisions_only_when_asked_and_marked(young, tmp_path):
    data_dir, config, times, truth, end = young
    data, _ = read_log(data_dir, config, "sqlite", now=end, include_open=True)
    assert len(data) == len(times) and data.open.sum() == (times >= end - DAY).sum()
    path = tmp_path / "all.jsonl"
    write_log(data, path)
    back, report = read_log(path, config)  # a reader leaves the open ones out
    assert len(back) == (times < end - DAY).sum() and report.pending == data.open.sum()
