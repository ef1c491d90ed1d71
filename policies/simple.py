"""Policies that do not learn from context: ``uniform``, ``fixed`` and ``bts``."""

from __future__ import annotations

import numpy as np

from .base import Policy
from .choice import argmax_frequencies, uniform_over
from .registry import register


@register("uniform")
class Uniform(Policy):
    """Every eligible action with equal probability: the logging policy OPE likes best."""

    learns = False

    def _preferences(self, X, mask):
        return uniform_over(mask)


@register("fixed")
class Fixed(Policy):
    """Always one action (plus the floor), e.g. the control or the best single intervention.

    Parameters
    ----------
    action : int or str
        Index of the action, or its id when the policy was given ``action_ids``. Rows where it
        is not eligible fall back to uniform over the eligible actions.
    """

    learns = False
    PARAMS = {"action": "the action id to show (required in CLI and config specs)"}

    def __init__(self, n_actions, n_features, *, action: int | str = 0, **kw):
        super().__init__(n_actions, n_features, **kw)
        if isinstance(action, str):
            if self.action_ids is None or action not in self.action_ids:
                raise ValueError(f"fixed: unknown action {action!r}; known: {self.action_ids}")
            action = self.action_ids.index(action)
        if not 0 <= int(action) < self.n_actions:
            raise ValueError(f"fixed: action must be in [0, {self.n_actions}), got {action}")
        self.action = int(action)

    def _preferences(self, X, mask):
        Q = uniform_over(mask)
        ok = mask[:, self.action]
        Q[ok] = 0.0
        Q[ok, self.action] = 1.0
        return Q


@register("bts")
class BernoulliTS(Policy):
    """Context-free Beta-Bernoulli Thompson sampling, the common production A/B-bandit baseline.

    Each action has a Beta(a, b) posterior. Rewards that are not 0/1 use the fractional
    Bernoulli update ``a += r/scale, b += 1 - r/scale`` with ``r/scale`` clipped to [0, 1]
    (Agrawal & Goyal's trick, without the extra coin flip); ``scale`` is ``reward_scale`` or, when
    that is None, the largest reward seen so far (``relabel`` is exact only with a fixed scale).
    Probabilities are estimated by Monte Carlo with ``n_samples`` posterior draws, and ``act``
    samples from that estimate, so the logged propensity is exactly the probability used.
    """

    exact_probabilities = False
    additive = True

    PARAMS = {"prior_a": "Beta prior successes per action",
              "prior_b": "Beta prior failures per action",
              "reward_scale": "reward that counts as one success (None: the largest seen)",
              "n_samples": "posterior draws per decision to estimate the logged probability"}

    def __init__(self, n_actions, n_features, *, prior_a: float = 1.0, prior_b: float = 1.0,
                 reward_scale: float | None = None, n_samples: int = 256, **kw):
        super().__init__(n_actions, n_features, **kw)
        if prior_a <= 0 or prior_b <= 0 or n_samples < 1:
            raise ValueError("bts: prior_a, prior_b and n_samples must be positive")
        if reward_scale is not None and reward_scale <= 0:
            raise ValueError("bts: reward_scale must be > 0")
        self.prior = (float(prior_a), float(prior_b))
        self.reward_scale, self.n_samples = reward_scale, int(n_samples)
        self.a = np.full(n_actions, float(prior_a))
        self.b = np.full(n_actions, float(prior_b))
        self.max_reward = np.zeros(1)

    def _preferences(self, X, mask):
        draws = self.rng.beta(self.a, self.b, size=(self.n_samples, self.n_actions))
        # one set of posterior draws serves every row: the model has no context
        return argmax_frequencies(np.where(mask[:, None, :], draws[None], -np.inf))

    def _success(self, rewards):
        self.max_reward[0] = max(self.max_reward[0], float(np.abs(rewards).max()))
        scale = self.reward_scale or self.max_reward[0] or 1.0
        return np.clip(rewards / scale, 0.0, 1.0)

    def _learn(self, X, actions, rewards, propensities, mask):
        s = self._success(rewards)
        np.add.at(self.a, actions, s)
        np.add.at(self.b, actions, 1.0 - s)

    def _relabel(self, X, actions, old_rewards, new_rewards, propensities, mask):
        # exact while the scale is fixed; with the running-max scale, old successes are
        # re-expressed on the current scale (an approximation that only matters early on)
        delta = self._success(new_rewards) - self._success(old_rewards)
        np.add.at(self.a, actions, delta)
        np.add.at(self.b, actions, -delta)

    def _state(self):
        return {"a": self.a, "b": self.b, "max_reward": self.max_reward}

    def _load_state(self, state):
        self.a, self.b = state["a"].astype(float), state["b"].astype(float)
        self.max_reward = state["max_reward"].astype(float)

    def _grow(self, n):
        self.a = np.concatenate([self.a, np.full(n, self.prior[0])])
        self.b = np.concatenate([self.b, np.full(n, self.prior[1])])
