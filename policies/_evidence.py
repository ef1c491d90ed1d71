"""How freely each action's model should depart from the shared one, chosen by the data: the
type-II maximum likelihood ("evidence") of ``_pooled.PooledRidge``'s deviation scales.

The pooled ridge is the Bayesian linear model ``y = z_a(x)' theta + eps``, ``eps ~ N(0,
sigma^2)``, ``theta ~ N(0, sigma^2 / lam I)`` on the design ``z_a(x) = [x, s_a x e_a]``: the
scale ``s_a`` is the prior sd of action a's deviation relative to the shared part's. A fixed
scale suits one shop and not the next (a shop whose incentives hardly change the order value
wants it near 0, one whose upsell doubles the orders of the visitors it is shown to wants the
upsell's near 1, and the others' near 0). The marginal likelihood of the observed targets,
with ``sigma^2`` profiled out (Bishop 2006, section 3.5; MacKay 1992), is

    log p(y | s) = -1/2 log det A(s) - n/2 log(rr - b(s)' A(s)^-1 b(s)) + const,

with ``A(s) = lam I + Z(s)' Z(s)``, ``b(s) = Z(s)' y``, ``rr = y' y``: it trades the fit the
deviations buy against the volume of parameters they open. The likelihood principle keeps it
valid for adaptively chosen actions (the choice depends on past data only). It is maximized
over :data:`SCALES` one action at a time (:func:`best_scales`).

Everything here is a function of the scale-free statistics of the rows, ``G_a = X_a' X_a``,
``c_a = X_a' y_a`` and ``rr``, recovered from the stack the pooled ridge keeps
(:func:`raw_statistics`). The (D, D) matrix, ``D = d (K + 1)``, is never factorized per trial
scale: its deviation blocks ``M_a = lam I + s_a^2 G_a`` are block diagonal, so by the Schur
complement ``S = lam I + sum G_a - sum s_a^2 G_a M_a^-1 G_a`` the log-determinant and the
quadratic form cost K + 1 Cholesky factorizations of (d, d), and each trial scale of one
action two more.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([np.ones(3000), rng.normal(size=3000)])
>>> a = rng.integers(0, 3, 3000)
>>> y = X @ [1.0, 0.5] + np.array([0.0, 0.0, 0.8])[a] + rng.normal(0, 0.3, 3000)
>>> stats = group_statistics(X, a, y, 3)
>>> scales = best_scales(stats, 1.0, float(y @ y), 3000.0, np.full(3, 0.3))
>>> bool(scales[2] > 0.3 > 0.1 > scales[0])  # only the third action departs
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: the scales tried: factors of sqrt(2) from 1/64 (the shared model, in effect) to 4
#: (deviations looser than the shared part)
SCALES = 2.0 ** np.arange(-6.0, 2.25, 0.5)


class RowStatistics(NamedTuple):
    """What the rows say, free of the scales: (K, d, d) ``G_a = X_a' X_a``, the (d,) shared
    part of the linear term ``b0 = sum c_a`` (as the stack holds it) and its (K, d)
    per-action parts ``c_a = X_a' y_a``."""

    G: np.ndarray
    b0: np.ndarray
    c: np.ndarray


def group_statistics(X: np.ndarray, actions: np.ndarray, y: np.ndarray, n_actions: int
                     ) -> RowStatistics:
    """The statistics of rows ``(X, actions, y)``."""
    d = X.shape[1]
    G, c = np.zeros((n_actions, d, d)), np.zeros((n_actions, d))
    np.add.at(G, actions, X[:, :, None] * X[:, None, :])
    np.add.at(c, actions, X * y[:, None])
    return RowStatistics(G, c.sum(axis=0), c)


def raw_statistics(A: np.ndarray, b: np.ndarray, scales: np.ndarray) -> RowStatistics:
    """The statistics from the pooled design's ``A = lam I + Z' Z`` and ``b = Z' y`` at
    (K,) ``scales``: the shared-by-own blocks of A are ``s_a G_a``, the own parts of b
    ``s_a c_a`` (forgetting fades them alike; the prior ``lam I`` never fades)."""
    K = len(scales)
    d = len(A) // (K + 1)
    G = np.stack([A[:d, d * (1 + k):d * (2 + k)] for k in range(K)]) / scales[:, None, None]
    return RowStatistics(0.5 * (G + G.transpose(0, 2, 1)), b[:d].copy(),
                         b[d:].reshape(K, d) / scales[:, None])


def scaled_statistics(stats: RowStatistics, lam: float, scales: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``A(s)`` and ``b(s)`` of the pooled design at (K,) ``scales`` (inverse of
    :func:`raw_statistics`)."""
    G, c = stats.G, stats.c
    K, d = c.shape
    A = lam * np.eye(d * (K + 1))
    A[:d, :d] += G.sum(axis=0)
    for k in range(K):
        own = slice(d * (1 + k), d * (2 + k))
        A[:d, own] = A[own, :d] = scales[k] * G[k]
        A[own, own] += scales[k] ** 2 * G[k]
    return A, np.concatenate([stats.b0, (scales[:, None] * c).ravel()])


class _Terms(NamedTuple):
    """One deviation block's share of the evidence at scale s, for a stack of blocks or of
    trial scales: ``log det M``, ``s^2 G M^-1 G``, ``s^2 G M^-1 c``, ``s^2 c' M^-1 c`` with
    ``M = lam I + s^2 G``."""

    logdet: np.ndarray
    GMG: np.ndarray
    GMc: np.ndarray
    cMc: np.ndarray


def _terms(G: np.ndarray, c: np.ndarray, lam: float, scales: np.ndarray) -> _Terms:
    s2 = np.asarray(scales, float)[:, None, None] ** 2
    L = np.linalg.cholesky(lam * np.eye(G.shape[-1]) + s2 * G)
    Lt = np.swapaxes(L, -1, -2)
    MG = np.linalg.solve(Lt, np.linalg.solve(L, G))
    Mc = np.linalg.solve(Lt, np.linalg.solve(L, c[..., None]))[..., 0]
    return _Terms(2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1),
                  s2 * (G @ MG), s2[..., 0] * (G @ Mc[..., None])[..., 0],
                  s2[:, 0, 0] * (c * Mc).sum(axis=-1))


def _profiled(stats: RowStatistics, lam: float, rr: float, n: float, logdet: np.ndarray,
              GMG: np.ndarray, GMc: np.ndarray, cMc: np.ndarray) -> np.ndarray:
    """The evidence from the blocks' summed terms (leading axes: trial scales)."""
    S = lam * np.eye(len(stats.b0)) + stats.G.sum(axis=0) - GMG
    LS = np.linalg.cholesky(0.5 * (S + np.swapaxes(S, -1, -2)))
    w = np.linalg.solve(LS, (stats.b0 - GMc)[..., None])[..., 0]
    fitted = cMc + (w * w).sum(axis=-1)  # b' A^-1 b
    logdet = logdet + 2.0 * np.log(np.diagonal(LS, axis1=-2, axis2=-1)).sum(axis=-1)
    rss = np.maximum(rr - fitted, 1e-12 * max(rr, 1e-300))
    return -0.5 * logdet - 0.5 * n * np.log(rss)


def log_evidence(stats: RowStatistics, lam: float, scales: np.ndarray, rr: float,
                 n: float) -> float:
    """The log marginal likelihood at (K,) ``scales``, up to a constant that does not depend
    on them (module docstring); ``rr`` the sum of squared targets, ``n`` the rows (faded
    weight when forgetting)."""
    t = _terms(stats.G, stats.c, lam, scales)
    return float(_profiled(stats, lam, rr, n, t.logdet.sum(), t.GMG.sum(axis=0),
                           t.GMc.sum(axis=0), t.cMc.sum()))


def _at(stats: RowStatistics, lam: float, rr: float, n: float, grid: _Terms,
        chosen: np.ndarray) -> tuple[float, _Terms]:
    """The evidence at the grid indices ``chosen`` and the summed terms it came from."""
    total = _Terms(*(part[np.arange(len(chosen)), chosen].sum(axis=0) for part in grid))
    return float(_profiled(stats, lam, rr, n, *total)), total


def _ascend(stats: RowStatistics, lam: float, rr: float, n: float, grid: _Terms,
            chosen: np.ndarray) -> tuple[float, np.ndarray]:
    """Best-first coordinate ascent from the (K,) grid indices ``chosen``: each step moves
    the one action whose best scale gains the most evidence, until no move gains (ties: the
    first action, the smaller scale). ``grid`` holds every action's terms at every scale,
    (K, len(SCALES), ...). Returns the evidence and the indices."""
    K = len(chosen)
    chosen, rows = np.array(chosen), np.arange(K)
    # every move raises the evidence, so ascent ends; the cap bounds one choice's cost
    for _ in range(4 * K):
        current, total = _at(stats, lam, rr, n, grid, chosen)
        rest = [t - part[rows, chosen][:, None] for t, part in zip(total, grid)]
        evidence = _profiled(stats, lam, rr, n, *(r + part for r, part in zip(rest, grid)))
        k, j = np.unravel_index(int(np.argmax(evidence)), evidence.shape)
        if not evidence[k, j] > current + 1e-9 * abs(current):
            return current, chosen
        chosen[k] = j
    return _at(stats, lam, rr, n, grid, chosen)[0], chosen


def best_scales(stats: RowStatistics, lam: float, rr: float, n: float,
                scales: np.ndarray) -> np.ndarray:
    """The (K,) scales of :data:`SCALES` of largest evidence found by best-first coordinate
    ascent from ``scales`` (each at its nearest grid scale) and from the shared model (every scale the smallest): the
    evidence has more than one mode (a shared part that absorbs one action's departure
    makes the other actions look departed), and moving the action that gains most first
    finds the one where only the actions that depart do. A function of the statistics and
    ``scales`` alone (ties: the first start)."""
    K, m = len(scales), len(SCALES)
    grid = _terms(np.repeat(stats.G, m, axis=0), np.repeat(stats.c, m, axis=0), lam,
                  np.tile(SCALES, K))
    grid = _Terms(*(part.reshape((K, m) + part.shape[1:]) for part in grid))
    start = np.abs(np.log(np.asarray(scales, float))[:, None] - np.log(SCALES)).argmin(axis=1)
    found = [_ascend(stats, lam, rr, n, grid, begin) for begin in (start, np.zeros(K, int))]
    return SCALES[found[0][1] if found[0][0] >= found[1][0] else found[1][1]]
