"""Replay over a log read in chunks: every estimate is a running sum, and what it gives is
what one read of the whole log gives (simulator.evaluation.replay, estimators.RunningEstimate,
reward_model.CrossFitRidge)."""

from __future__ import annotations

import numpy as np
import pytest

import policies
import simulator
from bandit.domain.logged import LoggedData
from simulator.evaluation.estimators import METHODS, RunningEstimate, estimate
from simulator.evaluation.replay import replay
from simulator.evaluation.reward_model import CrossFitRidge, cross_fit
from simulator.worlds.simulated_log import simulate_log

WORLD = simulator.make_world()


def _rows(n, seed, offset):
    """A log whose rewards sit far from zero (offset): a running sum of squares that did not
    keep its numbers relative to a mean would lose digits here."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    p = rng.uniform(0.05, 1.0, n)
    target = rng.dirichlet(np.ones(3), n)
    q = offset + rng.normal(size=(n, 3))
    r = offset + rng.normal(size=n) * 3 + a
    return r, a, p, target, q


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("offset", [0.0, 1e7])
def test_a_running_estimate_over_chunks_equals_one_estimate_of_the_whole(method, offset):
    r, a, p, target, q = _rows(5000, 1, offset)
    whole = estimate(method, r, a, p, target, q_hat=q)
    running = RunningEstimate(method, n_actions=3)
    cuts = [0, 1, 17, 600, 2500, 4999, 5000]  # chunks of 1 row and of thousands
    for lo, hi in zip(cuts, cuts[1:]):
        running.add(r[lo:hi], a[lo:hi], p[lo:hi], target[lo:hi], q[lo:hi])
    got = running.result()
    half = whole.upper - whole.value
    # the value to 1e-12 of its size, the interval's half-width to 1e-7 of itself (the
    # expansion in sums is another order of the same arithmetic)
    assert got.value == pytest.approx(whole.value, rel=1e-12, abs=1e-12)
    assert got.upper - got.value == pytest.approx(half, rel=1e-7)
    assert (got.n, got.ess, got.max_weight) == (whole.n, pytest.approx(whole.ess),
                                                whole.max_weight)


def test_the_running_interval_is_the_sample_sd_of_the_influence_values():
    # written out for sndr (the most involved expansion): phi_i = d_i + c + w_i (e_i - c) / wbar
    r, a, p, target, q = _rows(3000, 2, 50.0)
    running = RunningEstimate("sndr", n_actions=3)
    running.add(r[:1000], a[:1000], p[:1000], target[:1000], q[:1000])
    running.add(r[1000:], a[1000:], p[1000:], target[1000:], q[1000:])
    rows = np.arange(3000)
    w, d, e = target[rows, a] / p, (target * q).sum(axis=1), r - q[rows, a]
    c = (w * e).sum() / w.sum()
    phi = d + c + w * (e - c) / w.mean()
    got = running.result(alpha=0.05)
    assert got.value == pytest.approx(phi.mean(), rel=1e-12)
    assert (got.upper - got.value) == pytest.approx(
        1.959963984540054 * phi.std(ddof=1) / np.sqrt(3000), rel=1e-7)


def test_the_cross_fitted_model_over_chunks_is_the_one_of_the_whole():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(3001), rng.normal(size=(3001, 2))])
    a = rng.integers(0, 3, 3001)
    r = X @ np.array([1.0, 2.0, -1.0]) + a + rng.normal(size=3001)
    whole = cross_fit(X, a, r, 3, seed=4)
    model = CrossFitRidge(3, 3, seed=4)
    cuts = [0, 7, 1000, 3001]
    for lo, hi in zip(cuts, cuts[1:]):
        model.fit(X[lo:hi], a[lo:hi], r[lo:hi])
    got = np.concatenate([model.predict(X[lo:hi]) for lo, hi in zip(cuts, cuts[1:])])
    np.testing.assert_allclose(got, whole, rtol=1e-9, atol=1e-9)
    # and no row is scored by a model that saw it: a row's own reward does not move its score
    moved = r.copy()
    moved[5] += 1000.0
    np.testing.assert_allclose(cross_fit(X, a, moved, 3, seed=4)[5], whole[5], atol=1e-9)
    assert not np.allclose(cross_fit(X, a, moved, 3, seed=4), whole)  # others' scores do move


def _log(n, logger, seed):
    policy = policies.make(logger, n_actions=WORLD.n_actions, n_features=WORLD.space.dim,
                           seed=seed)
    return simulate_log(WORLD, policy, n, seed=seed, objective="revenue", learn=True)


def _chunks(data, size):
    return [data.subset(np.arange(s, min(s + size, len(data))))
            for s in range(0, len(data), size)]


SPECS = ["uniform", "linucb", "fixed:action=discount_10"]


@pytest.mark.parametrize("logger", ["uniform", "linucb"])
def test_replay_over_chunks_gives_what_one_read_of_the_whole_log_gives(logger):
    data = _log(6000, logger, 5)
    whole = replay(data, SPECS, seed=2)
    chunked = replay(_chunks(data, 1500), SPECS, seed=2)
    assert [r.kind for r in chunked.results] == [r.kind for r in whole.results]
    assert chunked.results[1].kind == ("replay/li2011" if logger == "uniform"
                                       else "replay/snips")
    for got, one in zip(chunked.results, whole.results):
        assert got.value == pytest.approx(one.value, rel=1e-9), got.spec
        assert got.upper == pytest.approx(one.upper, rel=1e-9), got.spec
        assert got.n == one.n
    assert chunked.totals.decisions == whole.totals.decisions == 6000
    assert chunked.totals.logging_value == pytest.approx(data.evaluable().logging_value)


def test_a_log_uniform_at_first_and_not_later_is_replayed_weighted():
    # a shop that explored uniformly, then switched a learner on: the first chunks look like
    # Li et al.'s setting, the whole log is not
    explored, learned = _log(3000, "uniform", 6), _log(3000, "linucb", 7)
    data = LoggedData.concat([explored, learned])
    got = replay(_chunks(data, 1000), ["linucb"], seed=0).results[0]
    one = replay(data, ["linucb"], seed=0).results[0]
    assert got.kind == one.kind == "replay/snips"
    assert got.value == pytest.approx(one.value, rel=1e-9) and got.n == 6000


def test_a_log_without_a_randomized_decision_evaluates_nothing():
    from simulator.evaluation.replay import NothingToEvaluate

    data = _log(100, "uniform", 0)
    forced = data.subset(np.arange(100))
    forced = LoggedData(forced.action_ids, forced.X, forced.mask, forced.actions,
                        np.ones(100), forced.rewards, np.zeros(100, bool), forced.ts)
    with pytest.raises(NothingToEvaluate, match="no randomized decisions"):
        replay(_chunks(forced, 30), ["uniform"])


def test_a_one_shot_iterator_is_refused_before_anything_is_read():
    data = _log(300, "uniform", 0)
    with pytest.raises(TypeError, match="not a one-shot iterator"):
        replay(iter(_chunks(data, 100)), ["uniform"])
