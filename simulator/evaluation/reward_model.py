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


def _ridge_predict(X_fit, a_fit, r_fit, X_pred, n_actions, lam):
    ridge = RidgeStack(n_actions, X_fit.shape[1], lam)
    ridge.update(X_fit, a_fit, r_fit)
    return ridge.means(X_pred)


def cross_fit(X: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_actions: int, *,
              folds: int = 2, seed: int = 0, lam: float = 1.0, model=None) -> np.ndarray:
    """(n, K) reward predictions, each row predicted by models fit on the other folds."""
    n = len(X)
    if folds < 2 or n < folds:
        raise ValueError(f"the reward model is cross-fitted in {folds} folds (folds >= 2), "
                         f"so it needs at least {max(folds, 2)} rows; got {n} (a log this "
                         "short estimates nothing: replay more decisions)")
    fold = np.random.default_rng(seed).permutation(n) % folds
    q = np.empty((n, n_actions))
    for f in range(folds):
        test, train = fold == f, fold != f
        if model is None:
            q[test] = _ridge_predict(X[train], actions[train], rewards[train], X[test],
                                     n_actions, lam)
            continue
        for k in range(n_actions):
            rows = train & (actions == k)
            if rows.sum() < 2:
                q[test, k] = rewards[train].mean()
                continue
            m = model()
            m.fit(X[rows], rewards[rows])
            q[test, k] = m.predict(X[test])
    return q
