"""The simulated shop: realistic ranges, true heterogeneity, exact expectations."""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from simulator.worlds.compare import best_single_action

WORLD = simulator.make_world()
A = {a: i for i, a in enumerate(WORLD.actions)}


@pytest.fixture(scope="module")
def batch():
    return WORLD.visitors(100_000, np.random.default_rng(0))


def test_contexts_are_valid_requests_and_encode_to_X(batch):
    small = WORLD.visitors(200, np.random.default_rng(1))
    np.testing.assert_array_equal(WORLD.space.transform(small.contexts), small.X)
    assert set(small.contexts[0]) == set(WORLD.space.keys)
    import json
    json.dumps(small.contexts)  # plain JSON types, as a storefront would send


def test_realistic_conversion_and_order_values(batch):
    out = WORLD.outcomes(batch, np.zeros(len(batch), int), np.random.default_rng(2))
    rate = out.converted.mean()
    assert 0.02 < rate < 0.08
    p = WORLD.conversion_rates(batch)[:, A["none"]]
    by_page = {pg: p[batch.columns["page_type"] == pg].mean() for pg in ("home", "checkout")}
    assert 0.01 < by_page["home"] < by_page["checkout"] < 0.2
    aov = out.order_value[out.converted].mean()
    assert 40 < aov < 120
    assert (out.delay_s[out.converted] > 0).all() and np.isnan(out.delay_s[~out.converted]).all()
    assert (out.order_value[~out.converted] == 0).all()


def test_expected_rewards_match_sampled_means():
    # 2000 visitors x 400 replications per action; tolerance 4 standard errors per action
    small = WORLD.visitors(2000, np.random.default_rng(3))
    R = WORLD.expected_rewards(small, "profit")
    rng = np.random.default_rng(4)
    for k in range(WORLD.n_actions):
        rows = small.mask[:, k]
        sub = simulator.VisitorBatch({c: v[rows] for c, v in small.columns.items()},
                                     small.X[rows], small.mask[rows], small.t[rows], small.Z[rows])
        draws = np.array([WORLD.rewards(WORLD.outcomes(sub, np.full(rows.sum(), k), rng),
                                        "profit").mean() for _ in range(400)])
        se = draws.std(ddof=1) / np.sqrt(len(draws))
        assert abs(draws.mean() - R[rows, k].mean()) < 4 * se


def test_discount_pays_for_price_sensitive_and_not_for_loyal(batch):
    R = WORLD.expected_rewards(batch, "profit")
    c = batch.columns
    sensitive = (~c["returning"]) & np.isin(c["traffic_source"], ("paid_search", "affiliate"))
    loyal = c["returning"] & np.isin(c["traffic_source"], ("direct", "email"))
    gain = R[:, A["discount_10"]] - R[:, A["none"]]
    assert gain[sensitive].mean() > 0 > gain[loyal].mean()


def test_free_shipping_for_small_carts_upsell_for_large(batch):
    R = WORLD.expected_rewards(batch, "profit")
    cart = batch.columns["cart_value"]
    small, large = (cart > 0) & (cart < 30), cart > 150
    ship = R[:, A["free_shipping"]] - R[:, A["none"]]
    assert ship[small].mean() > 0 > ship[large].mean()
    up = R[:, A["upsell_bundle"]] - R[:, A["none"]]
    assert up[large].mean() > 0 > up[small].mean()


def test_personalization_matters():
    action, share = best_single_action(WORLD, "profit")
    assert share <= 0.5, (action, share)


def test_eligibility(batch):
    assert (batch.mask[:, A["upsell_bundle"]] == (batch.columns["cart_value"] > 0)).all()
    assert batch.mask[:, A["none"]].all()


def test_drift_changes_the_response():
    world = simulator.make_world("drift")
    early = world.visitors(5000, np.random.default_rng(5), start=0)
    late = simulator.VisitorBatch(early.columns, early.X, early.mask, early.t + 10**6, early.Z)
    assert not np.allclose(world.expected_rewards(early), world.expected_rewards(late))


@pytest.mark.slow
def test_linucb_keeps_adapting_after_preferences_change():
    """Seeded (one run of 200k visitors; benchmarks/drift_adaptation.py has three seeds and
    more policies). Observed for this seed: 0.465 before, 0.377 during, 0.661 after (learning
    through the reward clip; without it 0.529, 0.438, 0.659).
    Tolerance: the recovery is 20+ points wide, so its margins of 10 points leave room for
    seed-to-seed spread; the dip is asserted only to exist."""
    import policies
    from simulator.worlds.runner import run

    world = simulator.make_world("drift", seed=0)
    policy = policies.make("linucb", n_actions=world.n_actions, n_features=world.space.dim,
                           seed=0)
    result = run(world, policy, visitors=200_000, seed=0)
    before = result.captured_gain_between(50_000, 100_000)
    during = result.captured_gain_between(100_000, 130_000)
    after = result.captured_gain_between(150_000, 200_000)
    assert during < before  # the change hurts while it happens ...
    assert after > during + 0.1 and after > before + 0.1  # ... and the policy learns anew


def test_random_worlds_differ_by_seed_and_repeat():
    b = WORLD.visitors(1000, np.random.default_rng(6))
    r1 = simulator.make_world("random", seed=1).expected_rewards(b)
    assert np.array_equal(r1, simulator.make_world("random", seed=1).expected_rewards(b))
    assert not np.allclose(r1, simulator.make_world("random", seed=2).expected_rewards(b))


def test_unknown_scenario():
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        simulator.make_world("nope")
