"""Per-action uplift: holdout decisions record the draw a treated visitor would have got, and
the report compares each action's treated visitors with the holdout visitors it would have
gone to (bandit.insight.action_uplift). Seeded; the statistical check states its tolerance."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from engine_helpers import Clock, shop

import simulator
from bandit import Engine
from bandit.insight.action_uplift import ArmSums, cannibalized, per_action_uplift
from bandit.insight.report import build_report
from bandit.store.logread import read_log
from bandit.store.logwrite import write_log

WORLD = simulator.make_world("default")
T0 = 1_700_000_000.0
DAY = 86400.0


def run_shop(tmp, seed: int, rounds: int = 3, n: int = 1500, holdout: float = 0.5, **sections):
    """``rounds`` days of ``n`` new visitors each (one decision per visitor), outcomes drawn
    from the simulated world, each day's decisions closed before the next (so the policy has
    learned and draws by context from the second day on). Returns the engine, the config and
    per decision: the action drawn (shown, or would have been), its visitor's true conversion
    and profit effect against the control."""
    config = shop(holdout={"fraction": holdout}, **sections)
    clock = Clock(T0)
    engine = Engine.open(config, tmp, seed=seed, clock=clock)
    rng = np.random.default_rng(seed)
    index = {a: i for i, a in enumerate(WORLD.actions)}
    control = index[config.holdout.control]
    drawn, conv_effect, profit_effect = [], [], []
    for day in range(rounds):
        batch = WORLD.visitors(n, rng, start=day * n)
        decided = []
        for i in range(0, n, 250):
            decided += engine.decide_batch([(f"s{seed}d{day}v{j}", batch.contexts[j], None)
                                            for j in range(i, min(i + 250, n))])
        holdout = [d.group == "holdout" for d in decided]
        assert any(holdout) and not all(holdout)
        events = engine.store.db.execute(
            "SELECT event_id, would_have_action FROM decisions WHERE grp = 'holdout'")
        would = dict(events.fetchall())
        draws = np.array([index[would[d.event_id] if d.group == "holdout" else d.action]
                          for d in decided])
        shown = np.array([index[d.action] for d in decided])
        out = WORLD.outcomes(batch, shown, rng)
        for j in np.flatnonzero(out.converted):
            engine.record_outcome(decided[j].event_id, True, float(out.order_value[j]),
                                  commit=False)
        engine.commit()
        clock.t += 2 * DAY
        engine.expire()
        p, value = WORLD.conversion_rates(batch), WORLD.expected_rewards(batch)
        rows = np.arange(n)
        drawn += list(draws)
        conv_effect += list(p[rows, draws] - p[:, control])
        profit_effect += list(value[rows, draws] - value[:, control])
    return engine, config, np.array(drawn), np.array(conv_effect), np.array(profit_effect)


def test_holdout_rows_record_the_draw_a_treated_visitor_would_have_got(tmp_path):
    engine, config, *_ = run_shop(tmp_path / "data", seed=1, rounds=2, n=500)
    rows = engine.store.db.execute(
        "SELECT grp, action, would_have_action, would_have_probability, model_version "
        "FROM decisions").fetchall()
    holdout = [r for r in rows if r[0] == "holdout"]
    treated = [r for r in rows if r[0] == "treatment"]
    assert all(r[1] == "none" and r[2] in config.action_ids and 0 < r[3] <= 1 for r in holdout)
    assert all(r[2] is None and r[3] is None for r in treated)
    # drawn by the policy, not fixed: the draws spread over every action
    assert len({r[2] for r in holdout}) == len(config.action_ids)
    engine.close()


def test_holdout_draws_share_the_treated_probabilities(tmp_path):
    """A holdout draw is the same policy call as a treated visitor's: on the same context at
    the same (trained) model, the would-have probability of an action equals a treated
    visitor's probability of it."""
    engine, config, *_ = run_shop(tmp_path / "data", seed=3, rounds=1, n=1500)
    ctx = WORLD.visitors(1, np.random.default_rng(0)).contexts[0]
    after = engine.store.max_seq("decisions")
    decided = engine.decide_batch([(f"again{i}", ctx, None) for i in range(400)])
    rows = engine.store.db.execute(
        "SELECT grp, CASE grp WHEN 'holdout' THEN would_have_action ELSE action END, "
        "CASE grp WHEN 'holdout' THEN would_have_probability ELSE probability END "
        "FROM decisions WHERE seq > ?", (after,)).fetchall()
    assert {d.group for d in decided} == {"treatment", "holdout"}
    treated = {a: p for grp, a, p in rows if grp == "treatment"}
    assert len(set(treated.values())) > 1  # trained: the actions' probabilities differ
    shared = [(a, p) for grp, a, p in rows if grp == "holdout" and a in treated]
    assert len(shared) > 100
    for action, p in shared:
        assert p == pytest.approx(treated[action], abs=1e-12), action
    engine.close()


def test_would_have_draws_face_the_caps_a_treated_visitor_would(tmp_path):
    """A holdout visitor's earlier would-have incentives count toward their caps: with one
    incentive allowed a week, a second would-have incentive is never drawn."""
    config = shop(holdout={"fraction": 0.9}, caps={"incentives_per_visitor": 1,
                                                   "incentives_window_s": 7 * DAY})
    clock = Clock(T0)
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    costed = config.costed_ids
    for visitor in range(30):
        # a batch of three requests (decided in rounds), then nine on their own
        engine.decide_batch([(f"v{visitor}", {}, None)] * 3)
        for _ in range(9):
            clock.t += 60
            engine.decide(f"v{visitor}", {})
    per_visitor = engine.store.db.execute(
        "SELECT visitor_hash, SUM(would_have_action IN (%s)) FROM decisions "
        "WHERE grp = 'holdout' GROUP BY 1" % ",".join("?" * len(costed)),
        sorted(costed)).fetchall()
    assert len(per_visitor) >= 20
    assert max(n for _, n in per_visitor) == 1  # a second incentive would break the cap
    # and the first was drawn: 3 of the 8 actions are incentives, 12 draws each
    assert sum(n for _, n in per_visitor) >= len(per_visitor) - 2
    engine.close()


def test_export_carries_group_and_the_would_have_draw(tmp_path):
    engine, config, *_ = run_shop(tmp_path / "data", seed=2, rounds=1, n=300)
    engine.close()
    data, _ = read_log(tmp_path / "data", config, "sqlite", now=T0 + 10 * DAY)
    path = tmp_path / "log.jsonl"
    write_log(data, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 300 and {r["group"] for r in lines} == {"treatment", "holdout"}
    for r in lines:
        has = "would_have_action" in r
        assert has == (r["group"] == "holdout")
        if has:
            assert r["would_have_action"] in config.action_ids
            assert 0 < r["would_have_probability"] <= 1
    again, report = read_log(path, config)
    assert report.problems == [] and len(again) == 300
    np.testing.assert_array_equal(again.would_have, data.would_have)
    assert list(again.groups) == list(data.groups)
    # Parquet keeps them too (a holdout row's columns are not the first row's)
    pytest.importorskip("pyarrow")
    write_log(data, tmp_path / "log.parquet")
    from_parquet, _ = read_log(tmp_path / "log.parquet", config)
    np.testing.assert_array_equal(from_parquet.would_have, data.would_have)


def test_cannibalized_spend_in_a_closed_form_case(tmp_path):
    """Everyone is drawn discount_10 (the only eligible action): of nt >= 10 treated visitors
    4 buy for 100 (cost 10 each), of nh >= 10 holdout visitors 1 does. Cost per treated
    conversion 10, holdout rate 1/nh: 10 x nt / nh of the 40 paid went to visitors who would
    have bought anyway (10 with ten on each side)."""
    config = shop(holdout={"fraction": 0.5})
    clock = Clock(T0)
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    treated, holdout, i = [], [], 0
    while len(treated) < 10 or len(holdout) < 10:
        d = engine.decide(f"v{i}", {}, ["discount_10"])
        (treated if d.group == "treatment" else holdout).append(d)
        i += 1
    for d in treated[:4] + holdout[:1]:
        engine.record_outcome(d.event_id, True, 100.0)
    clock.t += 2 * DAY
    engine.expire()
    report = build_report(engine.store, config.objective.margin, costed=config.costed_ids)
    (row,) = [r for r in report.per_action_uplift if r["action"] == "discount_10"]
    nt, nh = len(treated), len(holdout)
    assert row["treated"]["visitors"] == nt and row["holdout"]["visitors"] == nh
    spent = row["cannibalized_spend"]
    assert spent["spend"] == pytest.approx(40.0)
    msgspec.json.encode(report.to_dict())  # plain numbers: the HTTP answer encodes them
    assert spent["total"] == pytest.approx(10.0 * (1 / nh) * nt)
    # delta method: cost per conversion is exactly 10 (no spread), so the interval is the
    # holdout rate's: 10 x nt x 1.96 x sd(rate)
    sd = np.sqrt((1 / nh) * (1 - 1 / nh) * nh / (nh - 1) / nh)
    assert spent["upper"] == pytest.approx(min(spent["total"] + 10 * nt * 1.959964 * sd, 40.0))
    assert row["conversion_uplift"]["difference"] == pytest.approx(4 / nt - 1 / nh)
    margin = config.objective.margin
    assert row["profit_uplift"]["difference"] == pytest.approx(
        (4 * (margin * 100 - 10)) / nt - margin * 100 / nh)
    engine.close()


def test_cannibalized_spend_is_at_most_the_spend():
    """An incentive that lowers conversion would 'cannibalize' more than it cost: capped."""
    t = ArmSums(10, 1, 100, 10, 10000, 100, 1000, 10)
    h = ArmSums(10, 5, 500, 0, 50000, 0, 0, 0)
    out = cannibalized(t, h, 0.05)
    assert out["total"] == pytest.approx(10.0) and out["upper"] == pytest.approx(10.0)


def test_the_key_is_there_before_any_outcome_is_final(tmp_path):
    config = shop(holdout={"fraction": 0.5})
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=Clock(T0))
    engine.decide_batch([(f"v{i}", {}, None) for i in range(50)])
    report = build_report(engine.store, config.objective.margin)
    assert report.per_action_uplift == [] and report.to_dict()["per_action_uplift"] == []
    engine.close()


@pytest.mark.slow
def test_per_action_intervals_cover_the_simulated_truth(tmp_path):
    """Over 24 seeded shops (3 days each, the policy learning between days, so the draws
    depend on the context), each action's 95% interval of the conversion and profit uplift
    covers its true effect on the visitors drawn it (the mean over both groups' drawn
    visitors of the world's exact effect against the control) at a rate in [0.90, 0.99]
    (384 intervals per KPI; a correct 95% interval lands there with probability > 0.99)."""
    covered = {"conversion": [], "profit": []}
    for seed in range(24):
        engine, config, drawn, conv, profit = run_shop(tmp_path / f"s{seed}", seed=seed)
        report = build_report(engine.store, config.objective.margin, costed=config.costed_ids)
        engine.close()
        assert sum(r["treated"]["visitors"] + r["holdout"]["visitors"]
                   for r in report.per_action_uplift) == len(drawn)
        index = {a: i for i, a in enumerate(WORLD.actions)}
        for row in report.per_action_uplift:
            units = drawn == index[row["action"]]
            for kpi, effect in (("conversion", conv), ("profit", profit)):
                u = row[f"{kpi}_uplift"]
                covered[kpi].append(u["lower"] <= effect[units].mean() <= u["upper"])
    for kpi, hits in covered.items():
        assert len(hits) == 24 * len(WORLD.actions)
        assert 0.90 <= np.mean(hits) <= 0.99, (kpi, np.mean(hits))


def test_rows_are_grouped_per_placement_and_action():
    rows = [("treatment", "cart", "discount_5", 3, 1, 50, 5, 2500, 25, 250, 5),
            ("holdout", "cart", "discount_5", 2, 0, 0, 0, 0, 0, 0, 0),
            ("treatment", "product", "none", 2, 0, 0, 0, 0, 0, 0, 0)]
    out = per_action_uplift(rows, 0.3, {"discount_5"})
    assert [(r["placement"], r["action"]) for r in out] == [("cart", "discount_5"),
                                                           ("product", "none")]
    assert out[0]["cannibalized_spend"] is not None and out[1]["cannibalized_spend"] is None
    assert out[1]["holdout"]["visitors"] == 0 and out[1]["profit_uplift"]["lower"] is None


def test_a_visitor_is_one_unit_under_their_first_draw(tmp_path):
    """Each visitor counts once per placement, under the action of their first decision
    there, with that decision's outcome: a later decision adds no unit."""
    config = shop(holdout={"fraction": 0.5})
    clock = Clock(T0)
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    firsts = [engine.decide(f"v{i}", {}, ["discount_10"]) for i in range(40)]
    clock.t += 600
    for i in range(40):
        engine.decide(f"v{i}", {}, ["free_shipping"])
    clock.t += 2 * DAY
    engine.expire()
    report = build_report(engine.store, config.objective.margin, costed=config.costed_ids)
    assert [r["action"] for r in report.per_action_uplift] == ["discount_10"]
    (row,) = report.per_action_uplift
    assert row["treated"]["visitors"] + row["holdout"]["visitors"] == 40
    assert row["treated"]["visitors"] == sum(d.group == "treatment" for d in firsts)
    engine.close()
