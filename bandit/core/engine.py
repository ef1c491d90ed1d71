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
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bandit.config.shop import ShopConfig, load_config
from bandit.core import retention
from bandit.core.decider import Decider, new_event_ids  # noqa: F401 (re-exported)
from bandit.core.guardrails import Guardrails
from bandit.core.joiner import Closing, Joiner
from bandit.core.pacing import Pacer, PacingPrice
from bandit.core.placement_models import PlacementModels
from bandit.core.unit_of_work import Staged, UnitOfWork
from bandit.domain.errors import CartwheelError, StorageError
from bandit.domain.outcomes import check_event_id, check_outcome, check_redeemed
from bandit.domain.privacy import check_visitor, hash_visitor
from bandit.store import erasure as store_erasure
from bandit.store.datadir import DataDirLock
from bandit.store.events import SCHEMA_VERSION, EventStore
from bandit.store.keyfiles import hash_key
from bandit.store.migration import migrate

log = logging.getLogger("cartwheel.engine")
PROBE_BYTES = 32 * 1024  # the health check's write while degraded: a busy group's size


class Engine:
    """Decides, records outcomes, learns and persists. Use from one thread (or one event loop).

    A wiring of parts (docs/architecture.md, "The engine"): a :class:`Decider` that logs into
    the SQLite :class:`EventStore` (the engine's :meth:`append` is its sink), a :class:`Joiner`
    that closes events, a :class:`ModelKeeper` that holds the learner and its policy, and the
    :class:`UnitOfWork` that makes each request group all or nothing.

    A shop with placements has one model per placement (:class:`PlacementModels`, a keeper
    each); the properties ``keeper``, ``learner`` and ``policy`` are its first placement's.

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
        self.guardrails = Guardrails(config, self.store)
        self.actions = {a.id: a for a in config.actions}
        self._staged_costs = Staged()  # incentive spend, added to the day's at commit
        self.joiner = Joiner(self.store, config.attribution, config.objective, self.actions,
                             self._closed, on_cost=lambda ts, cost: self._staged_costs.append(
                                 (ts, cost)))
        self.work = UnitOfWork(self.store, [])
        #: one model per placement (bandit.core.placement_models)
        self.models = PlacementModels(config, self.space, self.store, self.snapshot_dir,
                                      self.seed, self.clock, lambda: self.joiner.closed_through)
        self.models.build(fresh)
        self.decider = Decider(
            config, self.space, self.salt, self.guardrails, model=self.models.learner,
            price=lambda: self.pacing_price, work=self.work, sink=self,
            commit=self.commit, recover=self.models.recover, clock=self.clock,
            last_ts=self.store.last_decision_ts() or float("-inf"),
            decided_total=self.store.max_seq("decisions"))
        self.work.parts += [self.decider, self.joiner, self._staged_costs, *self.models.parts()]
        #: the budget's shadow price (None: no pacing), replayed from the log's spend
        self.pacer = Pacer.start(config, self.guardrails.spend, self.store, self.decider.last_ts)

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
        """The hash key of visitor and order ids (:mod:`bandit.store.keyfiles`: kept apart
        from the event log)."""
        key, self.hash_key_source = hash_key(self.data_dir, self.store,
                                             configured=self.config.salt,
                                             shared=self._shared_salt)
        return key.encode()

    # ------------------------------------------------------------------ deciding
    def decide(self, visitor_id: str, context: dict, eligible=None, *, now: float | None = None,
               commit: bool = True, explain: bool = False, placement: str | None = None,
               activate: bool | None = None):
        """Choose an intervention for one visitor at ``placement`` and log it
        (:meth:`Decider.decide`)."""
        return self.decider.decide(visitor_id, context, eligible, now=now, commit=commit,
                                   explain=explain, placement=placement, activate=activate)

    def decide_batch(self, requests, *, now: float | None = None, commit: bool = True):
        """Decide for many visitors with one policy call and one insert
        (:meth:`Decider.decide_batch`)."""
        return self.decider.decide_batch(requests, now=now, commit=commit)

    def stamp(self, ts: float) -> float:
        """The time a decision is logged at (never before the last one)."""
        return self.decider.stamp(ts)

    # ------------------------------------------------------------------ properties
    @property
    def group_open(self) -> bool:
        """Whether a request group has begun writing and is not committed yet."""
        return self.work.open

    @property
    def group_id(self) -> int:
        """Grows at every commit and rollback (see :class:`UnitOfWork`)."""
        return self.work.group_id

    @property
    def degraded(self) -> str | None:
        """Why the store cannot write, while it cannot (the health check says so)."""
        return self.work.degraded

    @property
    def decided_total(self) -> int:
        return self.decider.decided_total

    @property
    def action_ids(self) -> tuple[str, ...]:
        return self.config.action_ids

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
    def keepers(self) -> dict:
        """The model keeper of each placement, in config order."""
        return self.models.keepers

    @property
    def keeper(self):
        """The first placement's model keeper."""
        return self.models.first

    @property
    def learner(self):
        """The first placement's learner (the keeper's: rebuilt after a non-finite state)."""
        return self.keeper.learner

    @property
    def policy(self):
        """The model (the learner's: rebuilt with it after a crash or a non-finite state)."""
        return self.learner.policy

    @property
    def model_version(self) -> int:
        """Changes applied to the models, summed over placements (:attr:`Learner.model_version`;
        a decision logs its own placement's)."""
        return self.models.model_version

    @property
    def update_count(self) -> int:
        """Decisions learned (at every placement): applied updates plus provisional ones
        waiting for the next batch."""
        return self.models.update_count

    def model(self, placement: str):
        """The learner of ``placement`` (its ``policy``, ``action_ids``, ``model_version``)."""
        return self.models.learner(self.config.placement(placement).id)

    @property
    def last_learned_seq(self) -> int:
        return self.models.last_learned_seq

    @property
    def provisional(self) -> bool:
        """Whether decisions are learned at once with the default reward (additive policies)."""
        return self.learner.provisional

    # ------------------------------------------------------------------ outcomes
    def record_outcome(self, event_id: str, converted: bool, order_value: float = 0.0,
                       outcome_id: str | None = None, *, now: float | None = None,
                       commit: bool = True, redeemed=None) -> str:
        """Join an outcome to its decision: "recorded" or "duplicate" (see the joiner).

        ``outcome_id`` is stored as its keyed hash only (idempotency without the id);
        ``redeemed``: the incentives the order used (None: the decision's, if any)."""
        key = check_outcome(event_id, converted, order_value, outcome_id,
                            self.config.objective, self.salt)
        used = check_redeemed(redeemed, self.action_ids)
        at = self.clock() if now is None else now
        return self._write(lambda: self.joiner.outcome(event_id, converted, order_value, key,
                                                       at, used), commit)

    def record_order(self, visitor_id: str, converted: bool, order_value: float = 0.0,
                     outcome_id: str | None = None, *, now: float | None = None,
                     commit: bool = True, redeemed=None) -> tuple[str, int]:
        """An order sent by visitor id, attributed to each of the visitor's open (and active)
        decisions inside their window, at every placement (:meth:`Joiner.order`): ("recorded",
        N), ("duplicate", 0) or ("unattributed", 0)."""
        check_visitor(visitor_id)
        key = check_outcome(None, converted, order_value, outcome_id, self.config.objective,
                            self.salt)
        used = check_redeemed(redeemed, self.action_ids)
        at = self.clock() if now is None else now
        visitor = hash_visitor(visitor_id, self.salt)
        return self._write(lambda: self.joiner.order(visitor, converted, order_value, key, at,
                                                     used), commit)

    def activate(self, event_id: str, *, now: float | None = None, commit: bool = True) -> str:
        """A deferred decision is shown: from now on it is learned, capped and charged
        (:meth:`Joiner.activate`): "activated", "duplicate", or "capped" (the visitor reached
        a frequency cap since: the page must not show it)."""
        check_event_id(event_id)
        at = self.clock() if now is None else now
        return self._write(lambda: self.joiner.activate(
            event_id, at, lambda d, t: self.guardrails.capped(d.visitor_hash, d.action, t)),
            commit)

    def forget(self, visitor_id: str, *, now: float | None = None):
        """Erase one visitor on request: every row of theirs blanked, their order ids and
        per-visitor totals dropped, the old bytes scrubbed; the model is left as it is (it
        holds sums over many visitors). Commits the open group first. Returns the counts
        (:class:`bandit.store.erasure.Erased`)."""
        check_visitor(visitor_id)
        self.commit()
        return store_erasure.forget(self.store, hash_visitor(visitor_id, self.salt),
                                    self.clock() if now is None else now)

    def compact(self, now: float | None = None, limit: int | None = None) -> int:
        """Remove decisions older than ``[storage] keep_days`` that are final and covered by
        every kept snapshot, with their rows (:mod:`bandit.core.retention`): all of them, or
        at most ``limit``; returns how many."""
        return retention.compact(self, self.clock() if now is None else now, limit)

    def _write(self, write, commit: bool):
        """Run a joiner write in the open group (a refused one leaves the group's other
        writes standing; anything else rolls the group back) and commit if asked."""
        self.begin_group()
        try:
            status = write()
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

    def append(self, events, eligible, learn_rows: dict[str, list]) -> None:
        """The decider's log sink: the store, learning ``learn_rows`` (per placement) at
        commit with the rest of the group (one batched update per placement)."""
        self.models.stage_decisions(learn_rows, self.store.add_decisions(events, eligible))

    def append_decisions(self, events: list, eligible: list[tuple[str, ...]],
                         learn_rows: dict[str, list]) -> None:
        """Log decisions made elsewhere (a replica's, read from the bus by the trainer's
        :class:`~bandit.scaleout.ingest.Ingester`) in the open group, as :meth:`decide` would."""
        self.append(events, eligible, learn_rows)
        self.decider.decided_total += len(events)

    def _closed(self, closings: list[Closing]) -> None:
        self.models.stage_closings(closings)

    # ------------------------------------------------------------------ request groups
    def begin_group(self) -> None:
        """Remember the engine's state before the first write of a group (for rollback)."""
        self.work.begin()

    def rollback(self, cause: BaseException | None = None) -> None:
        """Drop the open group: the store's writes and everything the engine staged
        (:meth:`UnitOfWork.rollback`)."""
        self.work.rollback(cause)

    def commit(self) -> None:
        """Make the group's writes durable, then learn what it staged and snapshot if one is
        due. Raises :class:`StorageError` (after rolling the group back) when the store cannot
        commit."""
        self.work.commit()
        for ts, cost in self._staged_costs:
            self.guardrails.spend.add(ts, cost)
        self._staged_costs.clear()
        last_ts = self.decider.last_ts
        if self.pacer is not None and last_ts > float("-inf"):
            self.pacer.advance(last_ts)  # what it reads is committed now
        self.models.committed()

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
        self.models.flush()

    # ------------------------------------------------------------------ persistence
    def snapshot_contents(self) -> tuple[dict[str, np.ndarray], dict]:
        """A copy of every placement's model state and metadata as one snapshot (what the
        trainer publishes; :func:`~bandit.core.model.pack_models`)."""
        return self.models.contents()

    def snapshot(self) -> Path:
        """Write an atomic snapshot of every placement's model now (after committing pending
        writes) and return the first placement's path once all are on disk."""
        self.flush()
        return self.models.write_snapshots()[0]

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
        self.models.close()
        self.store.close()
        self._lock.release()
        return final

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
