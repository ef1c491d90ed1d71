"""A decide replica: decides as the engine does, logs to the bus, learns nothing itself.

Many replicas run behind any load balancer (docs/architecture.md, "Scale-out"). Each one:

* decides with a :class:`~bandit.core.decider.Decider` (the engine's own part: features,
  salted hash, holdout, guardrails, ``policy.act``) on the newest model the trainer published,
  logging into a :class:`BusLog` (the group's pending entry) instead of the SQLite store;
* counts frequency caps in Redis (the visitor's capped decisions, written in the same MULTI
  as the group's log entry) and reads today's spend from the trainer;
* logs each request group as one bus entry, and answers only once Redis acknowledged it
  (acknowledged means durable in the stream; ``appendfsync always`` for "durable on disk");
* swaps in a newly published model between request groups, loaded off the event loop.

A group is all or nothing as on one process: when its entry cannot be appended, the replica's
memory (the policy's random state, counters, logged times) is as before it and every request
of it fails with 503.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import time

import msgspec
import numpy as np

from bandit.core.decider import Decider
from bandit.core.guardrails import Guardrails, SharedSpend
from bandit.core.model import make_policy, mismatch, policy_from_state, unpack_models
from bandit.core.pacing import decode as decode_price
from bandit.core.unit_of_work import PolicyDraws, UnitOfWork
from bandit.scaleout.records import BusDecision

log = logging.getLogger("cartwheel.replica")


class PrefetchedCaps:
    """The cap counts of one request group's visitors, read from Redis before it is decided
    (the guardrails ask them of their "store")."""

    def __init__(self):
        self.counts: dict[str, list[int]] = {}

    def cap_counts(self, query, visitor_hashes, since, holdout=None) -> list[list[int]]:
        return [self.counts[h] for h in visitor_hashes]


def snapshot_bytes(state: dict[str, np.ndarray], meta: dict) -> tuple[bytes, bytes]:
    """A snapshot as the bytes the bus carries: (JSON metadata, uncompressed npz state)."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    return json.dumps(meta, sort_keys=True).encode(), buffer.getvalue()


def read_snapshot_bytes(meta: bytes, state: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(io.BytesIO(state), allow_pickle=False) as f:
        return json.loads(meta), {k: f[k] for k in f.files}


class PublishedModel:
    """The model a replica decides with at one placement (a
    :class:`~bandit.core.decider.Model`)."""

    def __init__(self, policy, action_ids: list[str], model_version: int):
        self.policy, self.action_ids, self.model_version = policy, action_ids, model_version
        self.index = {a: i for i, a in enumerate(action_ids)}


class BusLog:
    """A replica's log sink and its group's storage: the open group's decisions and cap
    records, appended to the bus as one entry by the request group (then :meth:`commit`)."""

    def __init__(self, cap_windows: list[tuple[int, float, set]]):
        self.cap_windows = cap_windows
        self.decisions: list[BusDecision] = []
        self.caps: list[tuple] = []

    def append(self, events, eligible, learn_rows) -> None:
        self.decisions.extend(BusDecision.of(e, ids) for e, ids in zip(events, eligible))
        for i, window, covered in self.cap_windows:
            self.caps.extend((i, e.visitor_hash, e.event_id, e.ts, window)
                             for e in events if e.cap_action in covered)

    def commit(self) -> None:  # the entry was appended: what it held is done
        self.decisions, self.caps = [], []

    rollback = commit  # nothing of the group is appended: drop it all the same


class Replica:
    """A decider over the bus (see the module docstring).

    Parameters
    ----------
    config : ShopConfig
    salt : bytes
        The shop's salt (shared by every process on the bus).
    seed : int, optional
        Seeds the replica's draws: each loaded model gets a random state derived from it and
        the number of models loaded so far (replicas must not draw in lockstep; None: random).
    """

    def __init__(self, config, salt: bytes, *, seed: int | None = None, clock=time.time,
                 name: str | None = None):
        self.config, self.salt, self.clock = config, salt, clock
        self.name = name or f"{os.uname().nodename}-{os.getpid()}"
        self.space = config.feature_space()
        self.caps = PrefetchedCaps()
        self.guardrails = Guardrails(config, self.caps, spend=SharedSpend(config.budget))
        self._cap_windows = [(i, cap.window_s, {a.id for a in config.actions if cap.covers(a)})
                             for i, cap in enumerate(config.caps)]
        self._seeds = np.random.SeedSequence(seed)
        #: the trainer's incentive price, as last published with the spend (None: no pacing)
        self.pacing_price = None
        self.log = BusLog(self._cap_windows)
        self.work = UnitOfWork(self.log, [])
        self.decider = Decider(config, self.space, salt, self.guardrails,
                               model=lambda placement: self.models[placement],
                               price=lambda: self.pacing_price,
                               work=self.work, sink=self.log, commit=self._refuse_commit,
                               recover=self._recover, clock=clock)
        self.loaded_at = self.clock()
        self._loaded: tuple[dict, dict] | None = None
        #: the version of the published snapshot decided with (0: none yet)
        self.model_version = 0
        #: per placement, the model decided with
        self.models = self._untrained()
        self.work.parts += [self.decider] + [
            PolicyDraws(lambda pid=pid: self.models[pid]) for pid in config.placement_ids]

    def _untrained(self) -> dict[str, PublishedModel]:
        """What a replica decides with before the trainer published a model."""
        return {p.id: PublishedModel(make_policy(self.config, self.space, list(p.actions),
                                                 self._next_seed(), p.model_spec), list(p.actions), 0)
                for p in self.config.placements}

    def set_shared(self, day_start: float, spent: float, pacing: bytes = b"") -> None:
        """Today's spend and the incentive price as the trainer last published them."""
        self.guardrails.spend.set(day_start, spent)
        try:
            self.pacing_price = decode_price(pacing)
        except msgspec.DecodeError as exc:  # a trainer of another release: no pacing
            log.warning("ignoring the trainer's pacing price: %s", exc)
            self.pacing_price = None

    # ------------------------------------------------------------------ deciding
    def decide(self, visitor_id: str, context: dict, eligible=None, *, now: float | None = None,
               commit: bool = False, explain: bool = False, placement: str | None = None,
               activate: bool | None = None):
        """Decide for one visitor into the open bus entry (:meth:`Decider.decide`)."""
        return self.decider.decide(visitor_id, context, eligible, now=now, commit=commit,
                                   explain=explain, placement=placement, activate=activate)

    def decide_batch(self, requests, *, now: float | None = None, commit: bool = False):
        """Decide a request group into the open bus entry (:meth:`Decider.decide_batch`)."""
        return self.decider.decide_batch(requests, now=now, commit=commit)

    @property
    def model(self) -> PublishedModel:
        """The first placement's model."""
        return self.models[self.config.placement_ids[0]]

    @property
    def policy(self):
        return self.model.policy

    @property
    def decided_total(self) -> int:
        return self.decider.decided_total

    @property
    def degraded(self) -> str | None:
        """Why the bus cannot be written, while it cannot (the health check says so)."""
        return self.work.degraded

    @degraded.setter
    def degraded(self, why: str | None) -> None:
        self.work.degraded = why

    # ------------------------------------------------------------------ the model
    def _next_seed(self) -> np.random.SeedSequence:
        return self._seeds.spawn(1)[0]

    def build(self, meta: dict, state: dict) -> dict[str, tuple]:
        """Each placement's policy that a published snapshot holds (call off the event loop),
        or a ValueError saying why it does not fit this replica."""
        if meta.get("config_hash") != self.config.config_hash():
            raise ValueError(f"it was made with config hash {meta.get('config_hash')}, this "
                             f"replica runs {self.config.config_hash()}")
        parts = unpack_models(state, meta)
        built = {}
        for placement in self.config.placements:
            if placement.id not in parts:
                raise ValueError(f"it has no model of placement {placement.id!r}")
            part_state, part_meta = parts[placement.id]
            problem = mismatch(self.config, part_meta, placement)
            if problem:
                raise ValueError(problem)
            policy, action_ids = policy_from_state(self.config, self.space, part_state,
                                                   part_meta, None)
            policy.rng = np.random.default_rng(self._next_seed())
            built[placement.id] = PublishedModel(policy, action_ids,
                                                 int(part_meta["model_version"]))
        return built

    def swap(self, built: dict, meta: dict, state: dict) -> None:
        """Decide with ``built`` (from :meth:`build`) from the next request group on."""
        self.models = built
        self.model_version = int(meta["model_version"])
        self._loaded = (meta, state)
        self.loaded_at = self.clock()

    def _recover(self, why: str) -> None:
        """A model that turned non-finite is never used: the last loaded one is built again
        (a replica never learns, so only a bad load can get here)."""
        log.error("the model is not finite (%s); loading the last published model again", why)
        if self._loaded is None:
            self.models, self.model_version = self._untrained(), 0
        else:
            meta, state = self._loaded
            self.swap(self.build(meta, state), meta, state)

    # ------------------------------------------------------------------ request groups
    @staticmethod
    def _refuse_commit() -> None:
        raise RuntimeError("a replica's groups are appended to the bus: decide with "
                           "commit=False and append take()")

    def rollback(self, cause: BaseException | None = None) -> None:
        """Drop the open group: what it logged (not appended yet) and its draws."""
        self.work.rollback(cause)

    def take(self) -> tuple[list[BusDecision], list[tuple]]:
        """The open group's decisions and cap records, for one bus entry."""
        return self.log.decisions, self.log.caps

    def appended(self) -> None:
        """The bus acknowledged the group's entry."""
        self.work.commit()

    def cap_queries(self, visitor_hashes: list[str], now: float) -> list[tuple[int, str, float]]:
        """The Redis cap counts a group of these visitors needs (see :meth:`set_caps`)."""
        return [(i, h, now - window) for h in visitor_hashes for i, window, _ in
                self._cap_windows]

    def set_caps(self, visitor_hashes: list[str], counts: list[int]) -> None:
        n = len(self._cap_windows)
        self.caps.counts = {h: counts[j * n:(j + 1) * n] for j, h in enumerate(visitor_hashes)}


async def refresh(replica: Replica, bus, refused: set | None = None) -> bool:
    """Swap in the newest published model if it is not the one ``replica`` decides with:
    fetched, read and built on a thread, swapped on the loop (between request groups).
    A model that does not fit is logged and its version added to ``refused`` (never tried
    again). Returns whether the model changed."""
    refused = set() if refused is None else refused
    version = await bus.snapshot_version()
    if version is None or version == replica.model_version or version in refused:
        return False
    fetched = await bus.snapshot()
    if fetched is None:
        return False
    version, meta_bytes, state_bytes = fetched
    meta, state = await asyncio.to_thread(read_snapshot_bytes, meta_bytes, state_bytes)
    try:
        built = await asyncio.to_thread(replica.build, meta, state)
    except (ValueError, KeyError, TypeError) as exc:
        refused.add(version)
        log.error("not loading the published model %d: %s", version, exc)
        return False
    replica.swap(built, meta, state)
    log.debug("deciding with model %d", version)
    return True


async def follow_snapshots(replica: Replica, bus, poll_s: float = 1.0, on_error=None) -> None:
    """Keep ``replica`` on the newest published model (:func:`refresh`): on the trainer's
    message, and every ``poll_s`` (pub/sub drops messages while disconnected). Runs until
    cancelled."""
    refused: set[int] = set()
    while True:
        try:
            await refresh(replica, bus, refused)
            await bus.wait_for_snapshot(poll_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            log.warning("following the published model failed (%s); retrying", exc)
            await asyncio.sleep(poll_s)
