"""A ridge regression shared by all actions plus a per-action deviation: ``theta_a = beta +
delta_a``, the deviations penalized ``1 / scale**2`` times harder than the shared part.

Disjoint per-action models (``_ridge.RidgeStack`` with K stacks) learn what all actions have
in common K times over, each from a K-th of the data. Here one model is fitted on the design
``z_a(x) = [x, scale * x e_a]`` (``e_a`` the action's indicator), with one ridge penalty
``lam``: scaling the deviation columns by ``scale`` is the same as penalizing the deviations
by ``lam / scale**2`` (Evgeniou & Pontil 2004, "regularized multi-task learning"). With
``scale`` -> 0 every action shares one model; with ``scale`` = 1 the deviations are as free as
the shared part. The statistics are one (D, D) stack, D = d (K + 1), updated by
``RidgeStack`` (rank-1 steps, Cholesky refreshes, no per-event inverse). With ``fit_scale``
each action has a scale of its own, chosen by the evidence as rows arrive (``_evidence``).

>>> import numpy as np
>>> r = PooledRidge(n_actions=2, dim=1, lam=1.0, scale=0.1)
>>> r.update(np.ones((40, 1)), np.array([0] * 20 + [1] * 20), np.array([1.0] * 20 + [0.0] * 20))
>>> np.round(r.means(np.ones((1, 1))), 2).tolist()  # pulled toward the shared mean 0.5
[[0.57, 0.4]]
"""

from __future__ import annotations

import numpy as np

from ._evidence import best_scales, raw_statistics, scaled_statistics
from ._ridge import RidgeStack

#: ``fit_scale``: rows before the scale is first chosen by the evidence, and the least and most
#: rows between two choices (a quarter of the rows so far in between: the choice settles as
#: data accumulates, and keeps following a drifting shop when forgetting)
FIRST_FIT, MIN_GAP, MAX_GAP = 50, 50, 1000


class PooledRidge:
    """Shared-plus-deviation ridge over K actions and d features (module docstring)."""

    def __init__(self, n_actions: int, dim: int, lam: float = 1.0, scale: float = 0.5,
                 halflife: float | None = None, fit_scale: bool = False):
        if not scale > 0:
            raise ValueError(f"pooled ridge scale must be > 0, got {scale!r}")
        self.n_actions, self.dim = int(n_actions), int(dim)
        self.ridge = RidgeStack(1, dim * (n_actions + 1), lam, halflife=halflife)
        #: rows learned per action (faded like the statistics when forgetting)
        self.counts = np.zeros(n_actions)
        #: choose each action's scale by the evidence (``_evidence``) every so many rows,
        #: starting from the given one (``scale`` is then a (K,) array, else one number);
        #: ``rows_learned`` counts rows unfaded, ``next_fit`` is when next
        self.fit_scale, self.start_scale = bool(fit_scale), float(scale)
        self.scale = np.full(self.n_actions, float(scale)) if fit_scale else float(scale)
        self.rows_learned, self.next_fit = 0, next_fit(0)

    def design(self, X: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return pooled_design(X, actions, self.n_actions, self.scale)

    def update(self, X: np.ndarray, actions: np.ndarray, y: np.ndarray) -> None:
        if not self.fit_scale:
            self._learn(X, actions, y)
            return
        start = 0  # split at the rows where the scale is chosen: the same model however
        while start < len(X):  # the rows are batched (online one by one, replay in blocks)
            stop = min(len(X), start + self.next_fit - self.rows_learned)
            self._learn(X[start:stop], actions[start:stop], y[start:stop])
            self.rows_learned += stop - start
            start = stop
            if self.rows_learned >= self.next_fit:
                self.choose_scale()

    def choose_scale(self) -> None:
        """Re-express the statistics at the scales of largest evidence (``_evidence``): the
        rows' scale-free statistics are the same, only the prior on the deviations moves."""
        r = self.ridge
        stats = raw_statistics(r.A[0], r.b[0], self.scale)
        try:
            scales = best_scales(stats, r.lam, float(r.rr.sum()), float(r.counts.sum()),
                                 self.scale)
        except np.linalg.LinAlgError:  # rounding in a degenerate design: keep the spreads
            scales = self.scale  # (the model stays valid; the next choice tries again)
        if not np.array_equal(scales, self.scale):
            r.reset(0, *scaled_statistics(stats, r.lam, scales))
            self.scale = scales
        self.next_fit = next_fit(self.rows_learned)

    def _learn(self, X: np.ndarray, actions: np.ndarray, y: np.ndarray) -> None:
        self.ridge.update(self.design(X, actions), np.zeros(len(X), dtype=np.intp), y)
        if self.ridge.keep < 1.0:
            self.counts *= self.ridge.keep ** len(X)
            np.add.at(self.counts, actions, self.ridge.keep ** np.arange(len(X) - 1, -1, -1.0))
        else:
            np.add.at(self.counts, actions, 1.0)

    def relabel(self, X: np.ndarray, actions: np.ndarray, old: np.ndarray, new: np.ndarray):
        self.ridge.relabel(self.design(X, actions), np.zeros(len(X), dtype=np.intp), old, new)

    def means(self, X: np.ndarray) -> np.ndarray:
        """(n, K) predictions ``x . (beta + scale * delta_a)``."""
        d, theta = self.dim, self.ridge.theta[0]
        shared = X @ theta[:d]
        return shared[:, None] + (X @ theta[d:].reshape(self.n_actions, d).T) * self.scale

    def widths(self, X: np.ndarray) -> np.ndarray:
        """(n, K) ``sqrt(z_a' A^-1 z_a)`` for every action, per unit noise."""
        return np.sqrt(block_quadratic(X, self.ridge.A_inv[0], self.n_actions, self.scale))

    def noise_sd(self) -> float:
        return self.ridge.noise_sd()

    def finite(self) -> bool:
        r = self.ridge
        return bool(np.isfinite(r.theta).all() and np.isfinite(r.b).all()
                    and np.isfinite(r.rr).all())

    def grow(self, n: int) -> None:
        """Append n actions: their deviation starts at zero (the shared model)."""
        old, D = self.ridge, self.dim * (self.n_actions + 1)
        grown = RidgeStack(1, D + n * self.dim, old.lam, halflife=old.halflife)
        grown.A[0, :D, :D], grown.b[0, :D] = old.A[0], old.b[0]
        grown.rr[:], grown.counts[:] = old.rr, old.counts
        grown.refresh(0)
        self.ridge, self.n_actions = grown, self.n_actions + n
        self.counts = np.concatenate([self.counts, np.zeros(n)])
        if self.fit_scale:
            self.scale = np.concatenate([self.scale, np.full(n, self.start_scale)])

    def state(self) -> dict[str, np.ndarray]:
        fitted = ({"pooled.scale": self.scale.copy(), "pooled.rows_learned": np.array(
            [self.rows_learned, self.next_fit])} if self.fit_scale else {})
        return {**self.ridge.state(), "pooled.counts": self.counts, **fitted}

    def load(self, state: dict[str, np.ndarray]) -> None:
        self.ridge.load(state)
        counts = np.asarray(state["pooled.counts"], dtype=float)
        if counts.shape != self.counts.shape:
            raise ValueError(f"pooled counts have shape {counts.shape}, expected "
                             f"{self.counts.shape}")
        self.counts = counts
        if self.fit_scale:
            scale = np.asarray(state["pooled.scale"], dtype=float)
            if scale.shape != self.scale.shape:
                raise ValueError(f"pooled scales have shape {scale.shape}, expected "
                                 f"{self.scale.shape}")
            self.scale = scale
            self.rows_learned, self.next_fit = (int(v) for v in state["pooled.rows_learned"])


def next_fit(rows_learned: int) -> int:
    """After how many rows learned the scale is next chosen (``fit_scale``)."""
    if rows_learned < FIRST_FIT:
        return FIRST_FIT
    return rows_learned + int(np.clip(rows_learned // 4, MIN_GAP, MAX_GAP))


def pooled_design(X: np.ndarray, actions: np.ndarray, n_actions: int,
                  scale: float | np.ndarray) -> np.ndarray:
    """(n, d (K + 1)) rows ``z_a(x) = [x, scale * x e_a]``: x, then x scaled in its action's
    block, zeros in the other actions' blocks."""
    n, d = X.shape
    Z = np.zeros((n, d * (n_actions + 1)))
    Z[:, :d] = X
    cols = d * (1 + actions)[:, None] + np.arange(d)[None, :]
    scale = np.broadcast_to(scale, (n_actions,))[actions][:, None]  # one number or (K,)
    Z[np.arange(n)[:, None], cols] = scale * X
    return Z


def block_quadratic(X: np.ndarray, M: np.ndarray, n_actions: int, scale: float | np.ndarray
                    ) -> np.ndarray:
    """(n, K) ``z_a' M z_a`` for every row and action of the shared-plus-deviation design,
    from M's shared, cross and own (d, d) blocks, without building any ``z_a``; clipped at 0."""
    d, K, s = X.shape[1], n_actions, scale
    shared = ((X @ M[:d, :d]) * X).sum(axis=1)[:, None]
    cross = np.stack([((X @ M[:d, d * (1 + a):d * (2 + a)]) * X).sum(axis=1)
                      for a in range(K)], axis=1)
    own = np.stack([((X @ M[d * (1 + a):d * (2 + a), d * (1 + a):d * (2 + a)]) * X)
                    .sum(axis=1) for a in range(K)], axis=1)
    return np.maximum(shared + 2 * s * cross + s * s * own, 0.0)
