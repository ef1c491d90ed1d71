"""Every estimator's value and interval computed by hand on a log of five rows.

The per-row terms below are written out from the formulas in the estimators' docstrings, and the
interval from them with the standard library (``statistics.stdev``), not with the module's code:
a changed weight, residual, self-normalization or variance term fails here.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from simulator.evaluation.estimators import METHODS, difference, estimate

Z95 = 1.959963984540054  # the normal quantile at 0.975
R = np.array([1.0, 0.0, 2.0, 0.0, 3.0])
A = np.array([0, 1, 0, 0, 1])
P = np.array([0.5, 0.5, 0.25, 0.5, 0.8])
TARGET = np.array([[0.8, 0.2], [0.5, 0.5], [1.0, 0.0], [0.2, 0.8], [0.4, 0.6]])
Q = np.array([[0.5, 1.0], [0.2, 0.3], [1.5, 0.5], [0.1, 0.4], [1.0, 2.0]])
# by hand: w = target[i, a_i] / p_i
W = [0.8 / 0.5, 0.5 / 0.5, 1.0 / 0.25, 0.2 / 0.5, 0.6 / 0.8]           # 1.6, 1, 4, 0.4, 0.75
D = [0.8 * 0.5 + 0.2 * 1.0, 0.5 * 0.2 + 0.5 * 0.3, 1.0 * 1.5, 0.2 * 0.1 + 0.8 * 0.4,
     0.4 * 1.0 + 0.6 * 2.0]                                               # 0.6, .25, 1.5, .34, 1.6
E = [1.0 - 0.5, 0.0 - 0.3, 2.0 - 1.5, 0.0 - 0.1, 3.0 - 2.0]            # r_i - q(x_i, a_i)


def _by_hand(phi: list[float], value: float | None = None) -> tuple[float, float, float]:
    value = statistics.fmean(phi) if value is None else value
    half = Z95 * statistics.stdev(phi) / math.sqrt(len(phi))
    return value, value - half, value + half


def _ips():
    return _by_hand([w * r for w, r in zip(W, R)])


def _snips():
    v = sum(w * r for w, r in zip(W, R)) / sum(W)
    wbar = sum(W) / 5
    return _by_hand([v + w * (r - v) / wbar for w, r in zip(W, R)], v)


def _dm():
    return _by_hand(D)


def _dr():
    return _by_hand([d + w * e for d, w, e in zip(D, W, E)])


def _switch_dr(tau):
    return _by_hand([d + (w * e if w <= tau else 0.0) for d, w, e in zip(D, W, E)])


def _sndr():
    c = sum(w * e for w, e in zip(W, E)) / sum(W)
    dbar, wbar = sum(D) / 5, sum(W) / 5
    v = dbar + c
    return _by_hand([v + (d - dbar) + w * (e - c) / wbar for d, w, e in zip(D, W, E)], v)


HAND = {"ips": _ips, "snips": _snips, "dm": _dm, "dr": _dr, "sndr": _sndr,
        "switch-dr": lambda: _switch_dr(10.0)}


@pytest.mark.parametrize("method", METHODS)
def test_value_and_interval_equal_the_hand_computation(method):
    got = estimate(method, R, A, P, TARGET, q_hat=Q)
    value, lower, upper = HAND[method]()
    assert (got.value, got.lower, got.upper) == pytest.approx((value, lower, upper), abs=1e-12)
    assert got.n == 5 and got.max_weight == pytest.approx(4.0)
    assert got.ess == pytest.approx(sum(W) ** 2 / sum(w * w for w in W))


def test_the_hand_values_are_the_ones_worked_out_on_paper():
    # the same log, to the digits a reader can check with a pencil
    assert _ips()[0] == pytest.approx(11.85 / 5)
    assert _snips()[0] == pytest.approx(11.85 / 7.75)
    assert _dm()[0] == pytest.approx(4.29 / 5)
    assert _dr()[0] == pytest.approx(7.5 / 5)
    assert _sndr()[0] == pytest.approx(4.29 / 5 + 3.21 / 7.75)


def test_switch_dr_keeps_the_correction_of_a_weight_equal_to_tau():
    # row 0 has weight exactly 1.6: at tau = 1.6 its correction stays (w <= tau), just below
    # it goes; row 2 (weight 4) trusts the model alone in both
    at = estimate("switch-dr", R, A, P, TARGET, q_hat=Q, tau=1.6)
    below = estimate("switch-dr", R, A, P, TARGET, q_hat=Q, tau=np.nextafter(1.6, 0))
    assert at.value == pytest.approx(_switch_dr(1.6)[0]) == pytest.approx(5.5 / 5)
    assert below.value == pytest.approx(_switch_dr(1.5)[0]) == pytest.approx(4.7 / 5)
    assert (at.lower, at.upper) == pytest.approx(_switch_dr(1.6)[1:], abs=1e-12)


def test_a_paired_difference_uses_the_difference_of_influence_values():
    always_0 = np.eye(2)[[0] * 5]
    got = difference("snips", R, A, P, TARGET, always_0)
    w0 = [(1.0 if a == 0 else 0.0) / p for a, p in zip(A, P)]  # always action 0: 1 / p there
    v_t, v_0 = _snips()[0], sum(w * r for w, r in zip(w0, R)) / sum(w0)
    phi_t = [v_t + w * (r - v_t) / (sum(W) / 5) for w, r in zip(W, R)]
    phi_0 = [v_0 + w * (r - v_0) / (sum(w0) / 5) for w, r in zip(w0, R)]
    value, lower, upper = _by_hand([a - b for a, b in zip(phi_t, phi_0)], v_t - v_0)
    assert (got.value, got.lower, got.upper) == pytest.approx((value, lower, upper), abs=1e-12)


def test_a_bootstrap_interval_is_a_percentile_interval_of_resampled_values():
    got = estimate("ips", R, A, P, TARGET, bootstrap=200, seed=3)
    rng = np.random.default_rng(3)
    values = []
    phi = np.array([w * r for w, r in zip(W, R)])
    for _ in range(200):
        values.append(phi[rng.integers(0, 5, 5)].mean())
    assert (got.lower, got.upper) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
