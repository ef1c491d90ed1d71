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
>>> engine.close().name.startswith("snapshot-")  # the final snapshot
True
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bandit.config.shop import ShopConfig, load_config
from bandit.core.decider import MAX_VISITOR_ID, Decider, new_event_ids  # noqa: F401 (re-exported)
from bandit.core.guardrails import Guardrails
from bandit.core.joiner import Closing, Joiner, learnable
from bandit.core.learner import Learner
from bandit.core.model import restore
from bandit.core.pacing import Pacer, PacingPrice
from bandit.domain.errors import CartwheelError, StorageError
from bandit.domain.outcomes import check_outcome
from bandit.store.datadir import DataDirLock
from bandit.store.events import SCHEMA_VERSION, EventStore
from bandit.store.migration import migrate
from bandit.store.snapshots import SnapshotWriter, write_snapshot

log = logging.getLogger("cartwheel.engine")
PROBE_BYTES = 32 * 1024  # the health check's write while degraded: a busy group's size


class Engine(Decider):
    """Decides, records outcomes, learns and persists. Use from one thread (or one event loop).

    Open it with :meth:`open`. ``decide`` and ``record_outcome`` commit before they return unless
    called with ``commit=False``, in which case the caller must call :meth:`commit` before it
    acknowledges anything (the HTTP server does this to share one commit between requests).

    The writes between two commits form a *request group*, and a group is all or nothing: when
    its commit fails (disk full, read-only store), the store rolls back and the engine's memory
    (counters, learning, spend, the policy's random state) is exactly as before the group, and
    :class:`~bandit.domain.errors.StorageError` tells the caller that nothing was acknowledged.
    Learning depends only on the sequence of calls, the seed and the injected ``clock``.
    """

    def __init__(self, config: ShopConfig, data_dir: Path, *, seed: int | None = None,
                 fresh: bool = False, clock: Callable[[], float] = time.time,
                 salt: str | None = None):
        self.config, self.data_dir, self.clock = config, Path(data_dir), clock
        self.seed, self._shared_salt = seed, salt
        self._lock = DataDirLock(self.data_dir)
        try:
            self._setup(config, fresh)
        except BaseException:  # a refused start must not keep the data dir locked
            store = getattr(self, "store", None)
            if store is not None:
                store.rollback()
                store.close()
            self._lock.release()
            raise

    def _setup(self, config: ShopConfig, fresh: bool) -> None:
        self.store = EventStore(self.data_dir / "events.sqlite3", config.storage.synchronous,
                                visitor_index=bool(config.caps), background_checkpoints=True)
        self.space = config.feature_space()
        self.salt = self._salt()
        if self.store.schema_version != SCHEMA_VERSION:
            migrate(self.store, self.space, self.salt)
        self._init_decider(config)
        self._snapshots = SnapshotWriter()
        self.guardrails = Guardrails(config, self.store)
        self.joiner = Joiner(self.store, config.attribution, config.objective, self.actions,
                             self._closed, on_cost=self._cost)
        self._group: dict | None = None  # engine state as it was before the open group
        #: grows at every commit and rollback: a writer that saw another number than the one
        #: committed had its write rolled back (the server fails it)
        self.group_id = 0
        #: why the store cannot write, while it cannot (the server's health check says so)
        self.degraded: str | None = None
        self._staged_costs: list[tuple[float, float]] = []
        self._build_model(fresh)
        self.decided_total = self.store.count("decisions")
        self._last_ts = self.store.last_decision_ts() or float("-inf")
        #: the budget's shadow price (None: no pacing), replayed from the log's spend
        self.pacer = Pacer.start(config, self.guardrails.spend, self.store, self._last_ts)

    @classmethod
    def open(cls, config: ShopConfig | str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None, **kwargs) -> "Engine":
        """Open an engine on ``config`` (a ShopConfig, a path, or None for the default shop).

        ``data_dir`` overrides the config's storage path. Keyword arguments: ``seed`` (policy
        RNG when starting without a snapshot), ``fresh`` (discard a snapshot that no longer fits
        instead of refusing to start), ``clock`` (seconds since the epoch, for tests),
        ``salt`` (the one the processes on a bus share; a store kept with another is refused).
        """
        if not isinstance(config, ShopConfig):
            config = load_config(config)
        return cls(config, Path(data_dir or config.storage.path), **kwargs)

    # ------------------------------------------------------------------ setup
    def _salt(self) -> bytes:
        if self.config.salt:
            return self.config.salt.encode()
        salt = self.store.get_meta("salt")
        if salt is not None and self._shared_salt not in (None, salt):
            raise CartwheelError(f"the event log in {self.data_dir} was written with another "
                                 "privacy salt than the shop's processes on the bus use")
        if salt is None:
            salt = self._shared_salt or secrets.token_hex(16)
            self.store.set_meta("salt", salt)
            self.store.commit()
        return salt.encode()

    def _build_model(self, fresh: bool = False, skip: int = 0) -> None:
        """The newest usable snapshot (``skip`` passes over newer ones) plus what the log
        holds after it: after a crash, and when a model turned non-finite."""
        restored = restore(self.config, self.space, self.store, self.snapshot_dir, self.seed,
                           fresh, skip)
        self.learner = Learner(
            restored.policy, restored.action_ids, self.space,
            self.config.attribution.default_reward, self.config.objective.reward_clip,
            last_learned_seq=restored.last_learned_seq,
            last_decision_seq=restored.last_decision_seq,
            first_decision_seq=restored.first_decision_seq, clip_state=restored.clip_state,
            deferred=restored.deferred, held=restored.held)
        self.learner.relearn(
            lambda after: (d for d in self.store.decisions(after) if learnable(d)),
            lambda after: (Closing(e.seq, e.decision, e.reward, e.converted, e.order_value,
                                   e.cost)
                           for e in self.store.closed_events(after, learned_only=True)),
            self.store.max_seq("decisions"), self.store.closed_at, self.joiner.closed_through)
        self._snapshot_at = ((self.policy.n_updates if restored.from_snapshot else 0),
                             self.clock())

    def _recover(self, why: str) -> None:
        """The model turned non-finite: rebuild it from an older snapshot and the log (from the
        log alone when no snapshot gives a finite model), and say so."""
        log.error("the model is not finite (%s); rebuilding it from the last good snapshot and "
                  "the event log", why)
        for skip in range(len(list(self.snapshot_dir.glob("snapshot-*.json"))) + 1):
            self._build_model(skip=skip)
            if self.learner.healthy():
                log.warning("model rebuilt (%d newer snapshots passed over)", skip)
                return
        for marker in self.snapshot_dir.glob("snapshot-*.json"):
            marker.rename(marker.with_suffix(".json.bad"))  # never loaded again
        self._build_model()
        if not self.learner.healthy():
            raise CartwheelError("the model is not finite even re-learned from the log alone; "
                                 "start with --fresh-model")

    # ------------------------------------------------------------------ properties
    @property
    def group_open(self) -> bool:
        """Whether a request group has begun writing and is not committed yet."""
        return self._group is not None

    @property
    def pacing_price(self) -> PacingPrice | None:
        """The incentive price deciders apply now (None without pacing)."""
        return None if self.pacer is None else self.pacer.current

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def open_events(self) -> int:
        """Decisions still waiting for a conversion or the end of their window."""
        return self.decided_total - self.joiner.closed_total

    @property
    def policy(self):
        """The model (the learner's: rebuilt with it after a crash or a non-finite state)."""
        return self.learner.policy

    @property
    def policy_actions(self) -> list[str]:
        """The action id of each of the policy's columns (retired actions included)."""
        return self.learner.action_ids

    @property
    def policy_index(self) -> dict[str, int]:
        """The policy's column of each action id."""
        return self.learner.index

    @property
    def model_version(self) -> int:
        """Changes applied to the model: learned rows plus relabeled ones (so it grows with
        every change and names one state; a re-learn of the same log reaches the same number)."""
        return self.policy.n_updates + self.policy.n_relabels

    @property
    def update_count(self) -> int:
        """Decisions learned: applied updates plus provisional ones waiting for the next batch."""
        return self.policy.n_updates + self.learner.pending_rows

    @property
    def last_learned_seq(self) -> int:
        return self.learner.last_learned_seq

    @property
    def provisional(self) -> bool:
        """Whether decisions are learned at once with the default reward (additive policies)."""
        return self.learner.provisional

    # ------------------------------------------------------------------ outcomes
    def record_outcome(self, event_id: str, converted: bool, order_value: float = 0.0,
                       outcome_id: str | None = None, *, now: float | None = None,
                       commit: bool = True) -> str:
        """Join an outcome to its decision: "recorded" or "duplicate" (see the joiner).

        ``outcome_id`` is stored as its keyed hash only (idempotency without the id)."""
        key = check_outcome(event_id, converted, order_value, outcome_id,
                            self.config.objective, self.salt)
        self.begin_group()
        try:
            status = self.joiner.outcome(event_id, converted, order_value, key,
                                         self.clock() if now is None else now)
        except StorageError as exc:
            self.rollback(exc)
            raise
        except CartwheelError:
            raise  # refused before anything was written: the group's other writes stand
        except Exception as exc:
            self.rollback(exc)
            raise
        if commit:
            self.commit()
        return status

    def expire(self, now: float | None = None, limit: int | None = None) -> int:
        """Close events whose attribution window passed (default reward), oldest first: all
        of them, or at most ``limit`` (the server closes them in slices between requests);
        returns how many."""
        self.begin_group()
        try:
            closed = self.joiner.expire(self.clock() if now is None else now, limit)
        except Exception as exc:
            self.rollback(exc)
            raise
        self.commit()
        return closed

    def _append(self, events, eligible, learn_rows) -> None:
        seq = self.store.add_decisions(events, eligible)
        # learned at commit, with the rest of the group (one batched update)
        self.learner.stage_decisions(learn_rows, seq)

    def append_decisions(self, events: list, eligible: list[tuple[str, ...]],
                         learn_rows: list) -> None:
        """Log decisions made elsewhere (a replica's, read from the bus by the trainer's
        :class:`~bandit.scaleout.ingest.Ingester`) in the open group, as :meth:`decide` would."""
        self._append(events, eligible, learn_rows)
        self.decided_total += len(events)

    def _closed(self, closings: list[Closing]) -> None:
        self.learner.stage_closings(closings)

    def _cost(self, ts: float, cost: float) -> None:
        self._staged_costs.append((ts, cost))

    # ------------------------------------------------------------------ request groups
    def begin_group(self) -> None:
        """Remember the engine's state before the first write of a group (for rollback)."""
        if self._group is None:
            self._group = {"decided": self.decided_total, "closed": self.joiner.closed_total,
                           "watermark": self.joiner._watermark, "last_ts": self._last_ts,
                           "rng": self.policy.rng.bit_generator.state}

    def rollback(self, cause: BaseException | None = None) -> None:
        """Drop the open group: the store's writes and everything the engine staged. A
        ``cause`` that is a :class:`StorageError` marks the engine degraded until a commit
        succeeds again."""
        if isinstance(cause, StorageError):
            self.degraded = str(cause)
        self.group_id += 1
        self.store.rollback()
        self.learner.discard()
        self._staged_costs = []
        group, self._group = self._group, None
        if group is not None:
            self.decided_total, self.joiner.closed_total = group["decided"], group["closed"]
            self.joiner._watermark, self._last_ts = group["watermark"], group["last_ts"]
            self.policy.rng.bit_generator.state = group["rng"]

    def commit(self) -> None:
        """Make the group's writes durable, then learn what it staged and snapshot if one is
        due. Raises :class:`StorageError` (after rolling the group back) when the store cannot
        commit."""
        try:
            self.store.commit()
        except Exception as exc:
            self.rollback(exc)
            raise
        self.group_id += 1
        self.degraded = None
        self._group = None
        for ts, cost in self._staged_costs:
            self.guardrails.spend.add(ts, cost)
        self._staged_costs = []
        if self.pacer is not None and self._last_ts > float("-inf"):
            self.pacer.advance(self._last_ts)  # what it reads is committed now
        now = self.clock()
        try:
            changed = self.learner.apply(now, self.joiner.closed_through)
            healthy = not changed or self.learner.healthy()
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            healthy, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = "non-finite state after an update"
        if not healthy:
            self._recover(why)
        self._maybe_snapshot(now)

    def _maybe_snapshot(self, now: float) -> None:
        updates, at = self._snapshot_at
        storage = self.config.storage
        n = self.policy.n_updates
        if (n - updates >= storage.snapshot_every_updates
                or (n > updates and now - at >= storage.snapshot_every_s)):
            # written on the snapshot thread: the caller goes on at once; while the last one is
            # still being written this one is skipped (learning is not touched either way)
            if not self._snapshots.busy and self._snapshots.submit(
                    self.snapshot_dir, *self.snapshot_contents()):
                self._snapshot_at = (n, now)

    def probe(self) -> bool:
        """While degraded: whether the store can write again (one committed write the size
        of a busy request group, so that "ok" means requests would be stored too)."""
        if self.degraded is None:
            return True
        if self.store.pending:
            # a request group has writes waiting: committing them here would acknowledge them
            # behind their requests' backs (they wait for their own commit, which will tell)
            return False
        self.begin_group()
        try:
            self.store.set_meta("write_probe", os.urandom(PROBE_BYTES // 2).hex())
            self.commit()
        except StorageError:
            return False
        return True

    def flush(self) -> None:
        """Commit pending writes and apply pending provisional updates now (before inspecting
        the model, for instance)."""
        self.commit()
        self.learner.flush()

    # ------------------------------------------------------------------ persistence
    def snapshot_contents(self) -> tuple[dict[str, np.ndarray], dict]:
        """A copy of the model's state and its metadata, consistent with the committed log
        (provisional rows not yet applied are re-learned from the log on restore)."""
        return self.policy.get_state(), {
            "store_schema_version": SCHEMA_VERSION, "config_hash": self.config.config_hash(),
            "schema_hash": self.config.schema_hash(), "policy_spec": self.policy.spec,
            "action_ids": list(self.policy_actions), "update_count": self.policy.n_updates,
            "model_version": self.model_version,
            **self.learner.meta()}

    def snapshot(self) -> Path:
        """Write an atomic snapshot of the model now (after committing pending writes) and
        return its path once it is on disk."""
        self.flush()
        self._snapshots.wait()
        path = write_snapshot(self.snapshot_dir, *self.snapshot_contents())
        self._snapshot_at = (self.policy.n_updates, self.clock())
        return path

    def close(self) -> Path | None:
        """Commit, snapshot and release the data directory; return the final snapshot's path.
        A store that cannot write any more is closed all the same, returning None (what it
        could not commit was never acknowledged)."""
        if not self._lock.held:
            return None
        try:
            final = self.snapshot()
        except (StorageError, OSError) as exc:
            log.error("closing without a final snapshot: %s", exc)
            self.rollback()
            final = None
        self._snapshots.close()
        self.store.close()
        self._lock.release()
        return final

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
