"""Uplift of treatment over holdout: a known true uplift is recovered (pytest marker
``guardrails``). Seeded; 30 seeds each. Tolerance: the 95% interval contains the truth in at
least 90% of seeds (binomial sd of a 95% coverage over 30 seeds is 4 points)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop

import simulator
from bandit import Engine
from bandit.insight.report import build_report

pytestmark = [pytest.mark.guardrails, pytest.mark.slow]
WORLD = simulator.make_world()
N, SEEDS = 3000, 30


def run_shop(tmp_path, seed, spec):
    """Half the visitors in holdout (control 'none'), the rest get ``spec``; outcomes at once."""
    engine = Engine.open(shop(holdout={"fraction": 0.5}, policy={"spec": spec},
                              privacy={"salt": f"uplift-{seed}"}),
                         tmp_path / f"s{seed}", seed=seed, clock=Clock())
    rng = np.random.default_rng(seed)
    batch = WORLD.visitors(N, rng)
    requests = [(f"visitor-{seed}-{i}", ctx, None) for i, ctx in enumerate(batch.contexts)]
    decisions = [d for i in range(0, N, 500) for d in engine.decide_batch(requests[i:i + 500])]
    actions = np.array([WORLD.actions.index(d.action) for d in decisions])
    out = WORLD.outcomes(batch, actions, rng)
    for d, converted, value in zip(decisions, out.converted, out.order_value):
        if converted:
            engine.record_outcome(d.event_id, True, float(value), commit=False)
    engine.commit()
    report = build_report(engine.store, engine.config.objective.margin)
    engine.close()
    return {u["kpi"]: u for u in report.uplift}


def true_profit_uplift(action_index: int) -> float:
    population = WORLD.visitors(400_000, np.random.default_rng(12345))
    R = WORLD.expected_rewards(population, "profit")
    k = np.where(population.mask[:, action_index], action_index, 0)
    return float(R[np.arange(len(k)), k].mean() - R[:, 0].mean())


@pytest.mark.parametrize("spec, action", [("fixed:action=discount_10,floor=0", "discount_10"),
                                          ("fixed:action=none,floor=0", "none")])
def test_uplift_interval_covers_the_true_uplift(tmp_path, spec, action):
    truth = true_profit_uplift(WORLD.actions.index(action))
    if action == "none":
        assert truth == 0.0
    covered, estimates, halves = [], [], []
    for seed in range(SEEDS):
        profit = run_shop(tmp_path, seed, spec)["profit_per_visitor"]
        assert profit["method"] == "welch"
        covered.append(profit["lower"] <= truth <= profit["upper"])
        estimates.append(profit["difference"])
        halves.append((profit["upper"] - profit["lower"]) / 2)
    assert np.mean(covered) >= 0.9, (np.mean(covered), truth)
    # bounded above too: intervals no wider than the estimates' real spread says (a 95%
    # half-width is 1.96 sd of the estimate; the sd of 30 estimates is known to ~13%, so the
    # ratio of the mean half-width to 1.96 sd must lie in [0.7, 1.4])
    ratio = np.mean(halves) / (1.96 * np.std(estimates, ddof=1))
    assert 0.7 <= ratio <= 1.4, ratio
