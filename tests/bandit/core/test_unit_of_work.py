"""The unit of work: a request group's parts restored on rollback, durable on commit."""

from __future__ import annotations

import numpy as np
import pytest

import policies
from bandit.core.unit_of_work import PolicyDraws, Staged, UnitOfWork
from bandit.domain.errors import StorageError


class Counter:
    """A part whose state is one number."""

    def __init__(self):
        self.n, self.restored = 0, []

    def checkpoint(self):
        return self.n

    def restore(self, token):
        self.restored.append(token)
        if token is not None:
            self.n = token


class Storage:
    def __init__(self, fail_commit=None):
        self.fail_commit, self.commits, self.rollbacks = fail_commit, 0, 0

    def commit(self):
        if self.fail_commit is not None:
            raise self.fail_commit
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1


def test_a_rollback_restores_the_state_at_the_groups_first_write():
    part, staged = Counter(), Staged()
    work = UnitOfWork(Storage(), [part, staged])
    work.begin()
    part.n = 5
    work.begin()  # a later write of the same group: the checkpoint stays the first one
    part.n = 9
    staged.append("spend")
    work.rollback()
    assert part.n == 0 and staged == [] and not work.open
    assert work.storage.rollbacks == 1 and work.group_id == 1


def test_a_rollback_without_a_group_drops_staged_work_only():
    part, staged = Counter(), Staged(["left over"])
    part.n = 3
    work = UnitOfWork(Storage(), [part, staged])
    work.rollback()
    assert part.n == 3 and part.restored == [None] and staged == []


def test_a_commit_keeps_the_state_and_counts_the_group():
    part = Counter()
    work = UnitOfWork(Storage(), [part])
    work.begin()
    part.n = 4
    work.commit()
    assert part.n == 4 and not work.open and work.group_id == 1 and work.storage.commits == 1
    work.rollback()  # nothing open: the committed state stays
    assert part.n == 4


def test_a_failed_commit_rolls_back_marks_degraded_and_raises():
    part = Counter()
    work = UnitOfWork(Storage(fail_commit=StorageError("disk full")), [part])
    work.begin()
    part.n = 7
    with pytest.raises(StorageError):
        work.commit()
    assert part.n == 0 and work.degraded == "disk full" and work.group_id == 1
    work.storage.fail_commit = None
    work.begin()
    work.commit()
    assert work.degraded is None


def test_policy_draws_are_restored_only_for_the_same_policy():
    X, mask = np.ones((4, 3)), None

    class Model:
        policy = policies.make("uniform", n_actions=5, n_features=3, seed=1)

    model = Model()
    draws = PolicyDraws(lambda: model)
    token = draws.checkpoint()
    first = model.policy.act(X, mask)[0]
    draws.restore(token)
    assert (model.policy.act(X, mask)[0] == first).all()  # the same draws again
    token = draws.checkpoint()
    model.policy = policies.make("uniform", n_actions=5, n_features=3, seed=2)  # swapped
    state = model.policy.rng.bit_generator.state
    draws.restore(token)
    assert model.policy.rng.bit_generator.state == state
