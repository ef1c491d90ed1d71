"""End to end: the engine driven by simulated visitors with delayed outcomes vs `simulate`."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop
from parallel import engine_and_simulate, map_seeds

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
    # the three seeds run on every core (parallel.map_seeds: each depends on its seed alone)
    pairs = map_seeds(engine_and_simulate, range(3), [str(tmp_path / str(s)) for s in range(3)],
                      [50_000] * 3)
    online, offline = zip(*pairs)
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
