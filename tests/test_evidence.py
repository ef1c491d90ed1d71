"""The pooled ridge's deviation scale chosen by the evidence: the formula is the marginal
likelihood it claims (against the dense Gaussian), the choice finds the scale the data were
drawn with, and the model it leaves is the one a fixed scale would have fitted, however the
rows were batched and across a restart."""

from __future__ import annotations

import numpy as np
import pytest

from policies import _evidence, _pooled
from policies._evidence import group_statistics, log_evidence, raw_statistics, scaled_statistics
from policies._pooled import PooledRidge, pooled_design

K, D = 4, 3


def _rows(n, deviation_sd, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, D - 1))])
    a = rng.integers(0, K, n)
    theta = rng.normal(size=D) + deviation_sd * rng.normal(size=(K, D))
    return X, a, (X * theta[a]).sum(axis=1) + rng.normal(0, noise, n)


@pytest.mark.parametrize("lam", [0.5, 3.0])
def test_log_evidence_is_the_profiled_gaussian_marginal_likelihood(lam):
    """log N(y; 0, sigma^2 (I + Z Z' / lam)) at the profiled sigma^2 = y' C^-1 y / n, up to a
    constant that must not depend on the scale (checked over three scales, 1e-9)."""
    X, a, y = _rows(80, 0.5)
    stats = group_statistics(X, a, y, K)
    gaps = []
    for scale in (0.1, 0.7, 2.5):
        Z = pooled_design(X, a, K, scale)
        C = np.eye(len(y)) + Z @ Z.T / lam
        sigma2 = y @ np.linalg.solve(C, y) / len(y)
        dense = -0.5 * len(y) * np.log(sigma2) - 0.5 * np.linalg.slogdet(C)[1]
        gaps.append(dense - log_evidence(stats, lam, scale, float(y @ y), len(y)))
    np.testing.assert_allclose(gaps, gaps[0], atol=1e-9)


def test_statistics_round_trip_through_the_stack():
    """A(s) = lam I + Z(s)' Z(s) and b(s) = Z(s)' y, and back to G_a, c_a (1e-12)."""
    X, a, y = _rows(60, 0.5)
    stats = group_statistics(X, a, y, K)
    Z = pooled_design(X, a, K, 0.4)
    A, b = scaled_statistics(stats, 2.0, 0.4)
    np.testing.assert_allclose(A, 2.0 * np.eye(D * (K + 1)) + Z.T @ Z, atol=1e-12)
    np.testing.assert_allclose(b, Z.T @ y, atol=1e-12)
    for mine, ref in zip(raw_statistics(A, b, 2.0, K, 0.4), stats):
        np.testing.assert_allclose(mine, ref, atol=1e-12)


@pytest.mark.parametrize("deviation_sd, lo, hi", [(0.0, 0, 0.05), (0.15, 0.05, 0.6),
                                                  (1.0, 0.5, 4.0)])
def test_the_chosen_scale_follows_how_far_the_actions_really_differ(deviation_sd, lo, hi):
    """With noise sd 0.5 and lam 1, deviations of prior sd ``t`` correspond to the scale
    ``t / 0.5``: none -> the smallest scales, 0.15 -> ~0.3, 1.0 -> ~2 (bands of a factor
    ~3 each way, 3,000 rows, seed 3; the bands do not overlap, so a choice that ignored the
    data fails at least two of the three)."""
    X, a, y = _rows(3000, deviation_sd, seed=3)
    stats = group_statistics(X, a, y, K)
    assert lo <= _evidence.best_scale(stats, 1.0, float(y @ y), len(y)) <= hi


def _fitted(X, a, y, chunks, **kw):
    model = PooledRidge(K, D, 1.0, 0.3, fit_scale=True, **kw)
    for part in np.array_split(np.arange(len(y)), chunks):
        model.update(X[part], a[part], y[part])
    return model


def test_a_fitted_scale_leaves_the_model_a_fixed_scale_would_fit():
    """After the evidence moved the scale, the statistics are those of a pooled ridge built at
    that scale from the same rows (1e-9): re-expressing loses nothing."""
    X, a, y = _rows(900, 0.8, seed=1)
    model = _fitted(X, a, y, 7)
    assert model.scale != 0.3 and model.rows_learned == 900
    fixed = PooledRidge(K, D, 1.0, model.scale)
    fixed.update(X, a, y)
    np.testing.assert_allclose(model.ridge.theta, fixed.ridge.theta, atol=1e-9)
    np.testing.assert_allclose(model.ridge.A_inv, fixed.ridge.A_inv, atol=1e-9)
    np.testing.assert_allclose(model.noise_sd(), fixed.noise_sd(), rtol=1e-9)


@pytest.mark.parametrize("halflife", [None, 300.0])
def test_the_choice_does_not_depend_on_batching_or_a_restart(halflife):
    """One by one (online), in uneven chunks (replay) and with a restart halfway through a
    chunk: the same scales at the same rows and the same model (1e-8)."""
    X, a, y = _rows(700, 0.8, seed=2)
    whole = _fitted(X, a, y, 3, halflife=halflife)
    single = _fitted(X, a, y, len(y), halflife=halflife)
    first = _fitted(X[:333], a[:333], y[:333], 5, halflife=halflife)
    restarted = PooledRidge(K, D, 1.0, 0.3, halflife=halflife, fit_scale=True)
    restarted.load({k: np.array(v) for k, v in first.state().items()})
    restarted.update(X[333:], a[333:], y[333:])
    for other in (single, restarted):
        assert (other.scale, other.next_fit) == (whole.scale, whole.next_fit)
        np.testing.assert_allclose(other.ridge.theta, whole.ridge.theta, atol=1e-8)
        np.testing.assert_allclose(other.ridge.A_inv, whole.ridge.A_inv, atol=1e-8)


def test_the_scale_is_chosen_on_a_schedule():
    """First after FIRST_FIT rows, then every quarter of the rows so far within [MIN_GAP,
    MAX_GAP]."""
    X, a, y = _rows(5000, 0.5, seed=4)
    model = PooledRidge(K, D, 1.0, 0.3, fit_scale=True)
    model.update(X[:_pooled.FIRST_FIT - 1], a[:_pooled.FIRST_FIT - 1], y[:_pooled.FIRST_FIT - 1])
    assert model.next_fit == _pooled.FIRST_FIT and model.scale == 0.3
    model.update(X[_pooled.FIRST_FIT - 1:], a[_pooled.FIRST_FIT - 1:], y[_pooled.FIRST_FIT - 1:])
    fits = [_pooled.FIRST_FIT]
    while fits[-1] <= 5000:
        fits.append(fits[-1] + int(np.clip(fits[-1] // 4, _pooled.MIN_GAP, _pooled.MAX_GAP)))
    assert model.next_fit == fits[-1]
