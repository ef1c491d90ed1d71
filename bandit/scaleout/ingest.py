"""The trainer's way in: request groups read from the bus become the engine's log and learning.

:class:`Ingester` is the trainer's part beside its :class:`bandit.core.engine.Engine`
(docs/architecture.md, "Scale-out"): it holds the engine and feeds it. A batch of bus entries is one request group of the engine: the decisions go into
the store as the engine's own would (``INSERT`` of the ones not seen before: a repeated entry
is harmless), activations and outcomes (by event or by visitor) go through the same joiner,
after every record passed the checks of :mod:`bandit.scaleout.checks` (one that did not is a
dead letter, and ingest goes on), and the stream offset of the last entry is
written in the same transaction, so that after a crash the trainer reads on exactly where its
store ends. The joiner, learning and snapshots then run unchanged.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from bandit.core.joiner import learnable
from bandit.domain.errors import ClosedEventError, UnknownEventError
from bandit.domain.records import LoggedEvent
from bandit.scaleout.checks import Screened, screen
from bandit.scaleout.records import BusActivation, BusDecision, BusOutcome

log = logging.getLogger("cartwheel.trainer")
OFFSET_KEY = "bus_offset"


@dataclass
class IngestCounts:
    """What one batch of entries brought (the trainer's metrics)."""

    entries: int = 0
    decisions: int = 0
    duplicates: int = 0  # decisions or outcomes seen before (a repeated append)
    malformed: int = 0  # entries or records refused by the checks (dead letters)
    outcomes: Counter = field(default_factory=Counter)  # by status or error code
    activations: Counter = field(default_factory=Counter)  # by status or error code


class Ingester:
    """Feeds an engine from the bus (see the module docstring)."""

    def __init__(self, engine):
        self.engine = engine

    @property
    def bus_offset(self) -> str:
        """Id of the last bus entry the store holds ("0-0": none)."""
        return self.engine.store.get_meta(OFFSET_KEY) or "0-0"

    def screen(self, entries: list[tuple[str, bytes]], now: float | None = None) -> Screened:
        """Decode and check ``entries`` (:func:`bandit.scaleout.checks.screen`): what may be
        ingested, and the dead letters."""
        engine = self.engine
        return screen(entries, engine.config, engine.space,
                      engine.clock() if now is None else now)

    def ingest(self, entries: list[tuple[str, bytes]]) -> IngestCounts:
        """Check, store and learn ``(entry id, bytes)`` entries, in order, as one committed
        group (raises :class:`~bandit.domain.errors.StorageError` after rolling all of it
        back); refused records are counted (``malformed``), not stored."""
        return self.ingest_screened(self.screen(entries), entries[-1][0] if entries else None)

    def ingest_screened(self, screened: Screened, last_id: str | None) -> IngestCounts:
        """Store and learn what passed the checks, and the offset ``last_id`` (the last entry
        read: refused ones are read too), as one committed group."""
        counts = IngestCounts(entries=len(screened.entries), malformed=len(screened.dead))
        if last_id is None:
            return counts
        engine = self.engine
        engine.begin_group()
        try:
            run: list[BusDecision] = []
            for _, entry in screened.entries:
                run.extend(entry.decisions)
                if entry.outcomes or entry.activations:  # for decisions of earlier entries
                    self._ingest_decisions(run, counts)
                    run = []
                    for activation in entry.activations:  # shown before it was bought
                        self._ingest_activation(activation, counts)
                    for outcome in entry.outcomes:
                        self._ingest_outcome(outcome, counts)
            self._ingest_decisions(run, counts)
            engine.store.set_meta(OFFSET_KEY, last_id)
        except Exception as exc:
            engine.rollback(exc)
            raise
        engine.commit()
        return counts

    def _ingest_decisions(self, decisions: list[BusDecision], counts: IngestCounts) -> None:
        if not decisions:
            return
        engine = self.engine
        known = engine.store.known_event_ids([d.event_id for d in decisions])
        fresh = []
        for d in decisions:  # checked already (bandit.scaleout.checks)
            if d.event_id in known:
                counts.duplicates += 1
            else:
                known.add(d.event_id)
                fresh.append(d)
        if not fresh:
            return
        events = []
        for d in fresh:
            # the log stays in time order (expiry relies on it): replicas' clocks interleave
            events.append(LoggedEvent(d.event_id, d.visitor_hash, d.context, (), 0, d.action,
                                      d.probability, d.group, d.model_version, d.randomized,
                                      engine.stamp(d.ts), d.placement, d.deferred,
                                      d.would_have_action, d.would_have_probability,
                                      d.notes_bytes()))
        rows = {}
        for placement, keeper in engine.keepers.items():
            learn = [d for d in fresh if d.placement == placement and learnable(d)
                     and not d.deferred]
            if learn and keeper.learner.provisional:
                X, actions, propensities, mask = keeper.learner.batch(learn)
                rows[placement] = list(zip(X, actions, propensities, mask))
        engine.append_decisions(events, [tuple(d.eligible) for d in fresh], rows)
        counts.decisions += len(events)

    def _ingest_activation(self, a: BusActivation, counts: IngestCounts) -> None:
        try:
            status = self.engine.joiner.activate(a.event_id, a.ts)
        except (UnknownEventError, ClosedEventError) as exc:  # 404 / 409 on one process
            status = exc.code
        counts.activations[status] += 1

    def _ingest_outcome(self, o: BusOutcome, counts: IngestCounts) -> None:
        redeemed = None if o.redeemed is None else frozenset(o.redeemed)
        try:
            if o.visitor_hash is not None:
                status, _ = self.engine.joiner.order(o.visitor_hash, o.converted, o.order_value,
                                                     o.outcome_key, o.ts, redeemed)
            else:
                status = self.engine.joiner.outcome(o.event_id, o.converted, o.order_value,
                                                    o.outcome_key, o.ts, redeemed)
        except (UnknownEventError, ClosedEventError) as exc:  # 404 / 409 on one process
            status = exc.code
        counts.outcomes[status] += 1
        if status == "duplicate":
            counts.duplicates += 1
