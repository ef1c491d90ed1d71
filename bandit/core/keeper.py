"""The model's life in the engine: built from the newest snapshot plus the log, taught at each
commit, rebuilt when it turns non-finite, and snapshotted on a schedule (docs/architecture.md,
"Persistence").

:class:`ModelKeeper` owns the :class:`~bandit.core.learner.Learner` (which holds the policy) of
one placement and replaces it whole when the model is rebuilt, so the other parts ask the keeper
for the current one. An engine has one keeper per placement, each with its own snapshot folder
(:func:`snapshot_folder`). As a request group's part it drops what a rolled-back group staged for learning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bandit.core.gate import GateLog
from bandit.core.joiner import Closing, learnable
from bandit.core.learner import Learner
from bandit.core.model import restore
from bandit.domain.errors import CartwheelError
from bandit.domain.records import DEFAULT_PLACEMENT, Placement
from bandit.store.events import SCHEMA_VERSION
from bandit.store.snapshots import SnapshotWriter, write_snapshot

log = logging.getLogger("cartwheel.engine")


def snapshot_folder(snapshots: Path, placement_id: str) -> Path:
    """Where a placement's snapshots live: ``snapshots/`` itself for the default placement
    (as before placements existed), ``snapshots/placement-<id>/`` for the others."""
    if placement_id == DEFAULT_PLACEMENT:
        return snapshots
    return snapshots / f"placement-{placement_id}"


class ModelKeeper:
    """Builds, teaches, repairs and snapshots one engine's model.

    Parameters
    ----------
    config, space, store
        The shop, its feature space and the event log the model is (re)learned from.
    snapshot_dir : Path
        Where snapshots are written and read.
    seed : int, optional
        The policy's random state when there is no snapshot.
    clock : callable
        Seconds since the epoch (snapshot cadence and provisional learning).
    closed_through : callable
        Every decision up to this seq has closed (the joiner's watermark).
    placement : Placement
        Whose model this is (its actions, its spec).
    """

    def __init__(self, config, space, store, snapshot_dir: Path, seed, clock: Callable,
                 closed_through: Callable[[], int], placement: Placement):
        self.config, self.space, self.store = config, space, store
        self.snapshot_dir, self.seed, self.clock = snapshot_dir, seed, clock
        self.closed_through, self.placement = closed_through, placement
        self.writer = SnapshotWriter()  # the snapshot thread
        self.learner: Learner

    # ------------------------------------------------------------------ building
    def build(self, fresh: bool = False, skip: int = 0) -> None:
        """The newest usable snapshot (``skip`` passes over newer ones) plus what the log
        holds after it: at start, after a crash, and when a model turned non-finite."""
        restored = restore(self.config, self.space, self.store, self.snapshot_dir, self.seed,
                           fresh, skip, self.placement)
        self.learner = Learner(
            restored.policy, restored.action_ids, self.space,
            self.config.attribution.default_reward, self.config.objective.reward_clip,
            last_learned_seq=restored.last_learned_seq,
            last_decision_seq=restored.last_decision_seq,
            first_decision_seq=restored.first_decision_seq, clip_state=restored.clip_state,
            deferred=restored.deferred, held=restored.held, fetch=self.store.closed_at)
        store, pid = self.store, self.placement.id
        # an additive model learned every decision with the default reward (provisionally):
        # of the closings only those that change it are read (a re-learn's other half)
        changing = self.learner.default if self.learner.provisional else None
        self.learner.relearn(
            # deferred decisions are never learned provisionally (bandit.core.learner)
            lambda after: (d for d in store.decisions(after, pid)
                           if learnable(d) and not d.deferred),
            lambda after: (Closing(e.seq, e.decision, e.reward, e.converted, e.order_value,
                                   e.cost)
                           for e in store.closed_events(after, learned_only=True,
                                                        placement=pid, changing=changing)),
            store.max_seq("decisions"), store.closed_at, self.closed_through(),
            closed_upto=store.max_seq("closed"))
        self._snapshot_at = ((self.learner.policy.n_updates if restored.from_snapshot else 0),
                             self.clock())
        self.gate_log = GateLog(pid, self.learner.policy)

    def recover(self, why: str) -> None:
        """The model turned non-finite: rebuild it from an older snapshot and the log (from the
        log alone when no snapshot gives a finite model), and say so."""
        log.error("the model is not finite (%s); rebuilding it from the last good snapshot and "
                  "the event log", why)
        for skip in range(len(list(self.snapshot_dir.glob("snapshot-*.json"))) + 1):
            self.build(skip=skip)
            if self.learner.healthy():
                log.warning("model rebuilt (%d newer snapshots passed over)", skip)
                return
        for marker in self.snapshot_dir.glob("snapshot-*.json"):
            marker.rename(marker.with_suffix(".json.bad"))  # never loaded again
        self.build()
        if not self.learner.healthy():
            raise CartwheelError("the model is not finite even re-learned from the log alone; "
                                 "start with --fresh-model")

    # ------------------------------------------------------------------ a request group's part
    def checkpoint(self) -> None:
        """Nothing to remember: what a group stages is learned only after its commit."""
        return None

    def restore(self, token) -> None:
        self.learner.discard()

    # ------------------------------------------------------------------ after a commit
    def committed(self) -> None:
        """Learn what the committed group staged, repair a model that turned non-finite, and
        snapshot when one is due."""
        now = self.clock()
        try:
            changed = self.learner.apply(now, self.closed_through())
            healthy = not changed or self.learner.healthy()
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            healthy, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = "non-finite state after an update"
        if not healthy:
            self.recover(why)
        self.gate_log.announce(self.learner.policy)
        self._maybe_snapshot(now)

    def _maybe_snapshot(self, now: float) -> None:
        updates, at = self._snapshot_at
        storage = self.config.storage
        n = self.learner.policy.n_updates
        if (n - updates >= storage.snapshot_every_updates
                or (n > updates and now - at >= storage.snapshot_every_s)):
            # written on the snapshot thread: the caller goes on at once; while the last one is
            # still being written this one is skipped (learning is not touched either way)
            if not self.writer.busy and self.writer.submit(self.snapshot_dir,
                                                             *self.contents()):
                self._snapshot_at = (n, now)

    # ------------------------------------------------------------------ snapshots
    def contents(self) -> tuple[dict[str, np.ndarray], dict]:
        """A copy of the model's state and its metadata, consistent with the committed log
        (provisional rows not yet applied are re-learned from the log on restore)."""
        learner, config = self.learner, self.config
        policy = learner.policy
        return policy.get_state(), {
            "store_schema_version": SCHEMA_VERSION, "config_hash": config.config_hash(),
            "schema_hash": config.schema_hash(), "policy_spec": policy.spec,
            "action_ids": list(learner.action_ids), "update_count": policy.n_updates,
            "placement": self.placement.id,
            "model_version": learner.model_version, **learner.meta()}

    def write_snapshot(self) -> Path:
        """Write a snapshot now (the caller has committed and flushed) and return its path
        once it is on disk."""
        self.writer.wait()
        path = write_snapshot(self.snapshot_dir, *self.contents())
        self._snapshot_at = (self.learner.policy.n_updates, self.clock())
        return path

    def close(self) -> None:
        self.writer.close()
