"""``cartwheel segments --log``: the policy learns the whole log in chunks, the tree is fitted
on a uniform sample of at most ``SAMPLE_ROWS`` rows (bandit.insight.segments_source)."""

from __future__ import annotations

import numpy as np
import pytest

import policies
import simulator
from bandit import load_config
from bandit.domain.logged import LoggedData
from bandit.insight.segments_source import trained_by_replay
from bandit.store.logread import read_log
from bandit.store.logwrite import write_log
from simulator.worlds.simulated_log import simulate_log

CONFIG = load_config()
WORLD = simulator.make_world()


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "log.jsonl"
    logger = policies.make("uniform", n_actions=WORLD.n_actions, n_features=WORLD.space.dim,
                           seed=0)
    write_log(simulate_log(WORLD, logger, 1000, seed=0, keep_contexts=True), path)
    data, _ = read_log(path, CONFIG)
    data = LoggedData(*(getattr(data, f) for f in ("action_ids", "X", "mask", "actions",
                                                   "propensities", "rewards", "randomized")),
                      np.arange(1000.0), data.contexts)  # ts: the row's place in the log
    return data, [data.subset(np.arange(s, s + 250)) for s in range(0, 1000, 250)]


def test_the_policy_learns_every_chunk_as_it_would_the_whole_log(log):
    whole, chunks = log
    one, _, _, _ = trained_by_replay(CONFIG, whole, seed=3)
    streamed, ids, sample, rows = trained_by_replay(CONFIG, chunks, seed=3, sample_rows=100)
    np.testing.assert_allclose(streamed.ridge.theta, one.ridge.theta, rtol=1e-9, atol=1e-12)
    assert ids == list(whole.action_ids) and rows == 1000
    # the sample: 100 distinct rows of the log, in log order, each with all its columns
    assert len(sample) == 100 and (np.diff(sample.ts) > 0).all()
    at = sample.ts.astype(int)
    np.testing.assert_array_equal(sample.X, whole.X[at])
    np.testing.assert_array_equal(sample.rewards, whole.rewards[at])
    assert sample.contexts == [whole.contexts[i] for i in at]
    # a log smaller than the sample is all of it
    assert len(trained_by_replay(CONFIG, chunks, seed=3, sample_rows=5000)[2]) == 1000


def test_every_row_is_as_likely_to_be_sampled_early_or_late_in_the_log(log):
    # 200 seeds, 100 of 1000 rows each: the rows from the first half are hypergeometric
    # (mean 50, sd 4.75 a seed), so their mean over 200 seeds has sd 0.34: within 1.5 of 50
    # (4.4 sd). A sampler that favoured the first or the last chunk would be ~12 off.
    _, chunks = log
    first_half = [int((trained_by_replay(CONFIG, chunks, seed=s, sample_rows=100, spec="uniform")
                       [2].ts < 500).sum()) for s in range(200)]
    assert abs(np.mean(first_half) - 50) < 1.5, np.mean(first_half)
    late = [int((trained_by_replay(CONFIG, chunks, seed=s, sample_rows=100, spec="uniform")
                 [2].ts >= 750).sum()) for s in range(50)]
    assert abs(np.mean(late) - 25) < 2.5, np.mean(late)  # the last chunk: 25 rows of 100
