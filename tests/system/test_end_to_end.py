"""End to end: the engine driven by simulated visitors with delayed outcomes vs `simulate`."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop

import policies
import simulator
from bandit import Engine
from simulator.worlds.online import drive


@pytest.mark.slow
def test_engine_matches_simulate_within_5_points(tmp_path):
    # 50,000 visitors at 1 visitor/s, a one-hour attribution window, orders delayed as the
    # world says (median 20 minutes; ~20% arrive after the window and are refused with 409).
    # One seed's learning path is chaotic: engine minus simulate read +4.2, -6.9 and +3.8
    # points on seeds 0-2 at 50,000 (-6.2, -7.0 and +7.8 at 100,000), so the bound is on the
    # mean over three seeds: observed engine 0.273 vs simulate 0.270 at 50,000 (0.363 vs
    # 0.381 at 100,000, where the test ran until 2026-12-07 and took twice as long); the
    # acceptance bound is 5 points.
    world = simulator.make_world()
    online, offline = [], []
    for seed in range(3):
        policy = policies.make("linucb", n_actions=world.n_actions,
                               n_features=world.space.dim, seed=seed)
        offline.append(simulator.run(world, policy, visitors=50_000, seed=seed).captured_gain)
        engine = Engine.open(shop(holdout={"fraction": 0.0}, attribution={"window_s": 3600}),
                             tmp_path / str(seed), seed=seed, clock=Clock())
        result = drive(engine, world, visitors=50_000, rate=1.0, seed=seed)
        assert result.visitors == 50_000 and engine.model_version > 45_000
        # and the log holds exactly what happened
        assert engine.store.count("decisions") == 50_000
        engine.close()
        online.append(result.captured_gain)
    assert abs(np.mean(online) - np.mean(offline)) <= 0.05, (online, offline)


def test_drive_small_run_is_consistent(tmp_path):
    world = simulator.make_world()
    engine = Engine.open(shop(holdout={"fraction": 0.0}, attribution={"window_s": 600}),
                         tmp_path, seed=0, clock=Clock())
    result = drive(engine, world, visitors=2000, rate=2.0, seed=3)
    engine.expire(engine.clock() + 10_000)
    closed = engine.store.count("closed")
    assert closed == 2000
    converted = engine.store.db.execute("SELECT SUM(converted) FROM closed").fetchone()[0]
    # orders delivered before their window closed: at most the sampled conversions
    assert 0 < converted <= result.conversions[-1]
    assert np.isfinite(result.captured_gain)
