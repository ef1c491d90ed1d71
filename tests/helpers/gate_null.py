"""One run of the promotion gate on a shop where the challenger is no better
(``tests/policies/test_gated_validity.py``), importable by the spawned workers of
``parallel.map_seeds``."""

from __future__ import annotations

import numpy as np

import policies

RUNS, ROWS, BATCH = 200, 20_000, 100


def null_run(seed: int, anytime: bool) -> bool:
    """Whether the gate promoted the challenger in one run."""
    rng = np.random.default_rng(seed)
    gate = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2,
                          seed=seed, share=0.2, confidence=0.95, min_rows=2000,
                          anytime=anytime)
    rate = np.array([0.05, 0.05, 0.03])  # actions 0 and 1 alike
    for _ in range(ROWS // BATCH):
        X = np.column_stack([np.ones(BATCH), rng.normal(size=BATCH)])
        actions, p = gate.act(X)
        converted = rng.random(BATCH) < rate[actions]
        rewards = np.where(converted, rng.lognormal(3.9, 0.6, BATCH), 0.0)
        gate.update(X, actions, rewards, p)
        if gate.promotions:
            return True
    return False
