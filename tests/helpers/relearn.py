"""A model re-learned from the log alone, and the check that two engines hold the same model."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from engine_helpers import Clock

from bandit import Engine


def relearned(data_dir: Path, config) -> Engine:
    """An engine on a copy of ``data_dir``'s log without its snapshots: the model re-learned
    from the log alone."""
    copy = data_dir.parent / f"{data_dir.name}-relearned"
    copy.mkdir()
    src = sqlite3.connect(data_dir / "events.sqlite3")
    dst = sqlite3.connect(copy / "events.sqlite3")
    src.backup(dst)
    src.close()
    dst.close()
    return Engine.open(config, copy, clock=Clock(2e9))


def assert_same_model(engine: Engine, other: Engine) -> None:
    """Every placement's model of ``engine`` equals ``other``'s (which is closed after)."""
    engine.flush()
    other.flush()
    assert list(engine.keepers) == list(other.keepers)
    for placement in engine.keepers:
        assert_same_policy(engine.keepers[placement].learner.policy,
                           other.keepers[placement].learner.policy, placement)
    assert engine.update_count == other.update_count
    other.close()


def assert_same_policy(policy, other, what: str = "") -> None:
    mine, theirs = policy.get_state(), other.get_state()
    assert sorted(mine) == sorted(theirs)
    for key in mine:  # floats: counts of rank-1 steps since a refactorization are bookkeeping
        if key.startswith("policy.") and mine[key].dtype.kind == "f":
            np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-9, atol=1e-8,
                                       err_msg=f"{what} {key}")
