"""Shared fixtures: small random problems for the contract suite, a real redis-server, and
no server process left running after its test module."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

#: the most workers ``-n auto`` starts: the heaviest test files set the suite's length beyond
#: that, and each worker holds numpy, a server or a browser
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): the CPUs this process may really use, up to
    ``MAX_WORKERS``. A container held to 2 CPUs by a cgroup quota still sees every core of
    its host in its affinity mask (xdist's own count), and 64 workers on 2 CPUs would time
    out; ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    from parallel import usable_cpus  # tests/helpers

    return min(usable_cpus(), MAX_WORKERS)


@pytest.fixture(scope="module", autouse=True)
def no_server_outlives_its_module():
    """A test that fails before stopping its `cartwheel serve` process would leave it running
    after the suite: kill what is left when the module ends (after its module fixtures)."""
    yield
    helpers = sys.modules.get("server_helpers")
    if helpers is not None:
        left = helpers.stop_leftovers()
        if left:
            warnings.warn(f"killed {len(left)} server(s) no test stopped: {left}")


@pytest.fixture
def problem():
    """Contexts, a mask with some ineligible actions, and a reward signal (K=5, d=4)."""
    rng = np.random.default_rng(42)
    n, K, d = 300, 5, 4
    X = np.column_stack([np.ones(n), rng.normal(size=(n, d - 1))])
    mask = rng.random((n, K)) < 0.7
    mask[np.arange(n), rng.integers(0, K, n)] = True
    theta = rng.normal(size=(K, d))
    return X, mask, theta


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free port of 127.0.0.1 (tests/helpers/redis_helpers.py), stopped by
    its pid afterwards."""
    from redis_helpers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
