"""How many workers the suite and its seed pools start (tests/helpers/parallel.py): a cgroup
CPU quota bounds them, not only the affinity mask a container shares with its host."""

from __future__ import annotations

import os

import pytest
from parallel import usable_cpus


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: 2 CPUs
    ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU: one worker, never none
    ({"cpu.max": "max 100000\n"}, None),  # no quota: the affinity mask
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),  # no cgroup files at all
])
def test_a_cpu_quota_bounds_the_workers(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    mask = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == (mask if expected is None else min(mask, expected))
