"""Closed-form checks of the ridge core and the linear policies' scores."""

from __future__ import annotations

import numpy as np
import pytest

import policies
from policies._ridge import RidgeStack


def test_streaming_ridge_equals_batch_solution():
    rng = np.random.default_rng(0)
    n, K, d, lam = 2000, 3, 6, 0.7
    X = rng.normal(size=(n, d))
    a = rng.integers(0, K, n)
    r = rng.normal(size=n)
    ridge = RidgeStack(K, d, lam)
    # mix of single-row (rank-1) and batched (Cholesky) updates
    i = 0
    for size in [1] * 300 + [17, 50, 1, 1, 200] * 5:
        if i >= n:
            break
        ridge.update(X[i:i + size], a[i:i + size], r[i:i + size])
        i += size
    ridge.update(X[i:], a[i:], r[i:])
    for k in range(K):
        Xk, rk = X[a == k], r[a == k]
        A = lam * np.eye(d) + Xk.T @ Xk
        theta = np.linalg.solve(A, Xk.T @ rk)
        np.testing.assert_allclose(ridge.theta[k], theta, rtol=0, atol=1e-8)
        np.testing.assert_allclose(ridge.A_inv[k], np.linalg.inv(A), rtol=0, atol=1e-8)
        assert ridge.counts[k] == len(rk)


def test_forgetting_weights_each_row_by_its_age_however_the_rows_were_split():
    """With a half-life h, after N rows each row weighs 0.5 ** (rows learned after it / h),
    whether they came one by one or in calls of any size; the ridge prior does not fade."""
    rng = np.random.default_rng(3)
    d, h, lam, n = 3, 7.0, 0.5, 40
    X, r = rng.normal(size=(n, d)), rng.normal(size=n)
    actions = rng.integers(0, 2, n)
    weights = 0.5 ** (np.arange(n - 1, -1, -1) / h)
    for sizes in ([1] * n, [1, 5, 2, 12, 1, 1, 18], [n]):
        stack = RidgeStack(n_actions=2, dim=d, lam=lam, halflife=h)
        start = 0
        for size in sizes:
            stack.update(X[start:start + size], actions[start:start + size],
                         r[start:start + size])
            start += size
        for k in (0, 1):
            w = np.where(actions == k, weights, 0.0)
            A = lam * np.eye(d) + (X * w[:, None]).T @ X
            np.testing.assert_allclose(stack.A[k], A, rtol=1e-12)
            np.testing.assert_allclose(stack.theta[k], np.linalg.solve(A, (X * w[:, None]).T @ r),
                                       rtol=1e-9)
            np.testing.assert_allclose(stack.counts[k], w.sum(), rtol=1e-12)


def test_noise_sd_matches_ridge_residuals():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 3))
    r = X @ np.array([1.0, -2.0, 0.5]) + 3.0 * rng.normal(size=5000)
    ridge = RidgeStack(1, 3, 1e-6)
    ridge.update(X, np.zeros(5000, int), r)
    residual = r - X @ ridge.theta[0]
    np.testing.assert_allclose(ridge.noise_sd(), np.sqrt(residual @ residual / 5000), rtol=1e-3)


def test_linucb_scores_equal_direct_formula():
    rng = np.random.default_rng(2)
    K, d = 4, 5
    pol = policies.make("linucb:alpha=0.7", n_actions=K, n_features=d, seed=0)
    X = rng.normal(size=(400, d))
    a = rng.integers(0, K, 400)
    r = rng.normal(size=400)
    pol.update(X, a, r, np.full(400, 0.25))
    x = rng.normal(size=(10, d))
    sd = pol.ridge.noise_sd()
    expected = np.empty((10, K))
    for k in range(K):
        A = np.eye(d) + X[a == k].T @ X[a == k]
        theta = np.linalg.solve(A, X[a == k].T @ r[a == k])
        for i in range(10):
            expected[i, k] = x[i] @ theta + 0.7 * sd * np.sqrt(x[i] @ np.linalg.solve(A, x[i]))
    np.testing.assert_allclose(pol.scores(x), expected, rtol=0, atol=1e-8)
    P = pol.probabilities(x)
    best = expected.argmax(axis=1)
    np.testing.assert_allclose(P[np.arange(10), best], 1 - (K - 1) * 0.005)  # the floor: 0.5% each


def test_lints_probabilities_match_exact_two_action_formula():
    # with two actions, P(a0 wins) = Phi((m0 - m1) / sqrt(s0^2 + s1^2)) exactly
    from scipy.stats import norm

    pol = policies.make("lints:n_samples=20000,floor=0,noise=1,v=1", n_actions=2, n_features=1, seed=3)
    pol.update(np.ones((6, 1)), np.array([0, 0, 0, 1, 1, 1]), np.array([1, 0, 1, 0, 0, 1.0]),
               np.full(6, 0.5))
    m = pol.ridge.means(np.ones((1, 1)))[0]
    s = pol.ridge.widths(np.ones((1, 1)))[0]
    exact = norm.cdf((m[0] - m[1]) / np.hypot(*s))
    p0 = pol.probabilities(np.ones((1, 1)))[0, 0]
    # Monte Carlo sd = sqrt(p(1-p)/20000) ~ 0.0035; tolerance 4 sd
    assert abs(p0 - exact) < 4 * np.sqrt(exact * (1 - exact) / 20000)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_egreedy_probabilities_closed_form(eps):
    pol = policies.make(f"egreedy:epsilon={eps},floor=0", n_actions=3, n_features=1)
    pol.update(np.ones((3, 1)), np.array([0, 1, 2]), np.array([1.0, 3.0, 2.0]), np.ones(3))
    P = pol.probabilities(np.ones((1, 1)), np.array([[True, True, True]]))
    np.testing.assert_allclose(P[0], [eps / 3, 1 - eps + eps / 3, eps / 3])


def test_floor_mixing_closed_form():
    pol = policies.make("fixed:action=1,floor=0.1", n_actions=4, n_features=1)
    P = pol.probabilities(np.ones((1, 1)), np.array([[True, True, True, False]]))
    np.testing.assert_allclose(P[0], [0.1, 0.8, 0.1, 0.0])


def test_floor_is_a_minimum_not_a_mixture():
    # egreedy with epsilon 0.3 over 3 actions already gives every action 0.1 >= the 0.05
    # floor: unchanged (a mixture would give 0.9 * q + 0.05)
    pol = policies.make("egreedy:epsilon=0.3,floor=0.05", n_actions=3, n_features=1)
    pol.update(np.ones((3, 1)), np.array([0, 1, 2]), np.array([1.0, 3.0, 2.0]), np.ones(3))
    np.testing.assert_allclose(pol.probabilities(np.ones((1, 1)))[0], [0.1, 0.8, 0.1])
    # q = (0.02, 0.78, 0.2) with f = 0.05: the small one is lifted to f and the mass above
    # f is shared in proportion to (0, 0.73, 0.15): p = 0.05 + 0.85 * (0, 0.73, 0.15) / 0.88
    pol = policies.make("egreedy:epsilon=0.06,floor=0.05", n_actions=3, n_features=1)
    q = np.array([[0.02, 0.78, 0.2]])
    expected = 0.05 + 0.85 * np.array([0.0, 0.73, 0.15]) / 0.88
    np.testing.assert_allclose(pol._apply_floor(q, np.ones((1, 3), bool))[0], expected)


@pytest.mark.parametrize("k, floor", [(2, 0.005), (8, 0.005), (10, 0.004), (12, 0.04 / 12)])
def test_default_floor_is_a_budget_over_the_eligible_actions(k, floor):
    pol = policies.make("fixed:action=0", n_actions=14, n_features=1)
    mask = np.zeros((1, 14), bool)
    mask[0, :k] = True
    P = pol.probabilities(np.ones((1, 1)), mask)[0]
    np.testing.assert_allclose(P[1:k], floor)  # every other eligible action gets the floor
    np.testing.assert_allclose(P[0], 1 - (k - 1) * floor)
    assert (P[k:] == 0).all()


@pytest.mark.parametrize("k, floor", [(6, 0.01), (10, 0.008)])
def test_egreedy_keeps_its_own_default_floor(k, floor):
    # egreedy's 5% uniform share is below 1% per action here, so the floor (1% each, at most
    # 8%: policies.base) sets what the other actions get
    pol = policies.make("egreedy", n_actions=k, n_features=1)
    pol.update(np.ones((k, 1)), np.arange(k), np.arange(k, dtype=float), np.ones(k))
    P = pol.probabilities(np.ones((1, 1)))[0]
    np.testing.assert_allclose(P[:-1], floor)
    np.testing.assert_allclose(P[-1], 1 - (k - 1) * floor)


def test_bts_fractional_update():
    pol = policies.make("bts:reward_scale=10", n_actions=2, n_features=1)
    pol.update(np.ones((3, 1)), np.array([0, 0, 1]), np.array([5.0, 20.0, -1.0]), np.ones(3))
    np.testing.assert_allclose(pol.a, [1 + 0.5 + 1.0, 1.0])
    np.testing.assert_allclose(pol.b, [1 + 0.5 + 0.0, 2.0])


def test_linucb_tries_actions_in_warm_up_first_and_scores_the_others():
    pol = policies.make("linucb:floor=0", n_actions=3, n_features=1)
    pol.update(np.ones((4, 1)), np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 0.0, 0.0]),
               np.ones(4))
    X = np.ones((2, 1))
    mask = np.array([[True, True, True], [True, True, False]])
    P = pol.probabilities(X, mask)
    np.testing.assert_allclose(P[0], [0, 0, 1])  # action 2 has learned no row yet
    np.testing.assert_allclose(P[1], [1, 0, 0])  # past the warm-up: the higher bound wins
    assert pol.score_parts(X) is None and "warm-up" in pol.why_no_score_parts()
    pol.update(np.ones((2, 1)), np.array([2, 2]), np.zeros(2), np.ones(2))
    np.testing.assert_allclose(pol.probabilities(X, mask), [[1, 0, 0], [1, 0, 0]])
