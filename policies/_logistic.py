"""A Bayesian logistic regression shared by all actions plus a per-action deviation, learned
in fixed blocks of rows by a Laplace (assumed-density) update.

The design is ``_pooled.PooledRidge``'s, ``z_a(x) = [x, scale * x e_a]``: one model of what
makes a visitor convert, learned from every decision, plus each action's own effect. The
posterior over the coefficients is kept Gaussian, ``N(m, H^-1)``, starting at ``N(0, I / lam)``.
A block of ``block`` rows ``(z_i, y_i)`` is learned by Newton steps to the mode of

    log N(theta; m, H^-1) + sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)],  p_i = sigmoid(z_i theta)

then ``m <- mode`` and ``H <- H + sum_i p_i (1 - p_i) z_i z_i'`` at the mode (Chapelle & Li
2011, "An empirical evaluation of Thompson sampling", Algorithm 3, with the full precision
matrix instead of its diagonal). One Cholesky factorization per Newton step and one inverse
per block: no per-row inverse, and rows wait in a buffer until a block is full, so the model
depends only on the sequence of rows, not on how they were split into calls (a restart
re-learning the log in other chunks gets the same model).

Forgetting (``halflife``): before a block, the precision fades toward the prior by
``keep ** block`` and row i of the block enters with weight ``keep ** (block - 1 - i)``, as
``_ridge.RidgeStack`` fades its sums.

>>> import numpy as np
>>> m = PooledLogistic(n_actions=2, dim=1, lam=1.0, scale=1.0, block=4)
>>> m.update(np.ones((4, 1)), np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 0.0, 0.0]))
>>> bool(m.logits(np.ones((1, 1)))[0, 0] > 0 > m.logits(np.ones((1, 1)))[0, 1])
True
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ._pooled import block_quadratic, pooled_design
from ._ridge import load_arrays, spd_inverse

#: Newton steps per block at most (from the previous mode about 4 reach the tolerance on the
#: default shop)
NEWTON_STEPS = 8


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class PooledLogistic:
    """Shared-plus-deviation logistic regression over K actions (module docstring)."""

    def __init__(self, n_actions: int, dim: int, lam: float = 1.0, scale: float = 1.0,
                 halflife: float | None = None, block: int = 100):
        if not lam > 0 or not scale > 0 or int(block) < 1:
            raise ValueError("pooled logistic: lam and scale must be > 0 and block >= 1")
        if halflife is not None and not halflife > 0:
            raise ValueError(f"pooled logistic: halflife must be > 0 rows or None, got "
                             f"{halflife!r}")
        self.n_actions, self.dim, self.scale = int(n_actions), int(dim), float(scale)
        self.lam, self.block, self.halflife = float(lam), int(block), halflife
        self.keep = 0.5 ** (1.0 / halflife) if halflife is not None else 1.0
        D = self.dim * (self.n_actions + 1)
        self.m = np.zeros(D)
        self.H = self.lam * np.eye(D)
        self.S = np.eye(D) / self.lam
        #: rows learned per action, buffered ones included (the warm-up reads them)
        self.counts = np.zeros(self.n_actions)
        self.pending_X = np.zeros((0, self.dim))
        self.pending_actions = np.zeros(0, dtype=np.intp)
        self.pending_y = np.zeros(0)
        self._upper = np.triu_indices(D, 1)

    ARRAYS = ("m", "H", "S", "counts", "pending_X", "pending_actions", "pending_y")

    def design(self, X: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return pooled_design(X, actions, self.n_actions, self.scale)

    def update(self, X: np.ndarray, actions: np.ndarray, y: np.ndarray) -> None:
        """Buffer rows (X[i], actions[i], y[i] in {0, 1}); learn every full block."""
        self.pending_X = np.concatenate([self.pending_X, X])
        self.pending_actions = np.concatenate([self.pending_actions, actions])
        self.pending_y = np.concatenate([self.pending_y, y])
        if self.keep < 1.0:  # counts fade like the evidence (as _pooled.PooledRidge's)
            self.counts *= self.keep ** len(actions)
            np.add.at(self.counts, actions, self.keep ** np.arange(len(actions) - 1, -1, -1.0))
        else:
            np.add.at(self.counts, actions, 1.0)
        B, done = self.block, 0
        while len(self.pending_y) - done >= B:
            rows = slice(done, done + B)
            self._learn_block(self.pending_X[rows], self.pending_actions[rows],
                              self.pending_y[rows])
            done += B
        if done:
            self.pending_X, self.pending_actions, self.pending_y = (
                self.pending_X[done:], self.pending_actions[done:], self.pending_y[done:])

    def _learn_block(self, X: np.ndarray, actions: np.ndarray, y: np.ndarray) -> None:
        Z, n = self.design(X, actions), len(y)
        H0, weights = self.H, np.ones(n)
        if self.keep < 1.0:
            fade = self.keep ** n
            H0 = fade * self.H + (1.0 - fade) * self.lam * np.eye(len(self.m))
            weights = self.keep ** np.arange(n - 1, -1, -1, dtype=float)
        theta = self.m.copy()
        for _ in range(NEWTON_STEPS):
            p = sigmoid(Z @ theta)
            grad = H0 @ (theta - self.m) - Z.T @ (weights * (y - p))
            hess = H0 + (Z * (weights * p * (1.0 - p))[:, None]).T @ Z
            step = cho_solve(cho_factor(hess, lower=True, check_finite=False), grad,
                             check_finite=False)
            theta -= step
            if np.abs(step).max() < 1e-12 * (1.0 + np.abs(theta).max()):
                break
        p = sigmoid(Z @ theta)
        self.H = H0 + (Z * (weights * p * (1.0 - p))[:, None]).T @ Z
        self.m = theta
        self._invert()

    def _invert(self) -> None:
        self.S = spd_inverse(self.H, self._upper, "logistic posterior precision is")

    def logits(self, X: np.ndarray) -> np.ndarray:
        """(n, K) posterior mean logits ``z_a(x) . m``."""
        d = self.dim
        shared = X @ self.m[:d]
        return shared[:, None] + self.scale * X @ self.m[d:].reshape(self.n_actions, d).T

    def logit_sds(self, X: np.ndarray) -> np.ndarray:
        """(n, K) posterior sd of each logit, ``sqrt(z_a' H^-1 z_a)``."""
        return np.sqrt(block_quadratic(X, self.S, self.n_actions, self.scale))

    def finite(self) -> bool:
        return bool(np.isfinite(self.m).all() and np.isfinite(self.H).all())

    def grow(self, n: int) -> None:
        """Append n actions: their deviation starts at the prior (the shared model)."""
        D = len(self.m)
        extra = n * self.dim
        H = self.lam * np.eye(D + extra)
        H[:D, :D] = self.H
        self.H, self.m = H, np.concatenate([self.m, np.zeros(extra)])
        self._upper = np.triu_indices(D + extra, 1)
        self.n_actions += n
        self.counts = np.concatenate([self.counts, np.zeros(n)])
        self._invert()

    def state(self) -> dict[str, np.ndarray]:
        return {f"logistic.{name}": getattr(self, name) for name in self.ARRAYS}

    def load(self, state: dict[str, np.ndarray]) -> None:
        load_arrays(self, state, "logistic", self.ARRAYS,
                    buffers=("pending_X", "pending_actions", "pending_y"))
