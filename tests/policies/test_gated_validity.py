"""The gate's error rate under continuous checking: a challenger that is truly no better is
promoted in no more than 1 - confidence of the runs, however often the bound is read.

The null shop: two actions with the same reward distribution (5% convert, order values
lognormal with mean ~60: rare, skewed rewards like a shop's), a third that is worse. The
champion always wants action 0 and the challenger action 1 (``fixed``, floored), so every
row's true advantage is exactly 0. Each run checks the bound after every batch of 100 rows
from ``min_rows`` on, 20,000 rows: 180 looks. A fixed-sample interval read that often is
crossed far more often than its level (the mutation the issue names); the confidence sequence
is not.
"""

from __future__ import annotations

import numpy as np
import pytest
from gate_null import RUNS, null_run
from parallel import map_seeds


def promotion_rate(anytime: bool) -> float:
    return float(np.mean(map_seeds(null_run, range(1000, 1000 + RUNS), [anytime] * RUNS)))


@pytest.mark.slow
def test_a_challenger_no_better_is_promoted_within_the_error_rate():
    # the two-sided sequence spends 2.5% a side: we accept up to 5% (1 - confidence) of runs;
    # at a true 2.5%, 200 runs exceed 10 promotions with probability below 0.1%
    rate = promotion_rate(anytime=True)
    assert rate <= 0.05, f"promoted in {rate:.1%} of {RUNS} null runs"


@pytest.mark.slow
def test_a_fixed_sample_interval_checked_every_batch_fails_that_bound():
    # the mutation: the same gate with the fixed-sample interval (policies.confidence.
    # fixed_radius) promotes a challenger that is no better far more often than 5%
    rate = promotion_rate(anytime=False)
    assert rate > 0.05, f"the fixed-sample interval promoted in only {rate:.1%} of runs"
