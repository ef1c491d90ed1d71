"""The rows the event store hands back (:mod:`bandit.store.events`): a decision as read back and a
closed event joined with its decision, and the JSON codecs of the stored columns."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import msgspec

encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A decision row as read back (eligible and context decoded)."""

    seq: int
    event_id: str
    ts: float
    visitor_hash: str
    context: dict
    eligible: tuple[str, ...]
    action: str
    probability: float
    group: str
    model_version: int
    randomized: bool
    placement: str = "default"
    deferred: bool = False
    #: what a promotion gate noted when it decided (float64 bytes; None for other policies)
    decision_notes: bytes | None = None


@dataclass(frozen=True, slots=True)
class ClosedEvent:
    """A closed event joined with its decision: what re-learning and reports need."""

    seq: int
    decision: StoredDecision
    ts: float
    reason: str
    converted: bool
    order_value: float
    cost: float
    reward: float


DECISION_COLS = ("d.seq, d.event_id, d.ts, d.visitor_hash, d.context, d.eligible, d.action, "
                 "d.probability, d.grp, d.model_version, d.randomized, d.placement, d.deferred, "
                 "d.decision_notes")
#: the same columns of a store written before decision notes (schema 5), and before
#: placements (read-only opens: such a store cannot be upgraded)
NOTELESS_DECISION_COLS = DECISION_COLS.replace("d.decision_notes", "NULL")
LEGACY_DECISION_COLS = NOTELESS_DECISION_COLS.replace("d.placement, d.deferred", "'default', 0")


def closed_join(decision_cols: str = DECISION_COLS) -> str:
    """A closed event joined with its decision (``closed c JOIN decisions d``), for
    :func:`closed_of`."""
    return ("SELECT c.seq, c.ts, c.reason, c.converted, c.order_value, c.cost, c.reward, "
            f"{decision_cols} FROM closed c JOIN decisions d ON d.event_id = c.event_id")


@functools.lru_cache(maxsize=4096)
def eligible_json(ids: tuple[str, ...]) -> bytes:
    """JSON of an eligible set, cached: a shop has few distinct sets."""
    return encode(list(ids))


def decision_of(row) -> StoredDecision:
    """A row of ``DECISION_COLS`` as a :class:`StoredDecision`."""
    return StoredDecision(row[0], row[1], row[2], row[3], decode(row[4]),
                          tuple(decode(row[5])), row[6], row[7], row[8], row[9], bool(row[10]),
                          row[11], bool(row[12]), row[13])


def closed_of(row) -> ClosedEvent:
    """A row of ``CLOSED_JOIN`` as a :class:`ClosedEvent`."""
    return ClosedEvent(row[0], decision_of(row[7:]), row[1], row[2], bool(row[3]), row[4],
                       row[5], row[6])
