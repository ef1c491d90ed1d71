"""Off-policy estimators: closed-form values on tiny logs, validation, and intervals."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.evaluation.estimators import METHODS, estimate

# 4 logged events, 2 actions. Logger propensities and a target that prefers action 0.
R = np.array([1.0, 0.0, 2.0, 1.0])
A = np.array([0, 1, 0, 1])
P = np.array([0.5, 0.5, 0.25, 0.75])
T = np.array([[0.8, 0.2], [0.8, 0.2], [0.5, 0.5], [0.1, 0.9]])
Q = np.array([[1.0, 0.5], [0.5, 0.0], [1.5, 1.0], [0.5, 1.0]])


def w():
    return T[np.arange(4), A] / P  # [1.6, 0.4, 2.0, 1.2]


def test_ips_closed_form():
    assert estimate("ips", R, A, P, T).value == pytest.approx((w() * R).mean())
    assert estimate("ips", R, A, P, T).value == pytest.approx((1.6 + 0 + 4.0 + 1.2) / 4)


def test_snips_closed_form():
    assert estimate("snips", R, A, P, T).value == pytest.approx((w() * R).sum() / w().sum())


def test_dm_closed_form():
    dm = (T * Q).sum(axis=1)  # [0.9, 0.4, 1.25, 0.95]
    assert estimate("dm", R, A, P, T, q_hat=Q).value == pytest.approx(dm.mean())
    assert dm.mean() == pytest.approx(0.875)


def test_dr_closed_form():
    dm = (T * Q).sum(axis=1)
    resid = R - Q[np.arange(4), A]  # [0, 0, 0.5, 0]
    assert estimate("dr", R, A, P, T, q_hat=Q).value == pytest.approx((dm + w() * resid).mean())
    assert estimate("dr", R, A, P, T, q_hat=Q).value == pytest.approx(0.875 + 2.0 * 0.5 / 4)


def test_sndr_closed_form():
    dm = (T * Q).sum(axis=1)
    resid = R - Q[np.arange(4), A]
    expected = dm.mean() + (w() * resid).sum() / w().sum()
    assert estimate("sndr", R, A, P, T, q_hat=Q).value == pytest.approx(expected)


def test_switch_dr_closed_form():
    dm = (T * Q).sum(axis=1)
    resid = R - Q[np.arange(4), A]
    # tau = 1.5: the row with weight 2.0 (and 1.6) falls back to the model
    expected = (dm + np.where(w() <= 1.5, w() * resid, 0)).mean()
    assert estimate("switch-dr", R, A, P, T, q_hat=Q, tau=1.5).value == pytest.approx(expected)
    big = estimate("switch-dr", R, A, P, T, q_hat=Q, tau=100).value
    assert big == pytest.approx(estimate("dr", R, A, P, T, q_hat=Q).value)


def test_diagnostics():
    e = estimate("ips", R, A, P, T)
    assert e.ess == pytest.approx(w().sum() ** 2 / (w() ** 2).sum())
    assert e.max_weight == pytest.approx(2.0) and e.n == 4 and e.lower < e.value < e.upper


def test_influence_interval_of_ips_is_the_normal_interval():
    rng = np.random.default_rng(0)
    n = 1000
    a = rng.integers(0, 2, n)
    r = rng.normal(size=n) + a
    t = np.tile([0.3, 0.7], (n, 1))
    e = estimate("ips", r, a, np.full(n, 0.5), t)
    phi = t[np.arange(n), a] / 0.5 * r
    half = 1.959963984540054 * phi.std(ddof=1) / np.sqrt(n)
    assert (e.lower, e.upper) == pytest.approx((phi.mean() - half, phi.mean() + half))


def test_bootstrap_interval_is_close_to_influence_interval():
    rng = np.random.default_rng(1)
    n = 3000
    a = rng.integers(0, 2, n)
    r = rng.normal(size=n) + a
    t = np.tile([0.3, 0.7], (n, 1))
    for method in ("ips", "snips"):
        inf = estimate(method, r, a, np.full(n, 0.5), t)
        boot = estimate(method, r, a, np.full(n, 0.5), t, bootstrap=400, seed=2)
        assert boot.interval == "bootstrap-400"
        # widths agree within 20% (bootstrap noise with 400 resamples is a few percent)
        assert boot.width == pytest.approx(inf.width, rel=0.2)


def test_unsupported_actions_warn_loudly():
    t = np.tile([0.0, 0.0, 1.0], (4, 1))  # all mass on an action never logged
    with pytest.warns(UserWarning, match="never tried"):
        e = estimate("ips", R, A, P, t)
    assert e.unsupported_mass == pytest.approx(1.0)


@pytest.mark.parametrize("bad, match", [
    (dict(propensities=np.array([0.5, 0.0, 0.2, 0.3])), "propensities"),
    (dict(propensities=np.array([0.5, 1.2, 0.2, 0.3])), "propensities"),
    (dict(actions=np.array([0, 1, 2, 0])), "actions"),
    (dict(rewards=np.array([1.0, np.nan, 0, 0])), "finite"),
    (dict(target=np.array([[0.5, 0.2]] * 4)), "distributions"),
])
def test_bad_inputs(bad, match):
    args = dict(rewards=R, actions=A, propensities=P, target=T)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        estimate("ips", **args)


def test_dm_needs_a_model_or_contexts_and_methods_are_named():
    with pytest.raises(ValueError, match="needs a reward model"):
        estimate("dr", R, A, P, T)
    with pytest.raises(ValueError, match="unknown method"):
        estimate("magic", R, A, P, T)
    assert set(METHODS) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr"}


def test_cross_fitted_model_is_used_when_only_X_is_given():
    rng = np.random.default_rng(3)
    n = 4000
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    a = rng.integers(0, 2, n)
    r = X[:, 1] * (2 * a - 1) + 0.1 * rng.normal(size=n)
    t = np.column_stack([X[:, 1] <= 0, X[:, 1] > 0]).astype(float)  # best action per row
    truth = np.abs(X[:, 1]).mean()
    for method in ("dm", "dr", "sndr"):
        assert estimate(method, r, a, np.full(n, 0.5), t, X=X).value == pytest.approx(
            truth, rel=0.05)
