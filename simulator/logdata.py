"""LoggedData: decisions as estimators read them, from the engine's store, files or a simulation.

>>> import numpy as np, simulator, policies
>>> world = simulator.make_world()
>>> logger = policies.make("uniform", n_actions=world.n_actions, n_features=world.space.dim)
>>> log = simulate_log(world, logger, 1000, seed=0)
>>> len(log), log.mask.shape, bool((log.propensities > 0).all())
(1000, (1000, 8), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bandit.reward import RewardClip

from .runner import Feedback, streams


@dataclass(frozen=True)
class LoggedData:
    """n logged decisions over K actions.

    ``propensities`` are the probabilities with which ``actions`` were drawn from the eligible
    set ``mask``; ``randomized`` is False for forced decisions (p = 1 by rule or holdout), which
    estimators leave out; ``contexts`` are the raw context dicts when known.
    """

    action_ids: tuple[str, ...]
    X: np.ndarray
    mask: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    randomized: np.ndarray
    ts: np.ndarray
    contexts: list | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.actions)

    def subset(self, rows) -> "LoggedData":
        """The logged decisions at ``rows`` (a boolean mask or indices)."""
        rows = np.asarray(rows)
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows
        return LoggedData(self.action_ids, self.X[idx], self.mask[idx], self.actions[idx],
                          self.propensities[idx], self.rewards[idx], self.randomized[idx],
                          self.ts[idx], None if self.contexts is None
                          else [self.contexts[i] for i in idx])

    def evaluable(self) -> "LoggedData":
        """Only randomized decisions: forced ones carry no information about other actions."""
        return self.subset(self.randomized)

    @property
    def logging_value(self) -> float:
        """The logger's own value: the mean observed reward."""
        return float(self.rewards.mean())


def simulate_log(world, logger, n: int, *, seed: int = 0, objective=None,
                 learn: bool = False, batch_size: int = 1000,
                 keep_contexts: bool = False) -> LoggedData:
    """Log ``n`` simulated visitors decided by ``logger`` (frozen unless ``learn``); with
    ``keep_contexts`` the raw context dicts are kept too (for writing the log to a file)."""
    visitor_rng, outcome_rng = streams(seed)
    objective = world._objective(objective)
    clip = RewardClip(objective.reward_clip)  # a learning logger learns as run() teaches
    parts, contexts = [], []
    for start in range(0, n, batch_size):
        batch = world.visitors(min(batch_size, n - start), visitor_rng, start=start)
        actions, props = logger.act(batch.X, batch.mask)
        out = world.outcomes(batch, actions, outcome_rng)
        rewards = world.rewards(out, objective)
        if learn:  # the bound the engine learns through; the log keeps the real rewards
            Feedback.of(batch, actions, clip(rewards, out.converted), props, out).teach(logger)
        parts.append((batch.X, batch.mask, actions, props, rewards))
        if keep_contexts:
            contexts.extend(batch.contexts)
    X, mask, actions, props, rewards = (np.concatenate(p) for p in zip(*parts))
    return LoggedData(tuple(world.actions), X, mask, actions, props, rewards,
                      props < 1.0, np.arange(n, dtype=float), contexts if keep_contexts else None)
