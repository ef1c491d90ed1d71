"""Off-policy estimates against the simulator's exact ground truth (seeded, slow).

Logs from a uniform logger and from a frozen, trained egreedy logger; targets are a trained
linucb's greedy policy and one fixed intervention; profit objective. Tolerances: the 95% intervals
of dr, snips and sndr cover the true value in 88-99% of 100 seeds at 50,000 visitors (binomial
sd of a 95% coverage over 100 seeds is 2.2 points), and their median relative error over 20
seeds is <= 5%. At 50,000 visitors that median is 5-7% depending on the seeds (profit per visitor
is mostly 0 with a rare large order, and no estimator averages that noise away faster than
1/sqrt(n)); the median of 20 is itself noisy, so the error bound is asserted at 200,000 visitors,
where the expected median is ~2.7% and a 5% failure would be a real bias, not bad luck.
``benchmarks/ope_accuracy.py`` prints the figures at any size. The seeds run on every core
(:class:`~simulator.worlds.groundtruth.SeedPool`: the same results as one process's).
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.worlds.groundtruth import SeedPool

N, N_ERROR, SEEDS = 50_000, 200_000, 100


@pytest.fixture(scope="module")
def setup():
    with SeedPool("default") as pool:
        yield pool


@pytest.mark.slow
def test_intervals_cover_the_true_value(setup):
    results = setup.run(N, range(SEEDS))
    coverage = {k: float(np.mean([c for _, c in v])) for k, v in results.items()}
    for key, value in coverage.items():
        assert 0.88 <= value <= 0.99, (key, coverage)


@pytest.mark.slow
def test_median_relative_error_at_most_5_percent(setup):
    results = setup.run(N_ERROR, range(1000, 1020))
    median = {k: float(np.median([e for e, _ in v])) for k, v in results.items()}
    for key, value in median.items():
        assert value <= 0.05, (key, median)


@pytest.mark.slow
def test_ips_dm_and_switch_dr_against_the_truth(setup):
    """20 seeds at 50,000 visitors. IPS is unbiased: its intervals cover the truth in >= 80% of
    seeds (3 binomial sd below 95% over 20 seeds) and the mean of its 20 estimates lies within
    3 standard errors of the truth (its spread is large on the egreedy log, whose weights reach
    27). Switch-DR equals DR where no weight exceeds its threshold (tau = 10; a uniform log over
    8 actions has weights <= 8), so it covers there too. DM's error is the reward model's bias:
    bounded (mean relative error within 15%; observed up to ~12%), but its interval, which
    counts only sampling noise, does not cover the truth (observed 3-13%), and where a logger
    makes weights exceed tau Switch-DR inherits that (observed 13-17% on the egreedy log): a
    known limit of model-based intervals, stated in the README."""
    results = setup.run(N, range(2000, 2020), methods=("ips", "dm", "switch-dr"),
                        signed=True)
    for (logger, target, method), values in results.items():
        errors, covered = map(np.array, zip(*values))
        coverage, bias = float(covered.mean()), float(errors.mean())
        if method == "ips" or (method == "switch-dr" and logger == "uniform"):
            assert coverage >= 0.8, (logger, target, method, coverage)
            se = errors.std(ddof=1) / np.sqrt(len(errors))
            assert abs(bias) <= 3 * se, (logger, target, method, bias, se)
        else:
            assert abs(bias) <= 0.15, (logger, target, method, bias)
