"""The simulated shop with placements: its response (closed-form checks against sampled
outcomes), its interactions, and per-placement learning against the oracle (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from simulator.worlds.placements import SECOND_INCENTIVE, UPSELL_CART
from simulator.worlds.placements_run import best_fixed, run_placements


@pytest.fixture(scope="module")
def world():
    return simulator.make_world("placements")


def test_the_world_has_three_placements_over_the_shops_actions(world):
    assert world.config.placement_ids == ("product", "cart", "exit")
    assert [p.deferred for p in world.config.placements] == [False, False, True]
    assert world.n_combinations == 4 * 4 * 3


def test_expected_rewards_match_sampled_outcomes(world):
    """Mean sampled profit of a fixed combination equals its expected value: 200,000 visits,
    tolerance 4 standard errors."""
    rng = np.random.default_rng(0)
    visits = world.visits(200_000, rng)
    n = len(visits)
    combo = (["upsell_bundle"] * n, ["discount_10"] * n, ["discount_5"] * n)
    converted, value = world.outcomes(visits, *combo, rng)
    # the realized profit pays each incentive shown (the pop-up's only when shown)
    cost = np.where(converted, 0.10 * value + np.where(visits.exits, 0.05 * value, 0.0), 0.0)
    profit = np.where(converted, 0.35 * value - cost, 0.0)
    expected = world.expected_reward(visits, *combo)
    se = profit.std() / np.sqrt(n)
    assert abs(profit.mean() - expected.mean()) < 4 * se


def test_a_second_incentive_adds_less_than_the_first(world):
    visits = world.visits(2_000, np.random.default_rng(1))
    n = len(visits)
    shown = np.ones(n, dtype=bool)

    def conversion(cart, exit_action):
        return world._visit(visits, ["none"] * n, [cart] * n, [exit_action] * n, shown)[0]

    def logit(p):
        return np.log(p / (1 - p))

    base = logit(conversion("none", "none"))
    cart = logit(conversion("discount_10", "none")) - base
    pop = logit(conversion("none", "discount_5")) - base
    both = logit(conversion("discount_10", "discount_5")) - base
    np.testing.assert_allclose(both, np.maximum(cart, pop) + SECOND_INCENTIVE
                               * np.minimum(cart, pop), atol=1e-9)
    # a banner in the pop-up is not an incentive: its lift adds in full
    banner = logit(conversion("none", "banner_urgency")) - base
    np.testing.assert_allclose(logit(conversion("discount_10", "banner_urgency")) - base,
                               cart + banner, atol=1e-9)


def test_an_upsell_on_the_product_page_changes_what_a_cart_incentive_is_worth(world):
    visits = world.visits(2_000, np.random.default_rng(2))
    n = len(visits)
    grown = world.cart_columns(visits, ["upsell_bundle"] * n)["cart_value"]
    np.testing.assert_allclose(grown, np.round(visits.cart["cart_value"] * UPSELL_CART, 2))

    def lift(product):
        with_shipping = world.expected_reward(visits, [product] * n, ["free_shipping"] * n,
                                              ["none"] * n)
        return with_shipping - world.expected_reward(visits, [product] * n, ["none"] * n,
                                                     ["none"] * n)

    # free shipping matters for small carts: a grown cart needs it less
    assert lift("upsell_bundle").mean() < lift("banner_brand").mean()


def test_oracle_bounds_the_equilibrium_which_bounds_the_best_fixed_choice(world):
    visits = world.visits(5_000, np.random.default_rng(3))
    R = world.expected_rewards(visits)
    eq = world.expected_reward(visits, *world.equilibrium(visits))
    fixed = best_fixed(world).removeprefix("fixed:").split("/")
    n = len(visits)
    constant = world.expected_reward(visits, *([a] * n for a in fixed))
    assert np.all(eq <= R.max(axis=1) + 1e-12)
    assert R.max(axis=1).mean() >= eq.mean() > constant.mean()


@pytest.mark.slow
def test_per_placement_learning_gains_on_uniform_and_keeps_learning(world):
    """Seeded: linucb per placement beats uniform at 10,000 visits, and captures more of the
    oracle's gain at 30,000 (common random numbers)."""
    uniform = run_placements(world, "uniform", visitors=10_000, seed=4)
    early = run_placements(world, "per-placement:linucb", visitors=10_000, seed=4)
    later = run_placements(world, "per-placement:linucb", visitors=30_000, seed=4)
    assert early.captured > uniform.captured + 0.15
    assert later.captured > early.captured + 0.03
    assert uniform.oracle == early.oracle and uniform.baseline == early.baseline


def test_a_seed_gives_another_shop_with_placements():
    one, two = simulator.make_world("placements", seed=1), simulator.make_world("placements",
                                                                                seed=2)
    assert not np.allclose(one.response.conv, two.response.conv)
    with pytest.raises(ValueError, match="unknown learner"):
        run_placements(one, "nope", visitors=10)
