"""The estimators at their edges: refused inputs (each with its message), boundaries of the
accepted ones, logs the target never overlaps, diagnostics, defaults and the bootstrap.

Found by mutation testing (docs/development.md, "Mutation testing"): each test here failed a
mutant that the closed-form tests let through.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from simulator.evaluation.estimators import difference, estimate
from simulator.evaluation.reward_model import cross_fit

R = np.array([1.0, 0.0, 2.0, 0.0, 3.0])
A = np.array([0, 1, 0, 0, 1])
P = np.array([0.5, 0.5, 0.25, 0.5, 0.8])
TARGET = np.array([[0.8, 0.2], [0.5, 0.5], [1.0, 0.0], [0.2, 0.8], [0.4, 0.6]])
Q = np.array([[0.5, 1.0], [0.2, 0.3], [1.5, 0.5], [0.1, 0.4], [1.0, 2.0]])


@pytest.mark.parametrize("change, message", [
    (dict(alpha=0.0), r"alpha must be in \(0, 1\)"),
    (dict(alpha=1.0), r"alpha must be in \(0, 1\)"),
    (dict(target=TARGET[:, 0]), r"target must be \(n, K\)"),
    (dict(target=TARGET[:4]), r"target must be \(n, K\)"),
    (dict(actions=A[:4]), "must have the same length"),
    (dict(propensities=P[:4]), "must have the same length"),
    (dict(actions=A.astype(float)), r"actions must be integer indices in \[0, 2\)"),
    (dict(actions=np.array([0, 1, 0, -1, 1])), r"actions must be integer indices"),
    (dict(actions=np.array([0, 1, 0, 2, 1])), r"actions must be integer indices"),
    (dict(propensities=np.array([0.5, 0.5, 0.0, 0.5, 0.8])), r"propensities must be in \(0, 1\]"),
    (dict(propensities=np.array([0.5, 0.5, 1.5, 0.5, 0.8])), r"propensities must be in \(0, 1\]"),
    (dict(rewards=np.array([1.0, 0.0, np.nan, 0.0, 3.0])), "rewards and target must be finite"),
    (dict(target=TARGET * 0.9), "target rows must be probability distributions"),
    (dict(target=np.array([[1.2, -0.2]] + [[0.5, 0.5]] * 4)), "probability distributions"),
    (dict(q_hat=Q[:, :1]), r"q_hat must be finite with shape \(5, 2\)"),
    (dict(q_hat=np.where(Q > 1.9, np.inf, Q)), r"q_hat must be finite"),
])
def test_bad_input_is_refused_naming_what_is_wrong(change, message):
    args = dict(rewards=R, actions=A, propensities=P, target=TARGET, q_hat=Q, alpha=0.05)
    args.update(change)  # a copy: the parameter itself is shared by reruns
    with pytest.raises(ValueError, match=message):
        estimate("dr", args["rewards"], args["actions"], args["propensities"], args["target"],
                 q_hat=args["q_hat"], alpha=args["alpha"])


def test_an_empty_log_and_an_unknown_method_are_refused():
    with pytest.raises(ValueError, match="no logged events to estimate from"):
        estimate("ips", R[:0], A[:0], P[:0], TARGET[:0])
    with pytest.raises(ValueError, match="unknown method 'ipw'"):
        estimate("ipw", R, A, P, TARGET)
    with pytest.raises(ValueError, match="dr needs a reward model"):
        estimate("dr", R, A, P, TARGET)
    with pytest.raises(ValueError, match="difference supports 'ips' and 'snips', not 'dr'"):
        difference("dr", R, A, P, TARGET, TARGET)


def test_a_propensity_of_one_is_accepted_and_one_row_has_no_interval():
    p = np.array([1.0, 0.5, 0.25, 0.5, 0.8])
    assert np.isfinite(estimate("ips", R, A, p, TARGET).value)
    with pytest.warns(UserWarning, match="never tried"):  # one row tries one action only
        one = estimate("ips", R[:1], A[:1], P[:1], TARGET[:1])
    assert one.value == pytest.approx(1.6) and (one.lower, one.upper) == (-np.inf, np.inf)
    two = estimate("ips", R[:2], A[:2], P[:2], TARGET[:2])
    assert np.isfinite(two.lower) and np.isfinite(two.upper)


def test_a_target_that_never_meets_the_log_has_value_zero_and_no_spread():
    # the target puts all its mass where the logger never acted: every weight is 0
    never = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    for method in ("ips", "snips"):
        got = estimate(method, R, A, P, never)
        assert (got.value, got.lower, got.upper, got.ess) == (0.0, 0.0, 0.0, 0.0), method
    got = estimate("sndr", R, A, P, never, q_hat=Q)
    assert got.value == pytest.approx((never * Q).sum(axis=1).mean())  # no correction at all


def test_self_normalization_with_small_weights():
    # total weight 0.65 (below 1) and mean weight 0.13: the self-normalized forms divide by them
    small = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.8, 0.2]])
    w = np.array([0.0, 0.0, 0.0, 0.4, 0.25])
    z = 1.959963984540054
    snips = estimate("snips", R, A, P, small)
    value = (w * R).sum() / w.sum()  # 0.75 / 0.65
    phi = value + w * (R - value) / w.mean()
    assert snips.value == pytest.approx(value) and value > 1
    assert snips.upper - snips.value == pytest.approx(z * phi.std(ddof=1) / np.sqrt(5))
    assert snips.ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    sndr = estimate("sndr", R, A, P, small, q_hat=Q)
    d = (small * Q).sum(axis=1)
    e = R - Q[np.arange(5), A]
    c = (w * e).sum() / w.sum()
    phi = d.mean() + c + (d - d.mean()) + w * (e - c) / w.mean()
    assert sndr.value == pytest.approx(d.mean() + c)
    assert sndr.upper - sndr.value == pytest.approx(z * phi.std(ddof=1) / np.sqrt(5))


def test_a_row_sum_within_a_millionth_of_one_is_a_distribution():
    nearly = TARGET.copy()
    nearly[0] = [0.8 + 5e-7, 0.2]  # rounding in a caller's softmax
    assert np.isfinite(estimate("ips", R, A, P, nearly).value)


def test_the_estimate_names_its_method():
    assert estimate("dr", R, A, P, TARGET, q_hat=Q).method == "dr"
    assert estimate("snips", R, A, P, TARGET).method == "snips"


def test_unsupported_mass_counts_actions_tried_once_and_warns_above_one_percent():
    rewards, actions, p = np.ones(100), np.zeros(100, dtype=int), np.full(100, 0.5)
    actions[0] = 1  # action 1 tried once: supported; action 2 never
    exactly = np.tile([0.90, 0.09, 0.01], (100, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = estimate("ips", rewards, actions, p, exactly)  # exactly 1%: no warning
    assert got.unsupported_mass == pytest.approx(0.01)
    above = np.tile([0.89, 0.09, 0.02], (100, 1))
    with pytest.warns(UserWarning, match="2.0% of its probability on actions the logger never "
                      "tried: no estimator can see their rewards; IPS-type values count them "
                      "as 0 and DM/DR extrapolate the reward model"):
        assert estimate("ips", rewards, actions, p, above).unsupported_mass == pytest.approx(0.02)
    with warnings.catch_warnings():  # one row: its unsupported mass is exactly 0.01
        warnings.simplefilter("error")
        one = estimate("ips", np.ones(1), np.zeros(1, dtype=int), np.full(1, 0.5),
                       np.array([[0.99, 0.0, 0.01]]))
    assert one.unsupported_mass == 0.01


def test_the_default_switch_threshold_is_ten():
    p = np.array([0.5, 0.5, 0.25, 0.5, 1 / 10.5])
    target = TARGET.copy()
    target[4] = [0.0, 1.0]  # row 4's weight: 1 / (1 / 10.5) = 10.5, between 10 and 11
    default = estimate("switch-dr", R, A, p, target, q_hat=Q)
    assert default.value == pytest.approx(estimate("switch-dr", R, A, p, target, q_hat=Q,
                                                   tau=10.0).value)
    assert default.value != pytest.approx(estimate("switch-dr", R, A, p, target, q_hat=Q,
                                                   tau=11.0).value)


def test_without_q_hat_the_model_is_cross_fitted_with_the_given_seed_and_folds():
    rng = np.random.default_rng(0)
    n = 60
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    a = rng.integers(0, 2, n)
    r = X[:, 1] * (a + 1) + rng.normal(size=n)
    p, target = np.full(n, 0.5), np.tile([0.3, 0.7], (n, 1))
    for seed, folds in ((0, 2), (5, 3)):
        q = cross_fit(X, a, r, 2, folds=folds, seed=seed)
        got = estimate("dr", r, a, p, target, X=X, seed=seed, folds=folds)
        assert got.value == pytest.approx(estimate("dr", r, a, p, target, q_hat=q).value)
    assert estimate("dr", r, a, p, target, X=X).value == pytest.approx(
        estimate("dr", r, a, p, target, q_hat=cross_fit(X, a, r, 2, folds=2, seed=0)).value)


def test_a_model_factory_fits_the_reward_model():
    class Mean:  # a regressor that predicts the mean reward of what it was fitted on
        def fit(self, X, y):
            self.mean = float(np.mean(y))

        def predict(self, X):
            return np.full(len(X), self.mean)

    rng = np.random.default_rng(4)
    n = 40
    X, a = rng.normal(size=(n, 2)), rng.integers(0, 2, n)
    r, p, target = rng.normal(size=n) + a, np.full(n, 0.5), np.tile([0.5, 0.5], (n, 1))
    q = cross_fit(X, a, r, 2, model=Mean)
    got = estimate("dm", r, a, p, target, X=X, model=Mean)
    assert got.value == pytest.approx(estimate("dm", r, a, p, target, q_hat=q).value)
    assert got.value != pytest.approx(estimate("dm", r, a, p, target, X=X).value)


def test_a_bootstrap_of_switch_dr_keeps_its_threshold():
    got = estimate("switch-dr", R, A, P, TARGET, q_hat=Q, tau=1.6, bootstrap=50, seed=0)
    assert got.value == pytest.approx(5.5 / 5) and got.lower <= got.upper


def test_a_bootstrap_resamples_rows_with_their_model_values():
    rng = np.random.default_rng(1)
    n = 40
    r, a = rng.normal(size=n), rng.integers(0, 2, n)
    p, target, q = np.full(n, 0.5), np.tile([0.2, 0.8], (n, 1)), rng.normal(size=(n, 2))
    got = estimate("dr", r, a, p, target, q_hat=q, bootstrap=300, seed=7)
    draw = np.random.default_rng(7)
    values = []
    for _ in range(300):
        i = draw.integers(0, n, n)
        w = target[i, a[i]] / p[i]
        values.append(((target[i] * q[i]).sum(axis=1) + w * (r[i] - q[i, a[i]])).mean())
    assert (got.lower, got.upper) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    assert got.interval == "bootstrap-300"
    assert estimate("ips", r, a, p, target).interval == "influence"


def test_a_difference_of_one_row_has_no_interval_and_of_no_weight_no_sample():
    one = difference("ips", R[:1], A[:1], P[:1], TARGET[:1], np.eye(2)[[1]])
    assert (one.lower, one.upper) == (-np.inf, np.inf)
    two = difference("ips", R[:2], A[:2], P[:2], TARGET[:2], np.eye(2)[[1, 0]])
    assert np.isfinite(two.upper)
    never = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert difference("ips", R, A, P, never, never).ess == 0.0
    small = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.8, 0.2]])
    w = 2 * np.array([0.0, 0.0, 0.0, 0.4, 0.25])  # both targets' weights, summed
    assert difference("ips", R, A, P, small, small).ess == pytest.approx(
        w.sum() ** 2 / (w**2).sum())


def test_a_difference_reports_its_diagnostics():
    always_0 = np.eye(2)[[0] * 5]
    got = difference("ips", R, A, P, TARGET, always_0)
    w = TARGET[np.arange(5), A] / P + always_0[np.arange(5), A] / P
    assert got.method == "ips-difference" and got.interval == "influence" and got.n == 5
    assert got.ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert got.max_weight == pytest.approx(w.max()) and got.unsupported_mass == 0.0
    assert got.value == pytest.approx(estimate("ips", R, A, P, TARGET).value
                                      - estimate("ips", R, A, P, always_0).value)
