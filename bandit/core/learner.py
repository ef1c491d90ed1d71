"""The learning half of the engine: what the model has learned, staged per request group.

The engine decides and logs; a :class:`Learner` owns the policy and turns logged decisions and
closed events into updates. Learning is a function of the sequence of calls it receives (and
the policy's seed) only, never of wall-clock time or of how busy the machine is:

* Non-additive policies (forgetting ones, vw, profit's logistic model) learn a decision when
  it has closed *and every earlier decision has closed too*, in decision order: closings wait
  ("held") until the joiner's watermark passes them. Learning them as they close would teach
  a conversion (closed minutes after its decision) a whole attribution window before the
  non-conversions decided beside it (closed when the window ends): the model's recent rows
  would be conversions, and in the first window nothing else (docs/results/learning_order.md). The order is then a function of the log alone, so a
  restore re-learns the same sequence; snapshots record the held closings.
* Additive policies (linear, bts) learn each randomized decision at once with the default
  reward ("provisional" rows) and relabel it when it closes. Provisional rows are applied in
  mini-batches of :data:`PROVISIONAL_BATCH`, or when the injected clock says they are
  :data:`PROVISIONAL_MAX_AGE_S` old, and a relabel of a row still pending waits for it (a
  relabel that reached the ridge sums before its row would leave ``b`` with ``x r`` while
  ``A`` lacks ``x x'``): it is applied right after the row's batch. Snapshots record such
  waiting relabels (closing seq and learned reward), so a restore re-applies them after
  re-learning their rows.
* A deferred decision (a placement that waits for ``activate``) is never learned
  provisionally: nothing says it was shown until it is activated, and one never activated is
  never learned at all. Once activated and closed it is learned with one ``update`` of its
  final reward, additive policies included (for sums, the same end state as provisional then
  relabel).
* Everything a request group asks to learn is staged and applied only after its commit
  succeeded (:meth:`apply`); a failed commit discards it (:meth:`discard`), so the model never
  holds what the log does not.
* Rewards pass through :class:`~bandit.domain.objective.RewardClip` in ``closed.seq`` order, online and
  when re-learning alike.
* A model whose state turns non-finite is never used: :meth:`healthy` is checked after each
  apply, and the engine rebuilds the model from the last good snapshot and the log.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable

import numpy as np

from bandit.core.joiner import Closing
from bandit.domain.objective import RewardClip
from bandit.domain.records import unpack_notes

log = logging.getLogger("cartwheel.learner")
# provisional updates are applied in mini-batches of this many decisions or this age on the
# engine's clock, whichever comes first: a few milliseconds of delay in shrinking the
# exploration width is harmless, and a batched update costs a fraction of many single ones
PROVISIONAL_BATCH = 64
PROVISIONAL_MAX_AGE_S = 0.05


def outcomes(closings) -> dict[str, np.ndarray]:
    """The outcome keywords of ``update``/``relabel`` for closed events: what the visitor did
    and what the incentive cost (the parts of each reward, unclipped)."""
    return {"converted": np.array([c.converted for c in closings], dtype=bool),
            "order_values": np.array([c.order_value for c in closings], dtype=float),
            "costs": np.array([c.cost for c in closings], dtype=float)}


def not_converted(n: int) -> dict[str, np.ndarray]:
    """The outcome keywords of ``n`` provisional rows (learned before their outcome)."""
    return {"converted": np.zeros(n, dtype=bool), "order_values": np.zeros(n),
            "costs": np.zeros(n)}


def decision_notes(decisions, width: int) -> np.ndarray:
    """(n, width) notes of stored decisions; NaN rows for those without (decided before the
    gate, or by a gate of other policies): learned, not compared.

    >>> from types import SimpleNamespace as D
    >>> from bandit.domain.records import pack_notes
    >>> decision_notes([D(decision_notes=pack_notes([1, 1])), D(decision_notes=None)], 2)
    array([[ 1.,  1.],
           [nan, nan]])
    """
    out = np.full((len(decisions), width), np.nan)
    for i, d in enumerate(decisions):
        if d.decision_notes is not None:
            notes = unpack_notes(d.decision_notes)
            if len(notes) == width:
                out[i] = notes
    return out


def in_chunks(items: Iterable, size: int = 5000):
    """Consecutive lists of at most ``size`` items."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Learner:
    """The policy and where its learning stands in the log.

    Parameters
    ----------
    policy, action_ids
        The policy and the action id of each of its columns (retired ones included).
    space : FeatureSpace
        Encodes stored contexts for learning.
    default_reward : float
        What an event earns when its window closes without a conversion.
    reward_clip : float
        :class:`~bandit.domain.objective.RewardClip` multiple.
    fetch : callable, optional
        ``fetch(closing_seqs)`` reads closed events back from the log: a non-additive policy's
        held closings then wait as two numbers each (their seqs), not as rows in memory (about
        2 KB each: at 100 decisions a second and a day's window, most of a gigabyte); without
        it they are kept whole.
    """

    def __init__(self, policy, action_ids, space, default_reward: float, reward_clip: float,
                 *, last_learned_seq: int = 0, last_decision_seq: int = 0,
                 first_decision_seq: int = 0, clip_state: dict | None = None,
                 deferred: list | None = None, held: list | None = None,
                 fetch: Callable | None = None):
        self.policy, self.action_ids, self.space = policy, list(action_ids), space
        self.default = float(default_reward)
        self.clip = RewardClip(reward_clip)
        if clip_state is not None:
            self.clip.load(clip_state)
        # closed.seq of the last closing learned (or, non-additive, held to be learned)
        self.last_learned_seq = last_learned_seq
        self.last_decision_seq = last_decision_seq  # decisions.seq of the last applied row
        self.first_decision_seq = first_decision_seq  # decisions up to here predate the model
        self.provisional = policy.additive
        self.index = {a: i for i, a in enumerate(self.action_ids)}
        self._rows: list = []  # applied-pending provisional rows (x, action, p, mask)
        self._rows_seq = last_decision_seq  # seq of the newest pending row's decision
        self._rows_since: float | None = None  # clock time of the oldest pending row
        self._staged_rows: list = []
        self._staged_seq = 0
        self._staged_closings: list[Closing] = []
        # relabels of rows still pending: (decision, learned reward, closing seq)
        self._deferred: list = []
        self._restored_deferred = [(int(seq), float(r)) for seq, r in (deferred or [])]
        # non-additive: closings waiting for every earlier decision to close (release), a heap
        # of (decision seq, closing seq, the closing or None when ``fetch`` reads it back):
        # each commit releases from its top, however many wait
        self._held: list = []
        self._fetch = fetch
        self._restored_held = [int(seq) for seq in (held or [])]

    # ------------------------------------------------------------------ counts
    @property
    def model_version(self) -> int:
        """Changes applied to the model: learned rows plus relabeled ones (so it grows with
        every change and names one state; a re-learn of the same log reaches the same number)."""
        return self.policy.n_updates + self.policy.n_relabels

    @property
    def pending_rows(self) -> int:
        return len(self._rows)

    @property
    def held(self) -> int:
        """Closings a non-additive policy holds until every earlier decision has closed."""
        return len(self._held)

    # ------------------------------------------------------------------ staging
    def stage_decisions(self, rows: list, last_seq: int) -> None:
        """Provisional rows (x, action, p, mask) of decisions logged up to ``last_seq``."""
        if self.provisional:
            self._staged_rows.extend(rows)
            self._staged_seq = last_seq

    def stage_closings(self, closings: list[Closing]) -> None:
        self._staged_closings.extend(closings)

    def discard(self) -> None:
        """Forget what the failed group staged."""
        self._staged_rows, self._staged_seq, self._staged_closings = [], 0, []

    def apply(self, now: float, closed_through: int = 0) -> bool:
        """Learn what the committed group staged, in the order it happened (non-additive
        policies: the held closings of decisions up to ``closed_through``, the seq up to
        which every decision has closed); returns whether the model changed."""
        before = self.policy.n_updates
        if self._staged_seq:
            if self._staged_rows and self._rows_since is None:
                self._rows_since = now
            self._rows.extend(self._staged_rows)
            self._rows_seq = max(self._rows_seq, self._staged_seq)
            self._staged_rows, self._staged_seq = [], 0
        closings, self._staged_closings = self._staged_closings, []
        for chunk in in_chunks(closings):
            self.learn(chunk)
        if not self.provisional:
            self.release(closed_through)
        if self._rows and (len(self._rows) >= PROVISIONAL_BATCH
                           or now - self._rows_since >= PROVISIONAL_MAX_AGE_S):
            self.flush()
        elif not self._rows and self.provisional:
            self.last_decision_seq = max(self.last_decision_seq, self._rows_seq)
        return bool(closings) or self.policy.n_updates != before

    def flush(self) -> None:
        """Apply pending provisional rows now."""
        if self._rows:
            X, actions, probabilities, mask = map(np.array, zip(*self._rows))
            self._rows, self._rows_since = [], None
            self.policy.update(X, actions, np.full(len(X), self.default), probabilities, mask,
                               **not_converted(len(X)))
        if self.provisional:
            self.last_decision_seq = max(self.last_decision_seq, self._rows_seq)
        if self._deferred:
            closings, rewards = zip(*self._deferred)
            self._deferred = []
            self._relabel(list(closings), np.array(rewards))

    def _relabel(self, closings, rewards: np.ndarray) -> None:
        """Relabel the provisional rows of ``closings`` (anything with ``decision``,
        ``converted``, ``order_value`` and ``cost``) to ``rewards`` and their outcomes."""
        X, actions, propensities, mask = self.batch([c.decision for c in closings])
        self.policy.relabel(X, actions, np.full(len(closings), self.default), rewards,
                            propensities, mask, **outcomes(closings))

    # ------------------------------------------------------------------ learning
    def batch(self, decisions):
        """X, actions, propensities and mask (policy action space) of stored decisions."""
        n = len(decisions)
        X = self.space.transform([d.context for d in decisions])
        mask = np.zeros((n, len(self.action_ids)), dtype=bool)
        for row, d in enumerate(decisions):
            mask[row, [self.index[a] for a in d.eligible if a in self.index]] = True
        actions = np.array([self.index[d.action] for d in decisions])
        return X, actions, np.array([d.probability for d in decisions]), mask

    def learn_provisional(self, decisions) -> None:
        """Learn stored decisions with the default reward (re-learning the log)."""
        X, actions, propensities, mask = self.batch(decisions)
        self.policy.update(X, actions, np.full(len(X), self.default), propensities, mask,
                           **not_converted(len(X)))

    def learn(self, closings: list[Closing]) -> None:
        """Learn closed events (in closed.seq order): relabel provisional rewards, or hold
        them until their turn in decision order (``release``)."""
        self.last_learned_seq = closings[-1].seq
        # events decided before a fresh model started are not part of it
        closings = [c for c in closings if c.decision.seq > self.first_decision_seq]
        if not closings:
            return
        if not self.provisional:
            for c in closings:
                self._hold(c)
            return
        rewards = self.clip(np.array([c.reward for c in closings]),
                            np.array([c.converted for c in closings]))
        shown_late = [i for i, c in enumerate(closings) if c.decision.deferred]
        if shown_late:  # no provisional row to relabel: learned once, now
            self._update([closings[i] for i in shown_late], rewards[shown_late])
        now = []
        for i in np.flatnonzero(rewards != self.default):
            if closings[i].decision.deferred:
                continue
            if closings[i].decision.seq <= self.last_decision_seq:
                now.append(i)
            else:  # a relabel never reaches the sums before its own row: it waits
                self._deferred.append((closings[i], float(rewards[i])))
        if now:
            self._relabel([closings[i] for i in now], rewards[now])

    def _hold(self, c) -> None:
        heapq.heappush(self._held, (c.decision.seq, c.seq, None if self._fetch else c))

    def release(self, closed_through: int) -> int:
        """Learn the held closings of decisions up to ``closed_through`` (every decision up
        to it has closed), in decision order; returns how many. Rewards are clipped here, in
        that order, online and when re-learning alike."""
        ready = []
        while self._held and self._held[0][0] <= closed_through:
            ready.append(heapq.heappop(self._held))
        if self._fetch is not None:
            ready = self._fetch([seq for _, seq, _ in ready])
        else:
            ready = [c for _, _, c in ready]
        for chunk in in_chunks(ready):
            self._update(chunk, self.clip(np.array([c.reward for c in chunk]),
                                          np.array([c.converted for c in chunk])))
        return len(ready)

    def _update(self, closings, rewards: np.ndarray) -> None:
        """Learn ``closings`` with their (clipped) ``rewards`` in one update (with the notes
        a promotion gate made when it decided them)."""
        decisions = [c.decision for c in closings]
        X, actions, propensities, mask = self.batch(decisions)
        notes = {} if not self.policy.notes_width else {
            "decision_notes": decision_notes(decisions, self.policy.notes_width)}
        self.policy.update(X, actions, rewards, propensities, mask, **outcomes(closings),
                           **notes)

    def relearn(self, decisions: Callable, closings: Callable, upto_seq: int,
                closed_at: Callable = None, closed_through: int = 0,
                closed_upto: int = 0) -> None:
        """Feed the model what was logged after its snapshot: provisional rows of the
        learnable decisions after ``last_decision_seq`` (up to ``upto_seq``, the log's last),
        then the closings after ``last_learned_seq``. ``decisions(after_seq)`` and
        ``closings(after_seq)`` iterate the log; ``closed_at(seqs)`` gives the closed events
        whose relabels waited for their rows (or, non-additive, that were held) when the
        snapshot was taken; held closings up to ``closed_through`` are then learned.
        ``closed_upto``: the log's last closing, which every closing read stands for (an
        additive model's reader leaves out the expired ones, which change nothing)."""
        if self.provisional:
            for chunk in in_chunks(decisions(self.last_decision_seq)):
                self.learn_provisional(chunk)
            self.last_decision_seq = self._rows_seq = max(self.last_decision_seq, upto_seq)
        if self._restored_deferred:  # their rows are learned now
            seqs, rewards = zip(*self._restored_deferred)
            self._restored_deferred = []
            self._relabel(closed_at(list(seqs)), np.array(rewards))
        if self._restored_held:
            for c in closed_at(self._restored_held):
                self._hold(c)
            self._restored_held = []
        for chunk in in_chunks(closings(self.last_learned_seq)):
            self.learn(chunk)
        self.last_learned_seq = max(self.last_learned_seq, closed_upto)
        if not self.provisional:
            self.release(closed_through)

    # ------------------------------------------------------------------ health
    def healthy(self) -> bool:
        """Whether the model's state is finite (a policy that is not is never used)."""
        return self.policy.finite()

    def meta(self) -> dict:
        """Where learning stands, for the snapshot (pending provisional rows are not in the
        model: a restore re-learns them from the log)."""
        return {"last_learned_seq": self.last_learned_seq,
                "last_decision_seq": self.last_decision_seq,
                "first_decision_seq": self.first_decision_seq,
                "provisional": self.provisional, "reward_clip": self.clip.state(),
                "deferred_relabels": [[c.seq, r] for c, r in self._deferred],
                "held_closings": sorted(seq for _, seq, _ in self._held)}
