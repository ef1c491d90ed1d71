"""Budget pacing: the day's plan, the shadow price's recursion in closed form, prices inside
the policies' choice, the engine's price replayed exactly after a restart, the replica's copy
from the trainer, the config's errors and the report's target."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from engine_helpers import Clock, shop, shop_doc

import policies
import simulator
from bandit import Engine
from bandit.config.shop import parse_config
from bandit.core import pacing
from bandit.core.pacing import (
    PRIOR_DECISIONS,
    STEP_S,
    DayPlan,
    PacingPrice,
    ShadowPrice,
)
from bandit.domain.errors import ConfigError
from simulator.worlds.online import drive

MIDNIGHT = 1_700_006_400.0  # 2023-11-15 00:00 UTC


@pytest.mark.parametrize("day, buckets", [((2026, 3, 29), 92), ((2026, 10, 25), 100),
                                          ((2026, 6, 1), 96)])
def test_a_day_plan_spends_the_whole_budget_on_every_day_dst_included(day, buckets):
    zone = "Europe/Berlin"
    start = datetime(*day, tzinfo=ZoneInfo(zone)).timestamp()
    first = int(start // STEP_S)
    even = DayPlan(zone, None)
    assert even.day_of(first) == (first, first + buckets)
    np.testing.assert_allclose([even.share(b) for b in range(first, first + buckets)],
                               1.0 / buckets, rtol=1e-12)
    weights = np.arange(1.0, 25.0)  # more in the evening
    plan = DayPlan(zone, weights)
    shares = np.array([plan.share(b) for b in range(first, first + buckets)])
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    hours = [datetime.fromtimestamp(b * STEP_S, ZoneInfo(zone)).hour
             for b in range(first, first + buckets)]
    np.testing.assert_allclose(shares / shares[0], weights[hours] / weights[hours[0]])
    # the target at any moment is the shares up to it, linear inside a step
    assert even.planned(start + 36 * STEP_S + STEP_S / 2, 96.0) == pytest.approx(
        96.0 * 36.5 / buckets)


def test_the_shadow_price_integrates_the_overspend_and_stops_at_zero():
    plan = DayPlan("UTC", None)
    first = int(MIDNIGHT // STEP_S)
    sp = ShadowPrice(plan, budget=96.0)  # 1.0 a step
    for b in range(first, first + 10):
        sp.step(b, spent=1.0)  # on plan: no price
    assert sp.mu == 0.0
    for b in range(first + 10, first + 30):
        sp.step(b, spent=3.0)  # 3x the plan for 20 steps: up by 20 * 2 * RATE
    assert sp.mu == pytest.approx(40 * pacing.RATE, rel=1e-12)
    for b in range(first + 30, first + 80):
        sp.step(b, spent=0.0)  # nothing spent for 50 steps: down by 50 * RATE, held at 0
    assert sp.mu == 0.0 and sp.next_bucket == first + 80
    # a profile's quiet hour plans nothing: the error is still counted in steps' worth of the
    # day's mean plan (B / steps), not of that step's own (zero) plan
    quiet = ShadowPrice(DayPlan("UTC", [0.0] * 12 + [1.0] * 12), budget=96.0)
    quiet.step(first, spent=1.0)
    assert quiet.mu == pytest.approx(pacing.RATE, rel=1e-12)
    quiet.step(first + 48, spent=0.0)  # the first afternoon step plans 2.0
    assert quiet.mu == 0.0
    zero = ShadowPrice(plan, budget=0.0)
    zero.step(first, spent=5.0)
    assert zero.mu == 0.0  # a zero budget is the hard stop's alone


def _trained(spec, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(300), rng.normal(size=300)])
    a = rng.integers(0, 3, 300)
    r = np.where(a == 2, 2.0, 1.0) + 0.1 * rng.normal(size=300)
    pol = policies.make(spec, n_actions=3, n_features=2, seed=seed)
    pol.update(X, a, r, np.full(300, 1 / 3))
    return pol, X[:20]


@pytest.mark.parametrize("spec", ["linucb", "lints", "egreedy", "profit"])
def test_zero_prices_change_nothing(spec):
    pol, X = _trained(spec)
    other, _ = _trained(spec)
    np.testing.assert_array_equal(pol.probabilities(X, prices=np.zeros(3)),
                                  other.probabilities(X))


@pytest.mark.parametrize("spec", ["egreedy:epsilon=0,floor=0", "linucb:floor=0",
                                  "lints:floor=0"])
def test_a_price_is_subtracted_from_the_estimate_the_policy_maximizes(spec):
    pol, X = _trained(spec)
    assert (pol.probabilities(X)[:, 2] > 0.9).all()  # action 2 pays 1 more
    gap = pol.ridge.means(X)[:, 2] - pol.ridge.means(X)[:, [0, 1]].max(axis=1)
    if spec.startswith("egreedy"):  # greedy on the means: the switch is exactly at the gap
        below = pol.probabilities(X, prices=np.c_[np.zeros((20, 2)), gap[:, None] - 1e-6])
        above = pol.probabilities(X, prices=np.c_[np.zeros((20, 2)), gap[:, None] + 1e-6])
        assert (below[:, 2] == 1).all() and (above[:, 2] == 0).all()
    priced = pol.probabilities(X, prices=np.array([0.0, 0.0, 5.0]))
    assert (priced[:, 2] < 0.01).all()


@pytest.mark.parametrize("spec", ["linucb:floor=0", "profit:floor=0",
                                  "profit:conversion=logistic,floor=0"])
def test_a_warm_up_under_a_price_tries_the_cheapest_actions(spec):
    """Nothing learned yet (the warm-up; a non-additive policy's whole first window): with a
    price the warming actions that cost least are tried, uniformly; without one, all of them."""
    pol = policies.make(spec, n_actions=3, n_features=2, seed=0)
    X, mask = np.ones((4, 2)), np.array([[True, True, True]] * 3 + [[False, True, True]])
    np.testing.assert_array_equal(pol.probabilities(X, mask, prices=np.array([0.0, 0.0, 2.0])),
                                  [[0.5, 0.5, 0.0]] * 3 + [[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(pol.probabilities(X, mask, prices=np.zeros(3)),
                                  [[1 / 3] * 3] * 3 + [[0.0, 0.5, 0.5]])


def test_policies_that_do_not_estimate_rewards_refuse_prices():
    for spec in ("uniform", "fixed:action=0", "bts"):
        pol = policies.make(spec, n_actions=3, n_features=2)
        with pytest.raises(ValueError, match="cannot weigh an incentive's price"):
            pol.probabilities(np.ones((1, 2)), prices=np.zeros(3))
    pol, X = _trained("linucb")
    with pytest.raises(ValueError, match=r"prices must be \(3,\)"):
        pol.probabilities(X, prices=np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        pol.probabilities(X, prices=np.array([0.0, np.nan, 0.0]))


def test_the_profit_policy_prices_its_own_expected_cost():
    spec = policies.ObjectiveSpec("profit", 0.4, cost_pct=(0.0, 0.1), cost_fixed=(0.0, 5.0))
    pol = policies.make("profit", n_actions=2, n_features=1, objective=spec)
    n = 20_000
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, n)
    converted = rng.random(n) < np.where(a == 1, 0.5, 0.25)
    values = np.where(converted, 100.0, 0.0)
    costs = np.where(converted & (a == 1), 0.1 * values + 5.0, 0.0)
    pol.update(np.ones((n, 1)), a, spec.value(converted, values, a), np.full(n, 0.5),
               converted=converted, order_values=values, costs=costs)
    # P(convert) x (10% of the order + 5) for action 1 (the rows' conversion rate: a
    # one-column ridge on 10,000 rows), nothing for action 0; 0.3% of slack for the ridge
    # penalty and the order-value model's log-normal correction exp(s^2 / 2)
    rate = converted[a == 1].mean()
    np.testing.assert_allclose(pol.expected_costs(np.ones((1, 1))), [[0.0, rate * 15.0]],
                               rtol=3e-3, atol=1e-12)
    # its own model, trusted by the rows it learned of each action over the log's mean cost
    price = PacingPrice(price=2.0, costs={"a": 99.0, "b": 7.0})
    trust = np.bincount(a, minlength=2) / (np.bincount(a, minlength=2) + PRIOR_DECISIONS)
    np.testing.assert_allclose(price.prices(pol, np.ones((1, 1)), ["a", "b"]), 2 * (
        trust * pol.expected_costs(np.ones((1, 1))) + (1 - trust) * np.array([99.0, 7.0])))
    assert (trust > 0.97).all()


@pytest.mark.parametrize("spec", ["profit", "profit:conversion=logistic,bonus=ridge"])
def test_a_cost_model_that_learned_nothing_leaves_the_price_to_the_logs_mean_cost(spec):
    """A policy learned nothing yet (the logistic profit learns a window late): its blank
    cost model does not price incentives, the log's mean cost per decision does; as it
    learns an action, the action's price moves to its own model."""
    objective = policies.ObjectiveSpec("profit", 0.4, cost_pct=(0.0, 0.1), cost_fixed=(0.0, 5.0))
    pol = policies.make(spec, n_actions=2, n_features=1, objective=objective)
    price = PacingPrice(price=2.0, costs={"a": 0.0, "b": 0.6})
    X = np.ones((3, 1))
    np.testing.assert_array_equal(price.prices(pol, X, ["a", "b"]), [[0.0, 1.2]] * 3)
    n = 200  # = PRIOR_DECISIONS rows of action b, none converted: half its own model's zero
    pol.update(np.ones((n, 1)), np.ones(n, dtype=np.intp), np.zeros(n), np.full(n, 0.5),
               converted=np.zeros(n, bool), order_values=np.zeros(n), costs=np.zeros(n))
    own = pol.expected_costs(X)[:, 1]
    np.testing.assert_allclose(price.prices(pol, X, ["a", "b"])[:, 1],
                               2 * (0.5 * own + 0.5 * 0.6))


@pytest.mark.parametrize("budget, message", [
    ({"pacing": "fast"}, "'none' or 'even' or 'profile'"),
    ({"pacing": "even", "profile": [1.0] * 24}, 'only with pacing = "profile"'),
    ({"pacing": "profile"}, "is required with pacing"),
    ({"pacing": "profile", "profile": [1.0] * 23}, "24 weights"),
    ({"pacing": "profile", "profile": [0.0] * 24}, "not all zero"),
    ({"pacing": "profile", "profile": [-1.0] + [1.0] * 23}, "24 weights >= 0"),
])
def test_bad_pacing_is_refused_at_load(budget, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(shop_doc(budget={"daily_incentive_spend": 10.0, **budget}), source="t")


def test_pacing_needs_a_policy_that_estimates_rewards():
    with pytest.raises(ConfigError, match="uniform does not choose by estimated rewards"):
        parse_config(shop_doc(policy={"spec": "uniform"},
                              budget={"daily_incentive_spend": 10.0, "pacing": "even"}),
                     source="t")


def _paced_engine(path, budget=20.0):
    config = shop(holdout={"fraction": 0.0}, attribution={"window_s": 3600},
                  budget={"daily_incentive_spend": budget, "timezone": "UTC", "pacing": "even"})
    return Engine.open(config, path, seed=0, clock=Clock(MIDNIGHT))


def test_the_engine_prices_incentives_when_spend_runs_ahead_and_replays_it_after_a_restart(
        tmp_path):
    engine = _paced_engine(tmp_path)
    drive(engine, simulator.make_world(), visitors=4000, rate=0.2, seed=1)  # 5.5 hours
    engine.flush()
    price, mu = engine.pacing_price, engine.pacer.shadow.mu
    spent = engine.guardrails.spend.spent(engine.clock())
    assert spent > engine.pacer.target(engine.clock())  # ran ahead of the plan ...
    assert mu > 0 and price.price == mu  # ... so incentives have a price (profit: scale 1)
    assert set(price.costs) == set(engine.config.action_ids)
    assert price.costs["none"] == 0 and price.costs["discount_10"] > price.costs["discount_5"]
    ts = engine.decider.last_ts
    engine.close()
    again = Engine.open(engine.config, tmp_path, seed=0, clock=Clock(ts))
    # the price is a function of the log's spend per step: replayed exactly; the mean costs
    # are the log's as of the price's last renewal (here: the restart)
    assert again.pacer.shadow.mu == mu and again.pacing_price.price == price.price
    costs, _ = pacing.action_costs(again.store.aggregates.action_sums(), again.config.action_ids,
                                   again.config.actions)
    assert again.pacing_price.costs == costs
    again.close()


def test_decisions_carry_the_price(tmp_path):
    engine = _paced_engine(tmp_path, budget=1e9)  # never binding: the price is set by hand
    world = simulator.make_world()
    drive(engine, world, visitors=1500, rate=0.2, seed=2)
    costed = {a.id for a in engine.config.actions if a.costed}
    contexts = world.visitors(300, np.random.default_rng(5)).contexts
    floor = 0.005  # 8 actions: the floor's 0.5% each

    def decide(price):
        engine.pacer.current = price  # what a step would renew (none is due: commit=False)
        return [engine.decide(f"v{i}", ctx, commit=False) for i, ctx in enumerate(contexts)]

    free = decide(PacingPrice())
    assert sum(d.action in costed and d.probability > 2 * floor for d in free) >= 5
    big = PacingPrice(price=1e6, costs={a: (1.0 if a in costed else 0.0)
                                        for a in engine.config.action_ids})
    priced = decide(big)
    assert all(d.probability == pytest.approx(floor) for d in priced if d.action in costed)
    engine.rollback()
    engine.close()


def test_a_replica_prices_with_what_the_trainer_published():
    from bandit.scaleout.replica import Replica

    config = shop(holdout={"fraction": 0.0}, policy={"spec": "linucb:warmup=0"},
                  budget={"daily_incentive_spend": 20.0, "timezone": "UTC", "pacing": "even"})
    replica = Replica(config, b"salt", seed=0, clock=Clock(MIDNIGHT))
    costed = {a.id for a in config.actions if a.costed}
    big = PacingPrice(price=1e6, costs={a: (1.0 if a in costed else 0.0)
                                        for a in config.action_ids})
    replica.set_shared(MIDNIGHT, 0.0, pacing.encode(big))
    assert replica.pacing_price == big
    ctx = {"device": "mobile", "traffic_source": "paid_search", "cart_value": 80.0}
    ds = [replica.decide(f"v{i}", ctx, commit=False) for i in range(200)]
    assert all(d.probability == pytest.approx(0.005) for d in ds if d.action in costed)
    replica.set_shared(MIDNIGHT, 0.0, b"not json")  # another release's: decide unpriced
    assert replica.pacing_price is None


def test_the_report_shows_spend_against_the_plan(tmp_path):
    from bandit.insight.report import build_report, with_engine

    engine = _paced_engine(tmp_path, budget=48.0)
    noon = MIDNIGHT + 12 * 3600
    rep = build_report(engine.store, engine.config.objective.margin,
                       spend=engine.guardrails.spend, now=noon)
    assert rep.daily_budget == 48.0 and rep.spend_target == pytest.approx(24.0)
    assert with_engine(rep, engine, now=noon).pacing_price == 0.0
    engine.close()


def test_reasons_count_the_price_in_the_lead_over_the_runner_up(tmp_path):
    engine = _paced_engine(tmp_path, budget=1e9)
    world = simulator.make_world()
    drive(engine, world, visitors=1500, rate=0.2, seed=3)
    costed = {a.id for a in engine.config.actions if a.costed}
    engine.pacer.current = PacingPrice(price=3.0, costs={
        a: (0.2 if a in costed else 0.0) for a in engine.config.action_ids})
    priced = 0
    for i, ctx in enumerate(world.visitors(40, np.random.default_rng(6)).contexts):
        d = engine.decide(f"r{i}", ctx, explain=True, commit=False)
        if d.reasons is None or d.probability < 0.5:
            continue  # the floor's draws are not the policy's choice
        x = np.array(engine.space.normalize_row(ctx)[0])
        a, b = engine.learner.index[d.action], engine.learner.index[d.reasons_versus]
        price = np.array([0.6 if k in costed else 0.0 for k in engine.learner.action_ids])
        score = engine.policy.scores(x[None])[0] - price  # what the choice maximized
        assert sum(r.contribution for r in d.reasons) == pytest.approx(score[a] - score[b],
                                                                       abs=1e-9)
        assert score[b] == max(s for k, s in enumerate(score) if k != a)
        priced += any(r.feature == "(budget pacing)" for r in d.reasons)
    assert priced > 0
    engine.rollback()
    engine.close()


def test_simulated_traffic_follows_its_daily_rhythm(tmp_path):
    engine = Engine.open(shop(holdout={"fraction": 0.0}), tmp_path, seed=0,
                         clock=Clock(MIDNIGHT))
    rhythm = [1.0] * 12 + [3.0] * 12  # afternoons three times as busy
    drive(engine, simulator.make_world(), visitors=4800, rate=4800 / 86400, seed=0,
          traffic=rhythm)
    hours = np.array([int((d.ts - MIDNIGHT) // 3600) for d in engine.store.decisions()])
    # arrivals are evenly spaced within an hour: 100 an hour, then 300 (one either way at
    # the hour's edges)
    counts = np.bincount(hours, minlength=24)[:24]
    assert np.abs(counts[:12] - 100).max() <= 1 and np.abs(counts[12:] - 300).max() <= 1
    with pytest.raises(ValueError, match="24 positive weights"):
        drive(engine, simulator.make_world(), visitors=10, traffic=[1.0] * 23)
    engine.close()
