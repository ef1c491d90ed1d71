"""Disjoint linear policies on stacked ridge statistics: ``egreedy``, ``linucb``, ``lints``.

Exploration widths are in reward units: they scale with the pooled residual standard deviation
the ridge statistics estimate (``noise`` overrides it), so the same defaults work for a
conversion objective (rewards 0/1) and a profit objective (rewards in currency units).
"""

from __future__ import annotations

import numpy as np

from ._ridge import RidgeStack
from .base import Policy
from .choice import argmax_frequencies, greedy, uniform_over, warm_up_then_greedy
from .registry import register


class LinearPolicy(Policy):
    """A policy with one ridge regression per action (``lam`` is the ridge penalty).

    ``halflife``: forget old evidence, a row's weight halving after this many more learned
    rows (None: never forget). For shops whose visitors' preferences shift; a forgetting policy
    is not ``additive`` (a reward learned earlier has faded since), so the online loop learns
    it when each event closes (in decision order: ``bandit.core.learner``).
    """

    additive = True
    PARAMS = {"lam": "ridge penalty (prior strength) per action",
              "noise": "reward noise sd for exploration widths (None: estimated from rewards)",
              "halflife": "forget: a learned row's weight halves after this many more rows "
                          "(None: never)"}

    def __init__(self, n_actions, n_features, *, lam: float = 1.0, noise: float | None = None,
                 halflife: float | None = None, **kw):
        super().__init__(n_actions, n_features, **kw)
        if noise is not None and noise <= 0:
            raise ValueError(f"{self.name}: noise must be > 0 or None (estimate), got {noise!r}")
        self.ridge = RidgeStack(n_actions, n_features, lam, halflife=halflife)
        self.noise = noise
        if halflife is not None:
            self.additive = False

    def noise_sd(self) -> float:
        return self.noise if self.noise is not None else self.ridge.noise_sd()

    def score_parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The greedy part of the score, ``x . theta_k``, split by feature (no bonus)."""
        X = np.asarray(X, dtype=float)
        return X[:, None, :] * self.ridge.theta[None, :, :], np.zeros((len(X), self.n_actions))

    def finite(self) -> bool:
        # what an overflow reaches first (reward sums, then the estimates); a damaged
        # inverse shows in the probabilities, which are checked on every decision
        r = self.ridge
        return bool(np.isfinite(r.theta).all() and np.isfinite(r.b).all()
                    and np.isfinite(r.rr).all())

    def _learn(self, X, actions, rewards, propensities, mask):
        self.ridge.update(X, actions, rewards)

    def _relabel(self, X, actions, old_rewards, new_rewards, propensities, mask):
        self.ridge.relabel(X, actions, old_rewards, new_rewards)

    def _state(self):
        return self.ridge.state()

    def _load_state(self, state):
        self.ridge.load(state)

    def _grow(self, n):
        self.ridge.grow(n)


@register("egreedy")
class EpsilonGreedy(LinearPolicy):
    """Greedy on the ridge predictions, uniform over eligible actions with probability epsilon."""

    PARAMS = {"epsilon": "share of decisions drawn uniformly over eligible actions"}
    # its only exploration is uniform: it keeps the earlier 1%-each floor (policies.base)
    floor_max, floor_budget = 0.01, 0.08

    def __init__(self, n_actions, n_features, *, epsilon: float = 0.05, **kw):
        super().__init__(n_actions, n_features, **kw)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"egreedy: epsilon must be in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)

    priceable = True

    def _preferences(self, X, mask, prices=0.0):
        return ((1 - self.epsilon) * greedy(self.ridge.means(X) - prices, mask)
                + self.epsilon * uniform_over(mask))


@register("linucb")
class LinUCB(LinearPolicy):
    """Disjoint LinUCB (Li et al. 2010): argmax of ``x.theta_k + alpha * sd * sqrt(x' A_k^-1 x)``.

    ``sd`` is the estimated reward noise, so ``alpha`` counts standard errors.

    ``warmup``: an eligible action that has learned fewer than this many rows is tried first
    (uniformly among such actions), as UCB1 plays every arm once before comparing bounds. While
    every action's bound is wide and about equally so, the argmax is decided by the means, so
    without it the action of a shop's *first* order wins every visitor (tried as a new user
    would: probability 0.93 after one conversion); two rows each make the widths tell the
    actions apart (10 did as well in a shop but cost 3-10 points of reward on the bake-off's
    small datasets). The rows are counted with forgetting, so an action nobody has seen for
    a long time is tried again.
    """

    PARAMS = {"alpha": "exploration: how many standard errors of optimism",
              "warmup": "rows each eligible action learns before the bounds compete "
                        "(tried first; 0: off)"}

    def __init__(self, n_actions, n_features, *, alpha: float = 1.0, warmup: int = 2, **kw):
        super().__init__(n_actions, n_features, **kw)
        if alpha < 0:
            raise ValueError(f"linucb: alpha must be >= 0, got {alpha!r}")
        if warmup < 0:
            raise ValueError(f"linucb: warmup must be >= 0 rows, got {warmup!r}")
        self.alpha, self.warmup = float(alpha), int(warmup)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """(n, K) upper confidence bounds."""
        return self.ridge.means(X) + self.alpha * self.noise_sd() * self.ridge.widths(X)

    def _warming(self) -> np.ndarray:
        """(K,) actions still in their warm-up."""
        return self.ridge.counts < self.warmup - 1e-9  # faded counts are not whole numbers

    priceable = True

    def _preferences(self, X, mask, prices=0.0):
        return warm_up_then_greedy(self._warming(), mask, lambda: self.scores(X) - prices,
                                   prices)

    def score_parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``x . theta_k`` by feature, and the optimism bonus as the part no feature owns
        (None during the warm-up, when the choice is not made by the scores)."""
        if self._warming().any():
            return None
        contributions, _ = super().score_parts(X)
        return contributions, self.alpha * self.noise_sd() * self.ridge.widths(np.asarray(X, float))

    def why_no_score_parts(self) -> str:
        if self._warming().any():
            return (f"warm-up: every action is tried on {self.warmup} visitors before the "
                    "scores compare")
        return super().why_no_score_parts()


@register("lints")
class LinTS(LinearPolicy):
    """Linear Thompson sampling (Agrawal & Goyal 2013) with Monte Carlo propensities.

    Per row, action k's sampled score is Gaussian with mean ``x.theta_k`` and sd
    ``v * noise * sqrt(x' A_k^-1 x)``, so drawing scores directly is exact and cheap. The
    probability of each action being the argmax is estimated from ``n_samples`` draws and
    ``act`` samples from that estimate, so the logged propensity is exactly the probability used
    (and within Monte Carlo error, about ``sqrt(p(1-p)/n_samples)``, of the true TS probability).

    ``v`` scales the posterior spread. The textbook ``v = 1`` over-explores on noisy shop
    rewards (profit per visitor has a standard deviation several times its mean); ``v = 0.25``
    is the default, in line with the common practice of shrinking the posterior (Chapelle & Li,
    2011). The simulation results page shows both (docs/results/simulate_200k.md).
    """

    exact_probabilities = False

    PARAMS = {"v": "posterior spread multiplier (1: textbook Thompson sampling)",
              "n_samples": "posterior draws per decision to estimate the logged probability"}

    def __init__(self, n_actions, n_features, *, v: float = 0.25, n_samples: int = 200, **kw):
        super().__init__(n_actions, n_features, **kw)
        if v <= 0 or n_samples < 1:
            raise ValueError("lints: v and n_samples must be positive")
        self.v, self.n_samples = float(v), int(n_samples)

    priceable = True

    def _preferences(self, X, mask, prices=0.0):
        mean = self.ridge.means(X) - prices
        sd = self.v * self.noise_sd() * self.ridge.widths(X)
        z = self.rng.standard_normal((len(X), self.n_samples, self.n_actions))
        return argmax_frequencies(
            np.where(mask[:, None, :], mean[:, None, :] + sd[:, None, :] * z, -np.inf))
