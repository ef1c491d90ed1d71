"""Run the independent seeds of a slow statistical test on every core (the suite itself runs
on one): each seed's result depends on its seed alone, so the results are the same as in
one process, in order."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may really use: its affinity mask, bounded by a cgroup CPU
    quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``): a container held to 2 CPUs on a 64-core
    host sees all 64 in its affinity mask."""
    cpus = len(os.sched_getaffinity(0))
    for quota_file, period_file in (("cpu.max", None),  # v2: "QUOTA PERIOD"
                                    ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            text = (cgroup / quota_file).read_text().split()
            if period_file is not None:
                text += (cgroup / period_file).read_text().split()
            quota, period = text[0], text[1]
        except (OSError, IndexError):
            continue
        if quota not in ("max", "-1"):
            cpus = min(cpus, max(1, int(quota) // int(period)))
    return max(1, cpus)


def map_seeds(fn, *iterables) -> list:
    """``[fn(*args) for args in zip(*iterables)]`` over ``min(2, cores)`` spawned processes
    (``fn`` importable by name: a module-level function of a helper module)."""
    workers = min(2, usable_cpus())
    # spawn: a forked child would inherit the parent's threads' locks
    with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, *iterables))


def engine_and_simulate(seed: int, data_dir: str, visitors: int) -> tuple[float, float]:
    """Captured gain of linucb on the default world: (driven through the engine with delayed
    outcomes, simulated by ``simulator.run``), one seed (``tests/system/test_end_to_end.py``)."""
    from pathlib import Path

    from engine_helpers import Clock, shop

    import policies
    import simulator
    from bandit import Engine
    from simulator.worlds.online import drive

    world = simulator.make_world()
    policy = policies.make("linucb", n_actions=world.n_actions, n_features=world.space.dim,
                           seed=seed)
    offline = simulator.run(world, policy, visitors=visitors, seed=seed).captured_gain
    engine = Engine.open(shop(holdout={"fraction": 0.0}, attribution={"window_s": 3600}),
                         Path(data_dir), seed=seed, clock=Clock())
    result = drive(engine, world, visitors=visitors, rate=1.0, seed=seed)
    assert result.visitors == visitors and engine.model_version > 0.9 * visitors
    # and the log holds exactly what happened
    assert engine.store.count("decisions") == visitors
    engine.close()
    return result.captured_gain, offline
