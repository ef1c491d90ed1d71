"""Simulated logs: a world's visitors decided by a logging policy, as :class:`LoggedData`.

>>> import numpy as np, simulator, policies
>>> world = simulator.make_world()
>>> logger = policies.make("uniform", n_actions=world.n_actions, n_features=world.space.dim)
>>> log = simulate_log(world, logger, 1000, seed=0)
>>> len(log), log.mask.shape, bool((log.propensities > 0).all())
(1000, (1000, 8), True)
"""

from __future__ import annotations

import numpy as np

from bandit.domain.logged import LoggedData
from bandit.domain.objective import RewardClip
from simulator.worlds.runner import Feedback, streams


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
