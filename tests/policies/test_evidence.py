"""The pooled ridge's deviation scales chosen by the evidence: the formula is the marginal
likelihood it claims (against the dense Gaussian), the search finds the evidence's maximum
and the scales the data were drawn with, and the model it leaves is the one fixed scales
would have fitted, however the rows were batched and across a restart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from policies import _pooled
from policies._evidence import (
    SCALES,
    best_scales,
    group_statistics,
    log_evidence,
    raw_statistics,
    scaled_statistics,
)
from policies._pooled import PooledRidge, pooled_design

K, D = 4, 3


def _rows(n, deviation_sd, seed=0, noise=0.5):
    """Rows whose actions depart from a shared model by ``deviation_sd`` (a number, or one
    per action) times a standard normal per coefficient."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, D - 1))])
    a = rng.integers(0, K, n)
    sd = np.broadcast_to(deviation_sd, (K,))[:, None]
    theta = rng.normal(size=D) + sd * rng.normal(size=(K, D))
    return X, a, (X * theta[a]).sum(axis=1) + rng.normal(0, noise, n)


@pytest.mark.parametrize("lam", [0.5, 3.0])
def test_log_evidence_is_the_profiled_gaussian_marginal_likelihood(lam):
    """log N(y; 0, sigma^2 (I + Z Z' / lam)) at the profiled sigma^2 = y' C^-1 y / n, up to a
    constant that must not depend on the scales (checked at four, one per action; 1e-9)."""
    X, a, y = _rows(80, 0.5)
    stats = group_statistics(X, a, y, K)
    gaps = []
    for scale in (np.full(K, 0.1), np.full(K, 2.5), np.array([0.1, 0.7, 2.5, 0.02]),
                  np.array([3.0, 0.05, 0.4, 1.0])):
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
    scales = np.array([0.4, 0.1, 1.3, 0.4])
    Z = pooled_design(X, a, K, scales)
    A, b = scaled_statistics(stats, 2.0, scales)
    np.testing.assert_allclose(A, 2.0 * np.eye(D * (K + 1)) + Z.T @ Z, atol=1e-12)
    np.testing.assert_allclose(b, Z.T @ y, atol=1e-12)
    for mine, ref in zip(raw_statistics(A, b, scales), stats):
        np.testing.assert_allclose(mine, ref, atol=1e-12)


def test_the_search_finds_the_evidences_maximum():
    """On 3 actions of which one departs (by 0.8 in its intercept), best-first ascent lands
    on the evidence's maximum over every combination of every other grid scale (exhaustive,
    9^3), where one sweep in action order from any start stops on a lower mode."""
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(3000), rng.normal(size=3000)])
    a = rng.integers(0, 3, 3000)
    y = X @ [1.0, 0.5] + np.array([0.0, 0.0, 0.8])[a] + rng.normal(0, 0.3, 3000)
    stats, rr = group_statistics(X, a, y, 3), float(y @ y)
    found = best_scales(stats, 1.0, rr, 3000.0, np.full(3, 0.3))
    grid = [np.array(c) for c in itertools.product(SCALES[::2], repeat=3)]
    best = max(grid, key=lambda c: log_evidence(stats, 1.0, c, rr, 3000.0))
    assert log_evidence(stats, 1.0, found, rr, 3000.0) >= log_evidence(stats, 1.0, best, rr,
                                                                        3000.0) - 1e-9
    assert found[2] >= 1.0 and found[:2].max() <= 0.05


@pytest.mark.parametrize("deviation_sd, lo, hi", [
    ((0.0,) * K, (0.0,) * K, (0.05,) * K),
    ((0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 0.5), (0.05, 0.05, 0.05, 4.0)),
    ((0.15,) * K, (0.0, 0.1, 0.1, 0.1), (4.0, 1.0, 1.0, 1.0))])
def test_each_action_gets_the_scale_its_departure_warrants(deviation_sd, lo, hi):
    """With noise sd 0.5 and lam 1, an action departing by ``t`` per coefficient corresponds
    to the scale ``t / 0.5``: none -> the smallest scales, one action by 1.0 -> that action
    ~2 and the others < 0.05, all by 0.15 -> ~0.3 for all but one, which may become the
    shared model the others depart from (one direction of shared-plus-K-deviations is
    redundant; bands of a factor ~3 each way, scales sorted, 3,000 rows, seed 3; a choice
    that ignored the data, or gave every action one scale, fails at least one case)."""
    X, a, y = _rows(3000, np.array(deviation_sd), seed=3)
    scales = best_scales(group_statistics(X, a, y, K), 1.0, float(y @ y), len(y),
                         np.full(K, 0.3))
    ordered = scales if len(set(deviation_sd)) > 1 else np.sort(scales)
    assert np.all(np.array(lo) <= ordered) and np.all(ordered <= np.array(hi)), scales


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
    assert not np.all(model.scale == 0.3) and model.rows_learned == 900
    fixed = PooledRidge(K, D, 1.0, 0.3)
    fixed.scale = model.scale  # the fixed per-action scales the evidence chose
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
        assert other.next_fit == whole.next_fit
        np.testing.assert_array_equal(other.scale, whole.scale)
        np.testing.assert_allclose(other.ridge.theta, whole.ridge.theta, atol=1e-8)
        np.testing.assert_allclose(other.ridge.A_inv, whole.ridge.A_inv, atol=1e-8)


def test_the_scale_is_chosen_on_a_schedule():
    """First after FIRST_FIT rows, then every quarter of the rows so far within [MIN_GAP,
    MAX_GAP]."""
    X, a, y = _rows(5000, 0.5, seed=4)
    model = PooledRidge(K, D, 1.0, 0.3, fit_scale=True)
    model.update(X[:_pooled.FIRST_FIT - 1], a[:_pooled.FIRST_FIT - 1], y[:_pooled.FIRST_FIT - 1])
    assert model.next_fit == _pooled.FIRST_FIT and np.all(model.scale == 0.3)
    model.update(X[_pooled.FIRST_FIT - 1:], a[_pooled.FIRST_FIT - 1:], y[_pooled.FIRST_FIT - 1:])
    fits = [_pooled.FIRST_FIT]
    while fits[-1] <= 5000:
        fits.append(fits[-1] + int(np.clip(fits[-1] // 4, _pooled.MIN_GAP, _pooled.MAX_GAP)))
    assert model.next_fit == fits[-1]


def test_an_evidence_that_cannot_be_computed_keeps_the_spreads(monkeypatch):
    """Fault injected: a factorization that fails while choosing (rounding in a degenerate
    design) leaves the spreads and the model as they were and learning goes on; the next
    choice is still scheduled."""
    X, a, y = _rows(300, 0.8, seed=6)
    model = PooledRidge(K, D, 1.0, 0.3, fit_scale=True)

    def fail(*args, **kwargs):
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(_pooled, "best_scales", fail)
    model.update(X, a, y)
    fixed = PooledRidge(K, D, 1.0, 0.3)
    fixed.update(X, a, y)
    np.testing.assert_array_equal(model.scale, 0.3)
    np.testing.assert_allclose(model.ridge.theta, fixed.ridge.theta, atol=1e-10)
    assert model.next_fit > 300
