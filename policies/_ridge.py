"""Stacked per-action ridge statistics: the shared core of egreedy, linucb and lints.

For each action k we keep ``A_k = lam * I + sum x x^T``, ``b_k = sum r x``, ``rr_k = sum r^2``,
the count ``n_k`` and the derived ``theta_k = A_k^{-1} b_k`` and ``A_k^{-1}``, all stacked in
(K, d, d) / (K, d) arrays so scoring is one batched product over the stack. Updates are grouped
by action: up to ``RANK1_MAX_ROWS`` new rows for an action are Sherman-Morrison rank-1 steps
(O(d^2) each); more rows refresh it with one Cholesky factorization. Rank-1 steps accumulate
rounding, so an action is refreshed by Cholesky after ``refresh_every`` of them. No inverse is
ever formed per event.

>>> import numpy as np
>>> r = RidgeStack(n_actions=2, dim=2, lam=1.0)
>>> r.update(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([0, 0]), np.array([1.0, 2.0]))
>>> np.round(r.theta[0], 6).tolist()
[0.8, 0.6]
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotri

PRIOR_SD, PRIOR_N = 1.0, 2.0  # noise prior: worth two observations of unit variance
RANK1_MAX_ROWS = 3  # up to this many new rows for one action: rank-1 steps, else Cholesky


class RidgeStack:
    """Per-action ridge regression sufficient statistics, stacked over actions."""

    def __init__(self, n_actions: int, dim: int, lam: float = 1.0, refresh_every: int = 64,
                 halflife: float | None = None):
        if lam <= 0:
            raise ValueError(f"ridge lam must be > 0, got {lam!r}")
        if halflife is not None and not halflife > 0:
            raise ValueError(f"ridge halflife must be > 0 rows or None, got {halflife!r}")
        self.lam, self.dim, self.refresh_every = float(lam), int(dim), int(refresh_every)
        self.halflife = halflife
        # weight of a row after one more row was learned (after any action's row: forgetting
        # follows the shop's clock of decisions, so rarely shown actions age too)
        self.keep = 0.5 ** (1.0 / halflife) if halflife is not None else 1.0
        eye = np.eye(dim)
        self.A = np.repeat(lam * eye[None], n_actions, axis=0)
        self.A_inv = np.repeat(eye[None] / lam, n_actions, axis=0)
        self.b = np.zeros((n_actions, dim))
        self.theta = np.zeros((n_actions, dim))
        self.rr = np.zeros(n_actions)
        self.counts = np.zeros(n_actions)
        self.rank1_steps = np.zeros(n_actions, dtype=np.int64)
        self._upper = np.triu_indices(dim, 1)
        self._noise: float | None = None

    ARRAYS = ("A", "A_inv", "b", "theta", "rr", "counts", "rank1_steps")

    def update(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add rows (X[i], rewards[i]) to the statistics of actions[i]."""
        if self.keep < 1.0:
            self._learn_fading(X, actions, rewards)
            return
        if len(actions) == 1:  # the online path: one event at a time, skip the grouping
            groups = [(int(actions[0]), np.zeros(1, dtype=np.intp))]
        else:
            order = np.argsort(actions, kind="stable")
            acts, starts = np.unique(actions[order], return_index=True)
            groups = zip(acts, np.split(order, starts[1:]))
        for k, rows in groups:
            Xk, rk = X[rows], rewards[rows]
            self.A[k] += Xk.T @ Xk
            self.b[k] += Xk.T @ rk
            self.rr[k] += rk @ rk
            self.counts[k] += len(rows)
            if len(rows) <= RANK1_MAX_ROWS and self.rank1_steps[k] + len(rows) <= self.refresh_every:
                for x in Xk:  # a few rank-1 steps are cheaper than a factorization
                    self._rank1(k, x)
            else:
                self.refresh(k)
        self._noise = None

    def relabel(self, X: np.ndarray, actions: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Change the rewards of rows added earlier: only b, theta and sum r^2 move."""
        if len(actions) == 1:  # the online path: one conversion at a time
            k = int(actions[0])
            self.b[k] += (new[0] - old[0]) * X[0]
            self.rr[k] += new[0] ** 2 - old[0] ** 2
            touched = (k,)
        else:
            np.add.at(self.b, actions, (new - old)[:, None] * X)
            np.add.at(self.rr, actions, new**2 - old**2)
            touched = np.unique(actions)
        for k in touched:
            self.theta[k] = self.A_inv[k] @ self.b[k]
        self._noise = None

    def _learn_fading(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Forgetting: every row already learned fades by ``keep`` per row learned after it,
        so the i-th of n new rows enters with weight ``keep ** (n - 1 - i)``. The weights
        depend only on the order of rows, not on how they were split into calls, so
        re-learning a log in other chunks (crash recovery) gives the same statistics.

        ``A = lam I + D`` becomes ``lam I + w D`` (the prior does not fade), so every A_k is
        refactorized once per call: forgetting suits mini-batched updates.
        """
        n = len(actions)
        fade = self.keep ** n
        weights = self.keep ** np.arange(n - 1, -1, -1, dtype=float)
        self.A = fade * self.A + (1.0 - fade) * self.lam * np.eye(self.dim)[None]
        self.b *= fade
        self.rr *= fade
        self.counts *= fade
        Xw = X * weights[:, None]
        np.add.at(self.A, actions, Xw[:, :, None] * X[:, None, :])
        np.add.at(self.b, actions, Xw * rewards[:, None])
        np.add.at(self.rr, actions, weights * rewards**2)
        np.add.at(self.counts, actions, weights)
        for k in range(len(self.A)):
            self.refresh(k)
        self._noise = None

    def _rank1(self, k: int, x: np.ndarray) -> None:
        # Sherman-Morrison; A_k and b_k already include the row, so theta is A_inv b afterwards
        Ax = self.A_inv[k] @ x
        self.A_inv[k] -= np.outer(Ax, Ax) / (1.0 + x @ Ax)
        self.theta[k] = self.A_inv[k] @ self.b[k]
        self.rank1_steps[k] += 1

    def refresh(self, k: int) -> None:
        """Recompute A_k^{-1} and theta_k from A_k and b_k with one Cholesky factorization.

        """
        self.A_inv[k] = spd_inverse(self.A[k], self._upper,
                                    f"ridge statistics of action {k} are")
        self.theta[k] = self.A_inv[k] @ self.b[k]
        self.rank1_steps[k] = 0

    def reset(self, k: int, A: np.ndarray, b: np.ndarray) -> None:
        """Replace action k's ``A`` and ``b`` (the same rows' statistics re-expressed, e.g. at
        another prior) and refresh what derives from them."""
        self.A[k], self.b[k] = A, b
        self.refresh(k)
        self._noise = None

    def means(self, X: np.ndarray) -> np.ndarray:
        """(n, K) predicted rewards x . theta_k."""
        return X @ self.theta.T

    def widths(self, X: np.ndarray) -> np.ndarray:
        """(n, K) sqrt(x^T A_k^{-1} x): the confidence width of each prediction, per unit noise."""
        quad = (np.matmul(X, self.A_inv) * X).sum(axis=2)  # (K, n): batched, no einsum path search
        return np.sqrt(np.maximum(quad, 0.0)).T

    def noise_sd(self) -> float:
        """Pooled residual standard deviation, shrunk toward 1 while there are few rows.

        Uses ``sum r^2 - b . theta`` (the ridge residual plus penalty), so no rows are kept;
        cached until the next update (it is read on every decision).
        """
        if self._noise is None:
            rss = max(float(self.rr.sum() - np.vdot(self.b, self.theta)), 0.0)
            self._noise = float(np.sqrt((rss + PRIOR_N * PRIOR_SD**2)
                                        / (self.counts.sum() + PRIOR_N)))
        return self._noise

    def grow(self, n: int) -> None:
        """Append n fresh actions (prior statistics only)."""
        fresh = RidgeStack(n, self.dim, self.lam, self.refresh_every, self.halflife)
        for name in self.ARRAYS:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(fresh, name)]))
        self._noise = None

    def state(self) -> dict[str, np.ndarray]:
        return {f"ridge.{name}": getattr(self, name) for name in self.ARRAYS}

    def load(self, state: dict[str, np.ndarray]) -> None:
        load_arrays(self, state, "ridge", self.ARRAYS)
        self._noise = None


def load_arrays(model, state: dict[str, np.ndarray], prefix: str, names: tuple[str, ...],
                buffers: tuple[str, ...] = ()) -> None:
    """Set ``model``'s arrays ``names`` from ``state["<prefix>.<name>"]``, in their dtypes,
    refusing a shape other than the model's (a snapshot of another shop's features or
    actions); ``buffers`` may differ in length only (rows waiting for a block)."""
    for name in names:
        value, mine = np.asarray(state[f"{prefix}.{name}"]), getattr(model, name)
        if value.shape[1:] != mine.shape[1:] or (name not in buffers
                                                 and value.shape != mine.shape):
            raise ValueError(f"{prefix} state {name} has shape {value.shape}, expected "
                             f"{mine.shape}")
        setattr(model, name, value.astype(mine.dtype))


def spd_inverse(A: np.ndarray, upper: tuple, what: str) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix by one Cholesky factorization;
    ``upper`` is ``np.triu_indices(len(A), 1)`` (kept by the caller: it is reused), ``what``
    completes the error raised when A is not, "<what> not positive definite".

    LAPACK's potrf/potri directly: scipy's wrappers re-check finiteness and shapes the callers
    already guarantee, which costs more than the factorization at d ~ 40.

    >>> A = np.array([[2.0, 1.0], [1.0, 4.0]])
    >>> np.allclose(spd_inverse(A.copy(), np.triu_indices(2, 1), "A is") @ A, np.eye(2))
    True
    """
    L, info = dpotrf(A, lower=1, clean=0)
    if info == 0:
        inv, info = dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"{what} not positive definite")
    inv[upper] = inv.T[upper]  # potri fills the lower triangle only
    return inv
