"""Engine: the in-process decision API that the HTTP server, the CLI and notebooks share.

>>> import tempfile
>>> engine = Engine.open(data_dir=tempfile.mkdtemp(), seed=0)
>>> d = engine.decide("visitor-1", {"device": "mobile", "cart_value": 35.0})
>>> d.action in engine.config.action_ids, 0 < d.probability <= 1
(True, True)
>>> engine.record_outcome(d.event_id, True, 42.0, outcome_id="order-1")
'recorded'
>>> engine.record_outcome(d.event_id, True, 42.0, outcome_id="order-1")
'duplicate'
>>> engine.close()
"""

from __future__ import annotations

import fcntl
import functools
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ShopConfig, load_config
from .errors import CartwheelError
from .guardrails import Guardrails
from .joiner import Closing, Joiner, learnable
from .model import restore
from .privacy import hash_visitor
from .snapshots import SnapshotWriter, write_snapshot
from .store import SCHEMA_VERSION, EventStore
from .types import Decision, LoggedEvent

MAX_VISITOR_ID = 256
# provisional updates are applied in mini-batches of this many decisions or this age, whichever
# comes first: a few milliseconds of delay in shrinking the exploration width is harmless,
# and a batched update costs a fraction of many single ones
PROVISIONAL_BATCH = 64
PROVISIONAL_MAX_AGE_S = 0.05


def new_event_ids(n: int) -> list[str]:
    """n ids of 32 hex digits: nanosecond time then 64 random bits, so ids sort by time and the
    unique index grows at its end instead of touching random pages (fewer pages per commit).
    One ``os.urandom`` call serves the whole batch."""
    stamp = f"{time.time_ns():016x}"
    noise = os.urandom(8 * n).hex()
    return [stamp + noise[16 * i:16 * (i + 1)] for i in range(n)]


def _in_chunks(learn, closings, size: int = 5000) -> None:
    """Call ``learn`` on consecutive lists of at most ``size`` closings."""
    batch: list = []
    for closing in closings:
        batch.append(closing)
        if len(batch) == size:
            learn(batch)
            batch = []
    if batch:
        learn(batch)


@dataclass(slots=True)
class _Batch:
    """The admitted requests of one ``decide_batch``, as parallel lists (one entry per row)."""

    rows: list[int] = field(default_factory=list)  # index of each row in the request list
    contexts: list[dict] = field(default_factory=list)
    X: list[list[float]] = field(default_factory=list)  # encoded contexts
    eligible: list[tuple[str, ...]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    chosen: list[tuple[str, float]] = field(default_factory=list)  # (action, probability)
    treated: list[bool] = field(default_factory=list)  # False: holdout


class Engine:
    """Decides, records outcomes, learns and persists. Use from one thread (or one event loop).

    Open it with :meth:`open`. ``decide`` and ``record_outcome`` commit before they return unless
    called with ``commit=False``, in which case the caller must call :meth:`commit` before it
    acknowledges anything (the HTTP server does this to share one commit between requests).
    """

    def __init__(self, config: ShopConfig, data_dir: Path, *, seed: int | None = None,
                 fresh: bool = False, clock: Callable[[], float] = time.time):
        self.config, self.data_dir, self.clock = config, Path(data_dir), clock
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.data_dir / "lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise CartwheelError(f"another cartwheel process is using {self.data_dir}; "
                                 "stop it or choose another --data-dir") from None
        self.store = EventStore(self.data_dir / "events.sqlite3", config.storage.synchronous,
                                visitor_index=bool(config.caps), background_checkpoints=True)
        self.space = config.feature_space()
        self.salt = self._salt()
        self.actions = {a.id: a for a in config.actions}
        self.action_ids = config.action_ids
        self._control = config.holdout.control
        self._snapshot_at = (0, clock())
        self._snapshots = SnapshotWriter()
        self._provisional_batch: list = []
        self._provisional_at = time.monotonic()
        restored = restore(config, self.space, self.store, self.snapshot_dir, seed, fresh)
        self.policy, self.policy_actions = restored.policy, restored.action_ids
        self.last_learned_seq = restored.last_learned_seq
        self.last_decision_seq = restored.last_decision_seq
        self.first_decision_seq = restored.first_decision_seq
        if restored.from_snapshot:
            self._snapshot_at = (self.policy.n_updates, clock())
        # additive policies learn each decision at once with the default reward and relabel it
        # when it closes: no positive-first bias from conversions arriving before non-conversions
        self.provisional = self.policy.additive
        self._policy_index = {a: i for i, a in enumerate(self.policy_actions)}
        self._action_index = {a: i for i, a in enumerate(self.action_ids)}
        self._config_mask = functools.lru_cache(maxsize=4096)(self._mask_of)
        self.guardrails = Guardrails(config, self.store)
        self.joiner = Joiner(self.store, config.attribution, config.objective, self.actions,
                             self._learn, on_cost=self.guardrails.spend.add)
        self._relearn()
        self.decided_total = self.store.count("decisions")
        self._last_ts = self.store.last_decision_ts() or float("-inf")

    @classmethod
    def open(cls, config: ShopConfig | str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None, **kwargs) -> "Engine":
        """Open an engine on ``config`` (a ShopConfig, a path, or None for the default shop).

        ``data_dir`` overrides the config's storage path. Keyword arguments: ``seed`` (policy
        RNG when starting without a snapshot), ``fresh`` (discard a snapshot that no longer fits
        instead of refusing to start), ``clock`` (seconds since the epoch, for tests).
        """
        if not isinstance(config, ShopConfig):
            config = load_config(config)
        return cls(config, Path(data_dir or config.storage.path), **kwargs)

    # ------------------------------------------------------------------ setup
    def _salt(self) -> bytes:
        if self.config.salt:
            return self.config.salt.encode()
        salt = self.store.get_meta("salt")
        if salt is None:
            salt = secrets.token_hex(16)
            self.store.set_meta("salt", salt)
            self.store.commit()
        return salt.encode()

    def _relearn(self) -> None:
        """Feed the model what was logged after its snapshot (crash recovery)."""
        if self.provisional:
            default = self.config.attribution.default_reward
            _in_chunks(self._learn_provisional, (Closing(d.seq, d, default) for d in
                                                 self.store.decisions(self.last_decision_seq)
                                                 if learnable(d)))
            self.last_decision_seq = self.store.max_seq("decisions")
        _in_chunks(self._learn, (Closing(e.seq, e.decision, e.reward) for e in
                                 self.store.closed_events(self.last_learned_seq,
                                                          learned_only=True)))

    # ------------------------------------------------------------------ properties
    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def open_events(self) -> int:
        """Decisions still waiting for a conversion or the end of their window."""
        return self.decided_total - self.joiner.closed_total

    @property
    def model_version(self) -> int:
        """Number of learning updates applied to the model (identifies its state)."""
        return self.policy.n_updates

    @property
    def update_count(self) -> int:
        """Decisions learned: applied updates plus provisional ones waiting for the next batch."""
        return self.policy.n_updates + len(self._provisional_batch)

    # ------------------------------------------------------------------ decide
    def eligibility(self, eligible: Sequence[str] | None) -> tuple[str, ...]:
        """Validated eligible action ids (all configured actions when None)."""
        if eligible is None:
            return self.action_ids
        if isinstance(eligible, str) or not isinstance(eligible, Sequence):
            raise CartwheelError("eligible must be a list of action ids", field="eligible")
        unknown = [a for a in eligible if a not in self.actions]
        if unknown:
            raise CartwheelError(f"unknown action {unknown[0]!r} in eligible; known: "
                                 f"{list(self.action_ids)}", field="eligible")
        if not eligible:
            raise CartwheelError("eligible is empty: list at least one action id",
                                 field="eligible")
        chosen = set(eligible)
        return tuple(a for a in self.action_ids if a in chosen)

    def in_holdout(self, visitor_hash: str) -> bool:
        """Sticky holdout assignment from the salted visitor hash."""
        return int(visitor_hash[:8], 16) / 2**32 < self.config.holdout.fraction

    def decide(self, visitor_id: str, context: dict, eligible: Sequence[str] | None = None, *,
               now: float | None = None, commit: bool = True) -> Decision:
        """Choose an intervention for one visitor and log it (committed before returning)."""
        result = self.decide_batch([(visitor_id, context, eligible)], now=now, commit=commit)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def decide_batch(self, requests: Sequence[tuple], *, now: float | None = None,
                     commit: bool = True) -> list[Decision | CartwheelError]:
        """Decide for many visitors at once: ``(visitor_id, context, eligible)`` per request.

        One policy call and one insert for the whole batch; a request that fails validation
        gets its error in its slot and does not disturb the others. The HTTP server batches
        the requests that arrive close together this way.
        """
        results: list = [None] * len(requests)
        batch = self._admit(requests, results)
        if batch.rows:
            ts = self.clock() if now is None else now
            self._choose(batch, ts)
            for i, e in zip(batch.rows, self._log(batch, ts)):
                results[i] = Decision(e.event_id, e.action, e.probability, e.group,
                                      e.model_version, e.randomized)
            if commit:
                self.commit()
        return results

    def _admit(self, requests: Sequence[tuple], results: list) -> "_Batch":
        """Validate and encode each request; a refused one gets its error in ``results``."""
        batch = _Batch()
        for i, (visitor_id, context, eligible) in enumerate(requests):
            try:
                if not isinstance(visitor_id, str) or not 0 < len(visitor_id) <= MAX_VISITOR_ID:
                    raise CartwheelError(f"visitor_id must be a non-empty string of at most "
                                         f"{MAX_VISITOR_ID} characters", field="visitor_id")
                x = self.space.encode_row(context)
                ids = self.eligibility(eligible)
            except CartwheelError as exc:
                results[i] = exc
                continue
            batch.rows.append(i)
            batch.contexts.append(context)
            batch.X.append(x)
            batch.eligible.append(ids)
            batch.hashes.append(hash_visitor(visitor_id, self.salt))
        return batch

    def _choose(self, batch: "_Batch", ts: float) -> None:
        """Fill ``batch.chosen``: the control for the holdout, forced actions where rules or
        guardrails force one, and one policy call for the rest (guardrails narrow eligible)."""
        batch.chosen = [(self._control, 1.0)] * len(batch.rows)
        batch.treated = [not self.in_holdout(h) for h in batch.hashes]
        learner_rows = [j for j, treated in enumerate(batch.treated) if treated]
        if self.guardrails.active and learner_rows:
            free = []
            for j, elig in zip(learner_rows, self.guardrails.eligibility(
                    [batch.hashes[j] for j in learner_rows],
                    [batch.contexts[j] for j in learner_rows],
                    [batch.eligible[j] for j in learner_rows], ts)):
                batch.eligible[j] = tuple(a for a, m in zip(self.action_ids, elig.mask) if m)
                if elig.forced is not None:
                    batch.chosen[j] = (elig.forced, 1.0)
                else:
                    free.append(j)
            learner_rows = free
        if not learner_rows:
            return
        X = np.array([batch.X[j] for j in learner_rows])
        mask = np.array([self._policy_mask(batch.eligible[j]) for j in learner_rows])
        actions, probs = self.policy.act(X, mask)
        for r, j in enumerate(learner_rows):
            action, p = int(actions[r]), float(probs[r])
            batch.chosen[j] = (self.policy_actions[action], p)
            if self.provisional and p < 1.0:
                # learned at commit, with the rest of the group (one batched update)
                self._provisional_batch.append((X[r], action, p, mask[r]))

    def _log(self, batch: "_Batch", ts: float) -> list[LoggedEvent]:
        """Append the batch's decisions to the store (one insert).

        Logged times never go back (a clock the OS steps back is held at the last time until
        it catches up): the log stays in time order, which expiry relies on.
        """
        ts = self._last_ts = max(ts, self._last_ts)
        version = self.model_version
        events = [LoggedEvent(
            event_id=event_id, visitor_hash=visitor_hash, context=dict(context),
            mask=self._config_mask(ids), action_index=self._action_index[action], action=action,
            probability=probability, group="treatment" if treated else "holdout",
            model_version=version, randomized=probability < 1.0, ts=ts)
            for event_id, visitor_hash, context, ids, (action, probability), treated in zip(
                new_event_ids(len(batch.rows)), batch.hashes, batch.contexts, batch.eligible,
                batch.chosen, batch.treated)]
        seq = self.store.add_decisions(events, batch.eligible)
        self.decided_total += len(events)
        if self.provisional:
            self.last_decision_seq = seq
        return events

    def _mask_of(self, eligible: tuple[str, ...]) -> tuple[bool, ...]:
        """Eligibility of every configured action (in config order); cached per eligible set
        as ``_config_mask`` (a shop has few distinct sets)."""
        chosen = set(eligible)
        return tuple(a in chosen for a in self.action_ids)

    def _policy_mask(self, eligible: tuple[str, ...]) -> list[bool]:
        """Eligibility over the policy's actions (which may include retired ones)."""
        row = [False] * len(self.policy_actions)
        for a in eligible:
            row[self._policy_index[a]] = True
        return row

    # ------------------------------------------------------------------ outcomes
    def record_outcome(self, event_id: str, converted: bool, order_value: float = 0.0,
                       outcome_id: str | None = None, *, now: float | None = None,
                       commit: bool = True) -> str:
        """Join an outcome to its decision: "recorded" or "duplicate" (see the joiner)."""
        if not isinstance(event_id, str) or not event_id:
            raise CartwheelError("event_id must be a non-empty string", field="event_id")
        if outcome_id is not None and (not isinstance(outcome_id, str) or not outcome_id):
            raise CartwheelError("outcome_id must be a non-empty string", field="outcome_id")
        status = self.joiner.outcome(event_id, converted, order_value, outcome_id,
                                     self.clock() if now is None else now)
        if commit:
            self.commit()
        return status

    def expire(self, now: float | None = None, limit: int | None = None) -> int:
        """Close events whose attribution window passed (default reward), oldest first: all
        of them, or at most ``limit`` (the server closes them in slices between requests);
        returns how many."""
        closed = self.joiner.expire(self.clock() if now is None else now, limit)
        self.commit()
        return closed

    def _batch(self, closings: list[Closing]):
        """X, actions, rewards, propensities and mask (policy action space) of closings."""
        n = len(closings)
        X = self.space.transform([c.decision.context for c in closings])
        mask = np.zeros((n, len(self.policy_actions)), dtype=bool)
        for row, c in enumerate(closings):
            mask[row, [self._policy_index[a] for a in c.decision.eligible
                       if a in self._policy_index]] = True
        actions = np.array([self._policy_index[c.decision.action] for c in closings])
        return (X, actions, np.array([c.reward for c in closings]),
                np.array([c.decision.probability for c in closings]), mask)

    def _learn_provisional(self, decisions: list[Closing]) -> None:
        X, actions, rewards, propensities, mask = self._batch(decisions)
        self.policy.update(X, actions, rewards, propensities, mask)

    def flush(self) -> None:
        """Commit pending writes and apply pending provisional updates now (before inspecting
        the model, for instance)."""
        self.store.commit()
        self._flush_provisional()

    def _flush_provisional(self) -> None:
        self._provisional_at = time.monotonic()
        if self._provisional_batch:
            X, actions, probabilities, mask = map(np.array, zip(*self._provisional_batch))
            self._provisional_batch = []
            self.policy.update(X, actions, np.full(len(X), self.config.attribution.default_reward),
                               probabilities, mask)

    def _learn(self, closings: list[Closing]) -> None:
        """Learn closed events: relabel provisional rewards, or learn them now.

        Relabels need not wait for pending provisional updates: both only add to the same sums.
        """
        self.last_learned_seq = closings[-1].seq
        # events decided before a fresh model started are not part of it
        closings = [c for c in closings if c.decision.seq > self.first_decision_seq]
        if not closings:
            return
        if self.provisional:
            default = self.config.attribution.default_reward
            closings = [c for c in closings if c.reward != default]
            if closings:
                X, actions, rewards, propensities, mask = self._batch(closings)
                self.policy.relabel(X, actions, np.full(len(closings), default), rewards,
                                    propensities, mask)
            return
        X, actions, rewards, propensities, mask = self._batch(closings)
        self.policy.update(X, actions, rewards, propensities, mask)

    # ------------------------------------------------------------------ persistence
    def commit(self) -> None:
        """Make pending writes durable (group commit), learn the group, snapshot if one is due."""
        self.store.commit()
        if (len(self._provisional_batch) >= PROVISIONAL_BATCH
                or time.monotonic() - self._provisional_at >= PROVISIONAL_MAX_AGE_S):
            self._flush_provisional()
        updates, at = self._snapshot_at
        storage = self.config.storage
        if (self.policy.n_updates - updates >= storage.snapshot_every_updates
                or (self.policy.n_updates > updates
                    and self.clock() - at >= storage.snapshot_every_s)):
            # written on the snapshot thread: the caller goes on at once
            if self._snapshots.submit(self.snapshot_dir, *self._snapshot_contents()):
                self._snapshot_at = (self.policy.n_updates, self.clock())

    def _snapshot_contents(self) -> tuple[dict[str, np.ndarray], dict]:
        """A copy of the model's state and its metadata, consistent with the committed log."""
        self.flush()
        return self.policy.get_state(), {
            "store_schema_version": SCHEMA_VERSION, "config_hash": self.config.config_hash(),
            "schema_hash": self.config.schema_hash(), "policy_spec": self.policy.spec,
            "action_ids": list(self.policy_actions), "update_count": self.policy.n_updates,
            "last_learned_seq": self.last_learned_seq, "last_decision_seq": self.last_decision_seq,
            "first_decision_seq": self.first_decision_seq,
            "provisional": self.provisional}

    def snapshot(self) -> Path:
        """Write an atomic snapshot of the model now (after committing pending writes) and
        return its path once it is on disk."""
        self._snapshots.wait()
        path = write_snapshot(self.snapshot_dir, *self._snapshot_contents())
        self._snapshot_at = (self.policy.n_updates, self.clock())
        return path

    def close(self) -> None:
        """Commit, snapshot and release the data directory."""
        if self._lock.closed:
            return
        self.snapshot()
        self._snapshots.close()
        self.store.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
