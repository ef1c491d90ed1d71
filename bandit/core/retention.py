"""Retention for one process: which part of the log may go, and removing it in short
transactions between requests (the rules: :mod:`bandit.store.retention`)."""

from __future__ import annotations

import json
import logging

from bandit.store.retention import Horizon, remove

log = logging.getLogger("cartwheel.engine")
#: decisions removed per transaction: a few milliseconds each, requests served between them
BATCH = 2000


def snapshot_coverage(snapshot_dir, top: int) -> tuple[int, int]:
    """(decision seq, closed seq) up to which every kept snapshot of one model has learned
    the log (a restore from any of them re-learns only what comes after); (0, 0) with none.
    A provisional learner re-learns decisions after ``last_decision_seq``; held closings and
    relabels waiting for their rows are read back by seq, so they bound it too."""
    decisions, closed, found = top, None, False
    for marker in sorted(snapshot_dir.glob("snapshot-*.json")):
        try:
            meta = json.loads(marker.read_text())
            waiting = [int(s) for s in meta.get("held_closings", [])] + [
                int(s) for s, _ in meta.get("deferred_relabels", [])]
            upto = min([int(meta["last_learned_seq"]), *(s - 1 for s in waiting)])
            if meta.get("provisional"):
                decisions = min(decisions, int(meta["last_decision_seq"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: a restore passes over it too
        closed, found = upto if closed is None else min(closed, upto), True
    return (decisions, closed) if found else (0, 0)


def horizon(engine, now: float) -> Horizon | None:
    """What may be removed at ``now`` (None: the shop keeps everything)."""
    keep = engine.config.retention_s
    if keep is None:
        return None
    top = engine.store.max_seq("decisions")
    covered = [snapshot_coverage(k.snapshot_dir, top) for k in engine.models.keepers.values()]
    decisions = min([top, engine.store.final_through, engine.joiner.closed_through,
                     *(d for d, _ in covered)])
    return Horizon(now - keep, decisions, min(c for _, c in covered), now - keep)


def compact(engine, now: float, limit: int | None = None) -> int:
    """Remove what the horizon allows, ``BATCH`` decisions a transaction (at most ``limit``
    in all); returns how many decisions went."""
    bound = horizon(engine, now)
    if bound is None:
        return 0
    total = 0
    while limit is None or total < limit:
        size = BATCH if limit is None else min(BATCH, limit - total)
        engine.begin_group()
        try:
            removed = remove(engine.store, bound, size)
        except Exception as exc:
            engine.rollback(exc)
            raise
        engine.commit()
        total += removed
        if removed < size:
            break
    return total
