"""The contract every registered policy honours (DESIGN.md, policies/base.py).

One suite, run over every name in ``policies.REGISTRY``. Monte Carlo policies
(``exact_probabilities = False``) are held to their stated Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pytest

import policies

K, D = 5, 4
# every registered policy, every Vowpal Wabbit exploration, a linear policy that forgets, and
# profit's logistic conversion model, with either bonus (blocks of 30 rows: some rows always
# wait in its buffer), and profit choosing its value spread (after the first 50 sales)
NAMES = sorted(policies.REGISTRY) + [f"vw:exploration={e}" for e in
                                     ("epsilon", "softmax", "bag", "cover", "regcb", "regcbopt")
                                     ] + ["linucb:halflife=100",
                                          "profit:conversion=logistic,block=30",
                                          "profit:conversion=logistic,bonus=ridge,block=30",
                                          "profit:value_spread=auto",
                                          "profit:conversion=logistic,bonus=ridge,block=30,"
                                          "value_spread=auto"]


# a shop's objective: profit, a discount and free shipping among the actions
OBJECTIVE = policies.ObjectiveSpec("profit", 0.35, cost_pct=(0, 0.05, 0.1, 0, 0),
                                   cost_fixed=(0, 0, 0, 4.9, 0))


def make(name, seed=0, **kw):
    spec_name, params = policies.parse_spec(name)
    return policies.make(policies.format_spec(spec_name, {**params, **kw}), n_actions=K,
                         n_features=D, seed=seed, objective=OBJECTIVE)


def outcomes(X, theta, a, rng):
    """Rewards (profit) and the outcomes they come from: conversion depends on the context
    and the action, order values are gamma, costs as OBJECTIVE says."""
    logit = (X @ theta.T)[np.arange(len(a)), a] - 1.0
    converted = rng.random(len(a)) < 1 / (1 + np.exp(-logit))
    values = np.where(converted, rng.gamma(2.0, 30.0, len(a)), 0.0)
    pct, fixed = OBJECTIVE.costs(K)
    costs = np.where(converted, pct[a] * values + fixed[a], 0.0)
    return OBJECTIVE.value(converted, values, a), {"converted": converted,
                                                   "order_values": values, "costs": costs}


def trained(name, problem, seed=0):
    X, mask, theta = problem
    policy = make(name, seed)
    rng = np.random.default_rng(7)
    for start in range(0, 200, 50):
        rows = slice(start, start + 50)
        a, p = policy.act(X[rows], mask[rows])
        r, parts = outcomes(X[rows], theta, a, rng)
        policy.update(X[rows], a, r, p, mask[rows], **parts)
    return policy


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_has_a_default(name):
    policy = policies.make(name, n_actions=K, n_features=D)
    assert policy.n_actions == K and policy.name == policies.parse_spec(name)[0]


@pytest.mark.parametrize("name", NAMES)
def test_rows_sum_to_one_and_masked_actions_get_zero(name, problem):
    X, mask, _ = problem
    P = trained(name, problem).probabilities(X, mask)
    assert P.shape == (len(X), K)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    assert (P[~mask] == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_floor_respected(name, problem):
    X, mask, _ = problem
    policy = trained(name, problem)
    P = policy.probabilities(X, mask)
    k = mask.sum(axis=1, keepdims=True)
    assert (P >= np.where(mask, policy.floor_for(k), 0) - 1e-12).all()
    high = make(name, floor=0.15).probabilities(X, mask)
    k = mask.sum(axis=1, keepdims=True)
    assert (high >= np.where(mask, np.minimum(0.15, 1 / k), 0) - 1e-12).all()


@pytest.mark.parametrize("name", NAMES)
def test_masked_actions_never_chosen(name, problem):
    X, mask, _ = problem
    a, p = trained(name, problem).act(X, mask)
    assert mask[np.arange(len(X)), a].all()
    assert ((p > 0) & (p <= 1)).all()


@pytest.mark.parametrize("name", NAMES)
def test_returned_propensity_matches_probabilities(name, problem):
    X, mask, _ = problem
    policy = trained(name, problem)
    state = policy.get_state()
    a, p = policy.act(X, mask)
    twin = make(name, seed=99)
    twin.set_state(state)
    P = twin.probabilities(X, mask)[np.arange(len(X)), a]
    if policy.exact_probabilities:
        np.testing.assert_allclose(p, P, rtol=0, atol=1e-12)
    else:
        # two independent Monte Carlo estimates from n_samples draws each: the difference has
        # sd sqrt(2 p (1 - p) / n_samples); allow 5 sd per row (seeded, so this is not flaky)
        sd = np.sqrt(2 * P * (1 - P) / policy.n_samples)
        assert (np.abs(p - P) <= 5 * sd + 1e-9).all()


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_gives_identical_decisions(name, problem):
    X, mask, theta = problem
    policy = trained(name, problem)
    twin = make(name, seed=123)
    twin.set_state(policy.get_state())
    for step, rows in enumerate((slice(200, 250), slice(250, 300))):
        a1, p1 = policy.act(X[rows], mask[rows])
        a2, p2 = twin.act(X[rows], mask[rows])
        if step == 0 or policy.lossless_learning:
            np.testing.assert_array_equal(a1, a2)
            np.testing.assert_array_equal(p1, p2)
        r = (X[rows] @ theta.T)[np.arange(50), a1]
        policy.update(X[rows], a1, r, p1, mask[rows])
        twin.update(X[rows], a2, r, p2, mask[rows])
    assert twin.n_updates == policy.n_updates


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_npz(name, problem, tmp_path):
    X, mask, _ = problem
    policy = trained(name, problem)
    np.savez(tmp_path / "s.npz", **policy.get_state())
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        state = dict(f)
    twin = make(name, seed=5)
    twin.set_state(state)
    np.testing.assert_array_equal(policy.act(X, mask)[0], twin.act(X, mask)[0])


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_decisions(name, problem):
    X, mask, _ = problem
    a1 = trained(name, problem, seed=3).act(X, mask)
    a2 = trained(name, problem, seed=3).act(X, mask)
    np.testing.assert_array_equal(a1[0], a2[0])
    np.testing.assert_array_equal(a1[1], a2[1])


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_clear_errors(name, problem):
    X, mask, _ = problem
    policy = make(name)
    with pytest.raises(ValueError, match="shape"):
        policy.probabilities(X[:, :2], mask)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        policy.act(bad, mask)
    empty = mask.copy()
    empty[7] = False
    with pytest.raises(ValueError, match="row 7 has no eligible action"):
        policy.act(X, empty)
    with pytest.raises(ValueError, match="mask must be a bool array"):
        policy.act(X, mask[:, :2])
    a, p = policy.act(X[:10], mask[:10])
    with pytest.raises(ValueError, match="propensities"):
        policy.update(X[:10], a, np.zeros(10), np.zeros(10), mask[:10])
    with pytest.raises(ValueError, match="rewards must be finite"):
        policy.update(X[:10], a, np.full(10, np.inf), p, mask[:10])
    with pytest.raises(ValueError, match="shape"):
        policy.update(X[:10], a[:5], np.zeros(10), p, mask[:10])
    ineligible = np.flatnonzero(~mask[0])
    if len(ineligible):
        with pytest.raises(ValueError, match="not eligible"):
            policy.update(X[:1], ineligible[:1], np.zeros(1), np.ones(1), mask[:1])


@pytest.mark.parametrize("name", NAMES)
def test_add_actions_keeps_what_was_learned(name, problem):
    X, mask, _ = problem
    policy = trained(name, problem)
    before = policy.get_state()
    policy.add_actions(2)
    assert policy.n_actions == K + 2
    wide = np.column_stack([mask, np.zeros((len(X), 2), bool)])
    P = policy.probabilities(X, wide)
    assert P.shape == (len(X), K + 2) and (P[:, K:] == 0).all()
    for key, old in before.items():
        if key.startswith("policy.") and old.ndim and old.shape[0] == K:
            np.testing.assert_array_equal(policy.get_state()[key][:K], old)
    a, p = policy.act(X, np.ones((len(X), K + 2), bool))
    policy.update(X, a, np.zeros(len(X)), p, None)


@pytest.mark.parametrize("name", NAMES)
def test_set_state_refuses_a_state_of_another_shape(name, problem):
    state = trained(name, problem).get_state()
    other = policies.make(name, n_actions=K + 1, n_features=D)
    with pytest.raises(ValueError, match="actions"):
        other.set_state(state)


def test_unknown_policy_and_parameter_are_named():
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        policies.make("nope", n_actions=2, n_features=2)
    with pytest.raises(ValueError, match="has no parameter 'alhpa'"):
        policies.make("linucb:alhpa=1", n_actions=2, n_features=2)
    with pytest.raises(ValueError, match="epsilon must be in"):
        policies.make("egreedy:epsilon=2", n_actions=2, n_features=2)


def test_fixed_by_id_and_fallback():
    ids = ("none", "banner", "discount")
    pol = policies.make("fixed:action=discount,floor=0", n_actions=3, n_features=1, action_ids=ids)
    P = pol.probabilities(np.ones((2, 1)), np.array([[True, True, True], [True, True, False]]))
    assert P.tolist() == [[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]]


def additive(spec) -> bool:
    return policies.make(spec, n_actions=K, n_features=D).additive


@pytest.mark.parametrize("name", [n for n in NAMES if additive(n)])
def test_relabel_equals_learning_the_final_reward(name, problem):
    # additive policies: learn provisional rewards, relabel to the final ones == learn final ones
    # (as the engine does: every row first learned as not converted, reward 0)
    X, mask, theta = problem
    rng = np.random.default_rng(11)
    a = np.array([rng.choice(np.flatnonzero(m)) for m in mask[:100]])
    final, parts = outcomes(X[:100], theta, a, rng)
    provisional = np.zeros(100)
    nothing = {"converted": np.zeros(100, bool), "order_values": np.zeros(100),
               "costs": np.zeros(100)}
    p = np.full(100, 0.2)
    direct = make(name, seed=1, **({"reward_scale": 10.0} if name == "bts" else {}))
    direct.update(X[:100], a, final, p, mask[:100], **parts)
    relabeled = make(name, seed=1, **({"reward_scale": 10.0} if name == "bts" else {}))
    relabeled.update(X[:100], a, provisional, p, mask[:100], **nothing)
    relabeled.relabel(X[:100], a, provisional, final, p, mask[:100], **parts)
    for key, value in direct.get_state().items():
        if key.startswith("policy.") and "rank1" not in key:
            np.testing.assert_allclose(relabeled.get_state()[key], value, rtol=0, atol=1e-8,
                                       err_msg=key)
    assert relabeled.n_updates == direct.n_updates == 100


@pytest.mark.parametrize("name", [n for n in NAMES if not additive(n)])
def test_non_additive_policies_refuse_relabel(name, problem):
    X, mask, _ = problem
    with pytest.raises(NotImplementedError):
        make(name).relabel(X[:1], [0], [0.0], [1.0], [1.0], None)


@pytest.mark.parametrize("name", NAMES)
def test_a_state_taken_does_not_change_with_later_learning(name, problem):
    X, mask, theta = problem
    policy = trained(name, problem)
    state = policy.get_state()
    frozen = {k: np.array(v, copy=True) for k, v in state.items()}
    a, p = policy.act(X[:50], mask[:50])
    r, parts = outcomes(X[:50], theta, a, np.random.default_rng(3))
    policy.update(X[:50], a, r, p, mask[:50], **parts)
    for key, value in frozen.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def uses_outcomes(name) -> bool:
    return type(make(name))._learn_outcomes is not policies.Policy._learn_outcomes


@pytest.mark.parametrize("name", [n for n in NAMES if not uses_outcomes(n)])
def test_scalar_policies_learn_the_same_with_or_without_the_outcomes(name, problem):
    X, mask, theta = problem
    rng = np.random.default_rng(5)
    a = np.array([rng.choice(np.flatnonzero(m)) for m in mask[:80]])
    r, parts = outcomes(X[:80], theta, a, rng)
    with_parts, without = make(name, seed=2), make(name, seed=2)
    with_parts.update(X[:80], a, r, np.full(80, 0.2), mask[:80], **parts)
    without.update(X[:80], a, r, np.full(80, 0.2), mask[:80])
    for key, value in without.get_state().items():
        np.testing.assert_array_equal(with_parts.get_state()[key], value, err_msg=key)


@pytest.mark.parametrize("name", NAMES)
def test_bad_outcomes_raise_clear_errors(name, problem):
    X, mask, theta = problem
    a = np.array([np.flatnonzero(m)[0] for m in mask[:10]])
    r, parts = outcomes(X[:10], theta, a, np.random.default_rng(0))
    policy = make(name)
    args = (X[:10], a, r, np.full(10, 0.5), mask[:10])
    with pytest.raises(ValueError, match="together"):
        policy.update(*args, converted=parts["converted"])
    with pytest.raises(ValueError, match=r"order_values must have shape \(10,\)"):
        policy.update(*args, **{**parts, "order_values": parts["order_values"][:9]})
    with pytest.raises(ValueError, match=">= 0"):
        policy.update(*args, **{**parts, "order_values": -parts["order_values"] - 1})
    with pytest.raises(ValueError, match="finite"):
        policy.update(*args, **{**parts, "costs": np.full(10, np.nan)})
    assert policy.n_updates == 0  # nothing was learned from a refused batch
