"""Logged decisions -> value estimates for candidate policies.

* A policy that does not learn (``uniform``, ``fixed:...``, or a model loaded from a snapshot)
  is a fixed target: its action probabilities on the logged contexts go to an off-policy
  estimator (:func:`simulator.evaluation.estimators.estimate`, ``dr`` by default).
* A learning policy is replayed through the log in order, learning as it goes. On a uniformly
  logged log this is the replay method of Li et al. (2011): the policy draws an action, the
  event counts only when it matches the logged one, and only counted events are learned (with
  eligible sets of different sizes, a match is kept with probability k / K, K the number of
  actions, so the counted events stay a fair sample of the visitors; K rather than the
  largest k in the log, which is known only once the log has been read). On any
  other log it is importance-weighted: every event counts with weight pi_t(a|x) / p (pi_t being
  the policy as it was before that event), the value is self-normalized, and the policy learns
  from every logged event.

Forced decisions (not randomized) are left out: they say nothing about other actions.

The log is read in chunks (:func:`bandit.store.logread.iter_log`, or one
:class:`~bandit.domain.logged.LoggedData`), never whole: every estimate is a running sum
(:class:`~simulator.evaluation.estimators.RunningEstimate`), so memory does not grow with the
log. Fixed targets under dm, dr, sndr or switch-dr read it twice (the cross-fitted reward model
learns on the first read, scores on the second: :class:`~simulator.evaluation.reward_model.
CrossFitRidge`). Whether the log is uniform is known only when it has been read: a log that
starts uniform and later is not (a shop that explored, then switched a policy on) is read again
for its learning policies, importance-weighted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

import policies
from bandit.domain.logged import EmptyLogError, LoggedData
from bandit.domain.objective import RewardClip
from simulator.evaluation.estimators import MODEL_METHODS, RunningEstimate
from simulator.evaluation.reward_model import CrossFitRidge


@dataclass(frozen=True)
class ReplayResult:
    """One candidate's estimate."""

    spec: str
    kind: str
    value: float
    lower: float
    upper: float
    ess: float
    n: int


@dataclass
class LogTotals:
    """What a replay read: decisions, the randomized ones, and the logger's own value (the
    mean reward of the randomized decisions)."""

    decisions: int = 0
    randomized: int = 0
    reward_sum: float = 0.0

    @property
    def logging_value(self) -> float:
        return self.reward_sum / self.randomized if self.randomized else float("nan")


@dataclass
class Replay:
    """:func:`replay`'s answer: one result per candidate, in the order asked, and the totals."""

    results: list[ReplayResult]
    totals: LogTotals = field(default_factory=LogTotals)


def is_uniform(data: LoggedData) -> bool:
    """Whether every randomized decision was drawn uniformly from its eligible set."""
    return bool(np.allclose(data.propensities, 1.0 / data.mask.sum(axis=1), rtol=1e-6))


class NothingToEvaluate(EmptyLogError):
    """A log without a randomized decision (every one forced, refused or still open)."""


class _NotUniformAfterAll(Exception):
    """A log whose first chunk was uniform has a chunk that is not."""


class MatchedReplay:
    """Li et al. (2011) on a uniform log: the policy draws an action, a match is kept with
    probability k / K (k eligible actions of K: kept matches stay a fair sample of the
    visitors however the eligible sets vary), and only kept matches are learned and counted.
    The keep draws come from a generator of their own, one draw per row in log order."""

    kind = "replay/li2011"

    def __init__(self, policy, seed: int, clip: RewardClip):
        self.policy, self.clip = policy, clip
        self.keep_rng = np.random.default_rng(np.random.SeedSequence([policy.n_actions, seed]))
        self.n, self.shift, self.sum, self.squares = 0, None, 0.0, 0.0

    def add(self, data: LoggedData, batch_size: int) -> None:
        keep = self.keep_rng.random(len(data)) < data.mask.sum(axis=1) / data.mask.shape[1]
        for s in range(0, len(data), batch_size):
            rows = slice(s, s + batch_size)
            X, mask = data.X[rows], data.mask[rows]
            chosen, probs = self.policy.act(X, mask)
            hit = (chosen == data.actions[rows]) & keep[rows]
            if hit.any():
                r = data.rewards[rows][hit]
                self.policy.update(X[hit], chosen[hit], self.clip(r, r != 0), probs[hit],
                                   mask[hit])
                self.shift = float(r[0]) if self.shift is None else self.shift
                self.n += len(r)
                self.sum += float((r - self.shift).sum())
                self.squares += float(((r - self.shift) ** 2).sum())

    def result(self, spec: str, alpha: float) -> ReplayResult:
        if self.n < 2:
            raise ValueError(f"{spec}: too few matched events to replay ({self.n})")
        mean = self.sum / self.n
        sd = np.sqrt(max(self.squares - self.n * mean**2, 0.0) / (self.n - 1))
        half = stats.norm.ppf(1 - alpha / 2) * sd / np.sqrt(self.n)
        value = self.shift + mean
        return ReplayResult(spec, self.kind, value, value - half, value + half,
                            float(self.n), self.n)


class WeightedReplay:
    """Any other log: every event counts with weight pi_t(a|x) / p (the policy as it was
    before the event), the value is self-normalized (snips over those weights), and the
    policy learns from every logged event."""

    kind = "replay/snips"

    def __init__(self, policy, seed: int, clip: RewardClip):
        self.policy, self.clip = policy, clip
        self.estimate = RunningEstimate("snips", policy.n_actions)

    def add(self, data: LoggedData, batch_size: int) -> None:
        for s in range(0, len(data), batch_size):
            rows = slice(s, s + batch_size)
            X, mask, a = data.X[rows], data.mask[rows], data.actions[rows]
            p, r = data.propensities[rows], data.rewards[rows]
            self.estimate.add(r, a, p, self.policy.probabilities(X, mask))
            self.policy.update(X, a, self.clip(r, r != 0), p, mask)

    def result(self, spec: str, alpha: float) -> ReplayResult:
        e = self.estimate.result(alpha)
        return ReplayResult(spec, self.kind, e.value, e.lower, e.upper, e.ess, e.n)


class FixedTarget:
    """A policy that does not learn: its probabilities on each chunk go to a running
    estimator (the reward model's predictions too, on the second read of a model method)."""

    def __init__(self, policy, method: str):
        self.policy, self.method = policy, method
        self.estimate = RunningEstimate(method, policy.n_actions)

    def add(self, data: LoggedData, q_hat: np.ndarray | None) -> None:
        self.estimate.add(data.rewards, data.actions, data.propensities,
                          self.policy.probabilities(data.X, data.mask), q_hat)

    def result(self, spec: str, alpha: float) -> ReplayResult:
        e = self.estimate.result(alpha)
        return ReplayResult(spec, f"fixed/{self.method}", e.value, e.lower, e.upper, e.ess, e.n)


def replay(log, specs, *, method: str = "dr", alpha: float = 0.05, seed: int = 0,
           snapshots=(), action_features=None, objective=None, batch_size: int = 100,
           reward_clip: float = 3.0) -> Replay:
    """Estimate each spec's value (fixed or learning, see module docstring) on ``log``.

    Parameters
    ----------
    log : LoggedData or a re-iterable of LoggedData chunks
        Chunks in log order (an object whose every ``iter()`` reads the log again from its
        start, e.g. :class:`bandit.store.logread.LogChunks`), or a log read whole.
    snapshots
        (name, policy) pairs of already-trained policies, used as fixed targets.
    objective
        A ``policies.ObjectiveSpec``, for policies that read rewards' parts (``profit``: a log
        keeps the reward, which it reads back through the objective).
    batch_size, reward_clip
        Learning policies learn in batches of ``batch_size`` through
        :class:`bandit.domain.objective.RewardClip` as they would online (a nonzero reward
        counts as a conversion: logs carry rewards); estimates use the logged rewards as they
        are.
    """
    refuse_gates(specs)
    chunks = (log,) if isinstance(log, LoggedData) else log
    if iter(chunks) is chunks:  # a generator or iterator: it reads once, replay may read twice
        raise TypeError("replay reads the log again from its start (the reward model's "
                        "second read, or a log found not uniform): pass LogChunks(path, "
                        "config) or a list of chunks, not a one-shot iterator")
    try:
        return _replay(chunks, specs, method, alpha, seed, snapshots, action_features,
                       objective, batch_size, reward_clip, uniform=None)
    except _NotUniformAfterAll:
        return _replay(chunks, specs, method, alpha, seed, snapshots, action_features,
                       objective, batch_size, reward_clip, uniform=False)


def refuse_gates(specs) -> None:
    """Refuse a gate's spec (``gated(a | b)``), saying what to do instead."""
    for spec in specs:
        if policies.gate_members(spec) is not None:
            raise ValueError(
                f"{spec}: a gate cannot be replayed from a log: its comparison is made of its "
                "own assignment draws, which a log recorded under another policy does not "
                "hold. Replay its members one by one, or run the gate on a simulated shop "
                f"(cartwheel simulate --policies '{spec}')")


def evaluate(log, specs, **kw) -> list[ReplayResult]:
    """:func:`replay`'s results alone (one per spec, then one per snapshot)."""
    return replay(log, specs, **kw).results


def _replay(chunks, specs, method, alpha, seed, snapshots, action_features, objective,
            batch_size, reward_clip, uniform) -> Replay:
    totals, candidates, learners, fixed = LogTotals(), None, [], []
    model = None
    for chunk in chunks:
        totals.decisions += len(chunk)
        data = chunk.evaluable()
        if len(data) == 0:
            continue
        if candidates is None:  # the first randomized rows: the policies can be built
            uniform = is_uniform(data) if uniform is None else uniform
            walk = MatchedReplay if uniform else WeightedReplay
            candidates = []
            made = [policies.make(spec, n_actions=len(data.action_ids),
                                  n_features=data.X.shape[1], seed=seed,
                                  action_ids=data.action_ids, action_features=action_features,
                                  objective=objective) for spec in specs]
            for policy in made:
                if policy.learns:
                    learners.append(walk(policy, seed, RewardClip(reward_clip)))
                    candidates.append((policy.spec, learners[-1]))
                else:
                    fixed.append(FixedTarget(policy, method))
                    candidates.append((policy.spec, fixed[-1]))
            for name, policy in snapshots:  # trained already: fixed targets
                fixed.append(FixedTarget(policy, method))
                candidates.append((name, fixed[-1]))
            if fixed and method in MODEL_METHODS:
                model = CrossFitRidge(len(data.action_ids), data.X.shape[1], seed=seed)
        elif uniform and not is_uniform(data):
            raise _NotUniformAfterAll
        totals.randomized += len(data)
        totals.reward_sum += float(data.rewards.sum())
        for step in learners:
            step.add(data, batch_size)
        if model is not None:
            model.fit(data.X, data.actions, data.rewards)
        else:
            for step in fixed:
                step.add(data, None)
    if candidates is None:
        raise NothingToEvaluate("no randomized decisions in the log: nothing to evaluate on "
                                "(forced decisions say nothing about other actions)")
    if model is not None:  # the second read: each row scored by the model that never saw it
        for chunk in chunks:
            data = chunk.evaluable()
            if len(data):
                q_hat = model.predict(data.X)
                for step in fixed:
                    step.add(data, q_hat)
    return Replay([step.result(spec, alpha) for spec, step in candidates], totals)
