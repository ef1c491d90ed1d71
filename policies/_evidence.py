"""How freely each action's model should depart from the shared one, chosen by the data: the
type-II maximum likelihood ("evidence") of ``_pooled.PooledRidge``'s deviation scale.

The pooled ridge is the Bayesian linear model ``y = z_a(x)' theta + eps``, ``eps ~ N(0,
sigma^2)``, ``theta ~ N(0, sigma^2 / lam I)`` on the design ``z_a(x) = [x, s x e_a]``: the
scale ``s`` is the prior sd of the per-action deviations relative to the shared part's. A
fixed ``s`` suits one shop and not the next (a shop whose incentives hardly change the order
value wants ``s`` near 0, one whose upsell doubles it wants ``s`` near 1). The marginal
likelihood of the observed targets, with ``sigma^2`` profiled out (Bishop 2006, eq. 3.86;
MacKay 1992), is

    log p(y | s) = -1/2 log det A(s) - n/2 log(rr - b(s)' A(s)^-1 b(s)) + const,

with ``A(s) = lam I + Z(s)' Z(s)``, ``b(s) = Z(s)' y``, ``rr = y' y``: it trades the fit the
deviations buy against the volume of parameters they open. The likelihood principle keeps it
valid for adaptively chosen actions (the choice depends on past data only).

Everything here is a function of the scale-free statistics of the rows, ``G_a = X_a' X_a``,
``c_a = X_a' y_a`` and ``rr``, recovered from the stack the pooled ridge keeps
(:func:`raw_statistics`). The (D, D) matrix, ``D = d (K + 1)``, is never factorized per trial
scale: its deviation blocks ``M_a = lam I + s^2 G_a`` are block diagonal, so by the Schur
complement ``S = lam I + sum G_a - s^2 sum G_a M_a^-1 G_a`` the log-determinant and the
quadratic form cost K + 1 Cholesky factorizations of (d, d).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([np.ones(3000), rng.normal(size=3000)])
>>> a = rng.integers(0, 3, 3000)
>>> y = X @ [1.0, 0.5] + np.array([0.0, 0.6, -0.6])[a] + rng.normal(0, 0.3, 3000)
>>> stats = group_statistics(X, a, y, 3)
>>> best_scale(stats, lam=1.0, rr=float(y @ y), n=3000.0) > 0.3  # real deviations: loose
True
>>> y = X @ [1.0, 0.5] + rng.normal(0, 0.3, 3000)
>>> best_scale(group_statistics(X, a, y, 3), lam=1.0, rr=float(y @ y), n=3000.0) < 0.1
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: the scales tried: factors of sqrt(2) from 1/64 (one model for all actions, in effect) to
#: 4 (deviations looser than the shared part)
SCALES = 2.0 ** np.arange(-6.0, 2.25, 0.5)


class RowStatistics(NamedTuple):
    """What the rows say, free of the scale: (K, d, d) ``G_a = X_a' W X_a``, the (d,) shared
    part ``b0`` of the linear term and its (K, d) per-action parts ``c_a`` (for a ridge
    ``c_a = X_a' y_a`` and ``b0 = sum c_a``; a Laplace posterior that forgets keeps a ``b0``
    of its own)."""

    G: np.ndarray
    b0: np.ndarray
    c: np.ndarray


def group_statistics(X: np.ndarray, actions: np.ndarray, y: np.ndarray, n_actions: int
                     ) -> RowStatistics:
    """The statistics of rows ``(X, actions, y)`` of a ridge."""
    d = X.shape[1]
    G, c = np.zeros((n_actions, d, d)), np.zeros((n_actions, d))
    np.add.at(G, actions, X[:, :, None] * X[:, None, :])
    np.add.at(c, actions, X * y[:, None])
    return RowStatistics(G, c.sum(axis=0), c)


def raw_statistics(A: np.ndarray, b: np.ndarray, lam: float, n_actions: int, scale: float
                   ) -> RowStatistics:
    """The statistics from the pooled design's ``A = lam I + Z' W Z`` and linear term ``b``
    at ``scale``: the shared-by-own blocks of A are ``scale G_a``, the own parts of b
    ``scale c_a`` (forgetting fades them alike; the prior ``lam I`` never fades)."""
    d = len(A) // (n_actions + 1)
    G = np.stack([A[:d, d * (1 + k):d * (2 + k)] for k in range(n_actions)]) / scale
    return RowStatistics(0.5 * (G + G.transpose(0, 2, 1)), b[:d].copy(),
                         b[d:].reshape(n_actions, d) / scale)


def scaled_statistics(stats: RowStatistics, lam: float, scale: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``A(s)`` and ``b(s)`` of the pooled design at ``scale`` (inverse of
    :func:`raw_statistics`)."""
    G, c = stats.G, stats.c
    K, d = c.shape
    A = lam * np.eye(d * (K + 1))
    A[:d, :d] += G.sum(axis=0)
    for k in range(K):
        own = slice(d * (1 + k), d * (2 + k))
        A[:d, own] = A[own, :d] = scale * G[k]
        A[own, own] += scale * scale * G[k]
    return A, np.concatenate([stats.b0, scale * c.ravel()])


def _fit_terms(stats: RowStatistics, lam: float, scale: float) -> tuple[float, float]:
    """``log det A(s)`` and ``b(s)' A(s)^-1 b(s)`` by the Schur complement onto the shared
    block (module docstring)."""
    G, c = stats.G, stats.c
    s2, eye = scale * scale, np.eye(c.shape[1])
    L = np.linalg.cholesky(lam * eye + s2 * G)  # (K, d, d): the own blocks M_a
    Minv_G = np.linalg.solve(L.transpose(0, 2, 1), np.linalg.solve(L, G))
    Minv_c = np.linalg.solve(L.transpose(0, 2, 1), np.linalg.solve(L, c[:, :, None]))[..., 0]
    S = lam * eye + G.sum(axis=0) - s2 * np.einsum("kij,kjl->il", G, Minv_G)
    u = stats.b0 - s2 * np.einsum("kij,kj->i", G, Minv_c)
    LS = np.linalg.cholesky(0.5 * (S + S.T))
    w = np.linalg.solve(LS, u)
    logdet = 2.0 * (np.log(np.diagonal(L, axis1=1, axis2=2)).sum() + np.log(np.diag(LS)).sum())
    return float(logdet), float(s2 * np.einsum("ki,ki->", c, Minv_c) + w @ w)


def log_evidence(stats: RowStatistics, lam: float, scale: float, rr: float | None = None,
                 n: float | None = None) -> float:
    """The log marginal likelihood at ``scale``, up to a constant that does not depend on
    it. With ``rr`` (sum of squared targets) and ``n`` (rows; faded weight when forgetting):
    a ridge's, its noise variance profiled out,
    ``-1/2 log det A - n/2 log(rr - b' A^-1 b)``. Without: a Laplace posterior's, whose
    likelihood is the Gaussian ``exp(-theta' (A - lam I) theta / 2 + b' theta)`` it keeps
    (unit noise), ``-1/2 log det A + 1/2 b' A^-1 b`` (the Laplace evidence, MacKay 1992)."""
    logdet, fitted = _fit_terms(stats, lam, scale)
    if rr is None:
        return -0.5 * logdet + 0.5 * fitted
    rss = max(rr - fitted, 1e-12 * max(rr, 1e-300))
    return float(-0.5 * logdet - 0.5 * n * np.log(rss))


def best_scale(stats: RowStatistics, lam: float, rr: float | None = None,
               n: float | None = None) -> float:
    """The scale of :data:`SCALES` with the largest evidence (the smallest on a tie, so the
    choice is a function of the statistics alone)."""
    evidence = [log_evidence(stats, lam, s, rr, n) for s in SCALES]
    return float(SCALES[int(np.argmax(evidence))])
