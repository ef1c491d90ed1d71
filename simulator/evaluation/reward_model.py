"""Cross-fitted reward models for DM and DR: q_hat[i, k] never comes from a model fit on row i.

The default model is a per-action ridge regression on the context features, solved in closed
form with the same stacked statistics the linear policies use. Any scikit-learn-style regressor
(an object with ``fit(X, y)`` and ``predict(X)``) can be plugged in with ``model=`` (a factory).

>>> import numpy as np
>>> X = np.column_stack([np.ones(200), np.arange(200) % 2])
>>> a = np.arange(200) % 3
>>> q = cross_fit(X, a, X[:, 1] * (a + 1), n_actions=3, lam=1e-6)
>>> np.round(q[1], 2).tolist()
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

import numpy as np

from policies._ridge import RidgeStack


class FoldStream:
    """Cross-fitting folds for rows read in order, in chunks of any size: each run of
    ``folds`` consecutive rows is a seeded permutation of the folds, so every prefix of the
    log is balanced (with at least ``folds`` rows, no fold is empty) and the folds do not
    depend on how the log was cut into chunks.

    >>> a, b = FoldStream(2, seed=0), FoldStream(2, seed=0)
    >>> whole = a.take(7)
    >>> bool((whole == np.concatenate([b.take(3), b.take(4)])).all())
    True
    >>> np.bincount(whole).tolist()  # 3 whole runs and one row of the fourth
    [3, 4]
    """

    def __init__(self, folds: int, seed: int = 0):
        self.folds = folds
        self._rng = np.random.default_rng(seed)
        self._ahead = np.zeros(0, dtype=np.intp)

    def take(self, n: int) -> np.ndarray:
        """The folds of the next ``n`` rows."""
        block = np.tile(np.arange(self.folds), (1024, 1))
        missing = -(-(n - len(self._ahead)) // block.size)
        if missing > 0:  # blocks of a fixed size: the same stream however rows are asked for
            self._ahead = np.concatenate([self._ahead] + [
                self._rng.permuted(block, axis=1).ravel() for _ in range(missing)])
        out, self._ahead = self._ahead[:n], self._ahead[n:]
        return out


class CrossFitRidge:
    """The per-action ridge reward model, cross-fitted over a log read in chunks: every row
    read with :meth:`fit` goes into each fold's model except its own, and a second read of
    the same rows in the same order with :meth:`predict` scores each row with the model
    that never saw it. Memory is ``folds * K * d * d`` numbers, whatever the log's length."""

    def __init__(self, n_actions: int, dim: int, *, folds: int = 2, seed: int = 0,
                 lam: float = 1.0):
        if folds < 2:
            raise ValueError(f"the reward model is cross-fitted in folds >= 2, got {folds}")
        self.n_actions, self.folds, self.seed, self.rows = n_actions, folds, seed, 0
        self.models = [RidgeStack(n_actions, dim, lam) for _ in range(folds)]  # f: all but f
        self._fit_folds, self._predict_folds = FoldStream(folds, seed), FoldStream(folds, seed)

    def fit(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn the next chunk of rows (in log order)."""
        fold = self._fit_folds.take(len(X))
        for f, model in enumerate(self.models):
            rows = fold != f
            model.update(X[rows], actions[rows], rewards[rows])
        self.rows += len(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, K) predictions for the next chunk of the second read."""
        if self.rows < self.folds:
            raise ValueError(f"the reward model is cross-fitted in {self.folds} folds, so it "
                             f"needs at least {self.folds} rows; got {self.rows} (a log this "
                             "short estimates nothing: replay more decisions)")
        fold = self._predict_folds.take(len(X))
        q = np.empty((len(X), self.n_actions))
        for f, model in enumerate(self.models):
            q[fold == f] = model.means(X[fold == f])
        return q


def cross_fit(X: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_actions: int, *,
              folds: int = 2, seed: int = 0, lam: float = 1.0, model=None) -> np.ndarray:
    """(n, K) reward predictions, each row predicted by models fit on the other folds
    (:class:`FoldStream`'s folds)."""
    n = len(X)
    if folds < 2 or n < folds:
        raise ValueError(f"the reward model is cross-fitted in {folds} folds (folds >= 2), "
                         f"so it needs at least {max(folds, 2)} rows; got {n} (a log this "
                         "short estimates nothing: replay more decisions)")
    if model is None:
        ridge = CrossFitRidge(n_actions, X.shape[1], folds=folds, seed=seed, lam=lam)
        ridge.fit(X, actions, rewards)
        return ridge.predict(X)
    fold = FoldStream(folds, seed).take(n)
    q = np.empty((n, n_actions))
    for f in range(folds):
        test, train = fold == f, fold != f
        for k in range(n_actions):
            rows = train & (actions == k)
            if rows.sum() < 2:
                q[test, k] = rewards[train].mean()
                continue
            m = model()
            m.fit(X[rows], rewards[rows])
            q[test, k] = m.predict(X[test])
    return q
