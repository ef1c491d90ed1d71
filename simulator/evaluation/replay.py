"""Logged decisions -> value estimates for candidate policies.

* A policy that does not learn (``uniform``, ``fixed:...``, or a model loaded from a snapshot)
  is a fixed target: its action probabilities on the logged contexts go to an off-policy
  estimator (:func:`simulator.evaluation.estimators.estimate`, ``dr`` by default).
* A learning policy is replayed through the log in order, learning as it goes. On a uniformly
  logged log this is the replay method of Li et al. (2011): the policy draws an action, the
  event counts only when it matches the logged one, and only counted events are learned (with
  eligible sets of different sizes, a match is kept with probability k / k_max so the counted
  events stay a fair sample of the visitors). On any
  other log it is importance-weighted: every event counts with weight pi_t(a|x) / p (pi_t being
  the policy as it was before that event), the value is self-normalized, and the policy learns
  from every logged event.

Forced decisions (not randomized) are left out: they say nothing about other actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

import policies
from bandit.domain.logged import LoggedData
from bandit.domain.objective import RewardClip
from simulator.evaluation.estimators import estimate


@dataclass(frozen=True)
class ReplayResult:
    """One candidate's estimate."""

    spec: str
    kind: str
    value: float
    lower: float
    upper: float
    ess: float
    n: int


def _policy(spec: str, data: LoggedData, seed: int, action_features=None, objective=None):
    return policies.make(spec, n_actions=len(data.action_ids), n_features=data.X.shape[1],
                         seed=seed, action_ids=data.action_ids,
                         action_features=action_features, objective=objective)


def is_uniform(data: LoggedData) -> bool:
    """Whether every randomized decision was drawn uniformly from its eligible set."""
    return bool(np.allclose(data.propensities, 1.0 / data.mask.sum(axis=1), rtol=1e-6))


def evaluate_fixed(data: LoggedData, target: np.ndarray, spec: str, method: str = "dr",
                   alpha: float = 0.05, seed: int = 0) -> ReplayResult:
    e = estimate(method, data.rewards, data.actions, data.propensities, target, X=data.X,
                 alpha=alpha, seed=seed)
    return ReplayResult(spec, f"fixed/{method}", e.value, e.lower, e.upper, e.ess, e.n)


def replay_learning(data: LoggedData, policy, spec: str, alpha: float = 0.05,
                    batch_size: int = 100, reward_clip: float = 3.0) -> ReplayResult:
    """Replay a learning policy through the log (see module docstring). The policy learns
    through :class:`bandit.domain.objective.RewardClip` as it would online (a nonzero reward counts as a
    conversion: logs carry rewards); estimates use the logged rewards as they are."""
    z = stats.norm.ppf(1 - alpha / 2)
    clip = RewardClip(reward_clip)
    if is_uniform(data):
        # a match happens with probability 1/k (k eligible actions), so keeping a match with
        # probability k / k_max makes the kept events an unbiased sample of the visitors again
        # (Li et al. assume a constant k); the keep draws come from a generator of their own
        keep_rng = np.random.default_rng(np.random.SeedSequence([policy.n_actions, len(data)]))
        k = data.mask.sum(axis=1)
        keep = keep_rng.random(len(data)) < k / k.max()
        rewards = []
        for s in range(0, len(data), batch_size):
            rows = slice(s, s + batch_size)
            X, mask = data.X[rows], data.mask[rows]
            chosen, probs = policy.act(X, mask)
            hit = (chosen == data.actions[rows]) & keep[rows]
            if hit.any():
                r_hit = data.rewards[rows][hit]
                policy.update(X[hit], chosen[hit], clip(r_hit, r_hit != 0), probs[hit], mask[hit])
                rewards.append(data.rewards[rows][hit])
        r = np.concatenate(rewards) if rewards else np.zeros(0)
        if len(r) < 2:
            raise ValueError(f"{spec}: too few matched events to replay ({len(r)})")
        half = z * r.std(ddof=1) / np.sqrt(len(r))
        return ReplayResult(spec, "replay/li2011", float(r.mean()), float(r.mean() - half),
                            float(r.mean() + half), float(len(r)), len(r))
    weights = np.empty(len(data))
    for s in range(0, len(data), batch_size):
        rows = slice(s, s + batch_size)
        X, mask, a = data.X[rows], data.mask[rows], data.actions[rows]
        P = policy.probabilities(X, mask)
        weights[rows] = P[np.arange(len(a)), a] / data.propensities[rows]
        r_rows = data.rewards[rows]
        policy.update(X, a, clip(r_rows, r_rows != 0), data.propensities[rows], mask)
    r, w = data.rewards, weights
    value = float((w * r).sum() / w.sum())
    phi = w * (r - value) / w.mean()
    half = z * phi.std(ddof=1) / np.sqrt(len(r))
    return ReplayResult(spec, "replay/snips", value, value - half, value + half,
                        float(w.sum() ** 2 / (w**2).sum()), len(r))


def evaluate(data: LoggedData, specs, *, method: str = "dr", alpha: float = 0.05,
             seed: int = 0, snapshots=(), action_features=None,
             objective=None) -> list[ReplayResult]:
    """Estimate each spec's value (fixed or learning, see module docstring) on ``data``.

    ``snapshots`` are (name, policy) pairs of already-trained policies used as fixed targets;
    ``objective`` (a ``policies.ObjectiveSpec``) is for policies that read rewards' parts
    (``profit``: a log keeps the reward, which it reads back through the objective).
    """
    data = data.evaluable()
    results = []
    for spec in specs:
        policy = _policy(spec, data, seed, action_features, objective)
        if policy.learns:
            results.append(replay_learning(data, policy, policy.spec, alpha))
        else:
            results.append(evaluate_fixed(data, policy.probabilities(data.X, data.mask),
                                          policy.spec, method, alpha, seed))
    for name, policy in snapshots:
        results.append(evaluate_fixed(data, policy.probabilities(data.X, data.mask), name,
                                      method, alpha, seed))
    return results
