"""The event store's counting and joining queries (with ``bandit.store.events``,
``bandit.store.aggregates`` and ``bandit.store.wal``, the only SQL of the project): frequency-cap
counts, an event's state for the joiner, a visitor's open decisions for an order sent by visitor
id, and the decisions joined with their rewards for log readers.

Each function takes the store's SQLite connection; :class:`~bandit.store.events.EventStore` exposes
them as methods, so callers never write SQL of their own.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from typing import NamedTuple

#: a decision counts (for caps, orders by visitor) unless it is deferred and not activated
ACTIVE = ("(d.deferred = 0 OR EXISTS (SELECT 1 FROM activations a "
          "WHERE a.event_id = d.event_id))")


class CapCounts:
    """The statement that counts, for a batch of visitors, their decisions of each capped
    action set since each cap's window start, each count stopped at the cap's maximum
    (``LIMIT``): with the (visitor_hash, action, ts, deferred) index a count reads at most
    that many index entries (a deferred decision counts from its activation on: the
    activations' own index is searched the same way), so a long history (a crawler reusing
    one id) costs no more than a short one, and a batch is one round trip into SQLite.

    A holdout visitor always sees the control: their count is of their would-have draws
    (``would_have_action``, a partial index of its own), so the draw recorded for them faces
    the caps a treated visitor's would (docs/architecture.md, "Holdout").

    ``covered``: per cap, the action ids it counts; ``limits``: per cap, its maximum.
    """

    def __init__(self, covered: Sequence[tuple[str, ...]], limits: Sequence[int]):
        self.covered = [tuple(ids) for ids in covered]
        self._counts = ", ".join(
            f"CASE WHEN v.w THEN (SELECT COUNT(*) FROM (SELECT 1 FROM decisions WHERE "
            f"visitor_hash = v.h AND would_have_action IN ({', '.join('?' * len(ids))}) AND "
            f"ts >= ? AND deferred = 0 LIMIT {int(limit)})) ELSE "
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM decisions WHERE visitor_hash = v.h AND "
            f"action IN ({', '.join('?' * len(ids))}) AND ts >= ? AND deferred = 0 "
            f"LIMIT {int(limit)})) + "
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM activations WHERE visitor_hash = v.h AND "
            f"action IN ({', '.join('?' * len(ids))}) AND ts >= ? LIMIT {int(limit)})) END"
            if ids else "0" for ids, limit in zip(self.covered, limits))
        self.sql = functools.lru_cache(maxsize=256)(self._sql)

    def _sql(self, n: int) -> str:
        """The statement for ``n`` visitors (one row of counts per visitor, in order)."""
        rows = ", ".join(f"({i}, ?, ?)" for i in range(n))
        return f"WITH v(i, h, w) AS (VALUES {rows}) SELECT {self._counts} FROM v ORDER BY v.i"

    def params(self, visitor_hashes: Sequence[str], since: Sequence[float],
               holdout: Sequence[bool] | None = None) -> list:
        out = []
        for i, h in enumerate(visitor_hashes):
            out += (h, int(bool(holdout[i])) if holdout is not None else 0)
        for ids, start in zip(self.covered, since):
            if ids:
                out += (*ids, start, *ids, start, *ids, start)
        return out

    def run(self, db: sqlite3.Connection, visitor_hashes: Sequence[str],
            since: Sequence[float], holdout: Sequence[bool] | None = None
            ) -> list[tuple[int, ...]]:
        """Per visitor, the count under each cap (at most the cap's maximum); ``holdout``:
        per visitor, whether to count their would-have draws instead."""
        return db.execute(self.sql(len(visitor_hashes)),
                          self.params(visitor_hashes, since, holdout)).fetchall()


def decisions_with_rewards(db: sqlite3.Connection, after_seq: int = 0,
                           placement_col: str = "d.placement",
                           would_have_cols: str = "d.would_have_action, "
                                                  "d.would_have_probability"
                           ) -> Iterator[tuple]:
    """(seq, event_id, ts, context JSON, eligible JSON, action, probability, randomized, grp,
    reward or None while open, placement, why it closed or None, would-have action, its
    probability) of every decision after ``after_seq``, in log order (``placement_col``:
    ``'default'`` for a store written before placements; ``would_have_cols``: ``NULL, NULL``
    before schema 4)."""
    yield from db.execute(
        "SELECT d.seq, d.event_id, d.ts, d.context, d.eligible, d.action, d.probability, "
        f"d.randomized, d.grp, c.reward, {placement_col}, c.reason, {would_have_cols} "
        "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id WHERE d.seq > ? "
        "ORDER BY d.seq", (after_seq,))


def rewards_by_group(db: sqlite3.Connection, after_seq: int, placement: str) -> dict:
    """{group: (closed decisions, sum of rewards, sum of squared rewards)} of the decisions
    made at ``placement`` after ``after_seq`` whose outcome is final (the holdout check of a
    promotion, bandit.insight.probation)."""
    return {grp: (n, total, squares) for grp, n, total, squares in db.execute(
        "SELECT d.grp, COUNT(*), TOTAL(c.reward), TOTAL(c.reward * c.reward) "
        "FROM decisions d JOIN closed c ON c.event_id = d.event_id "
        "WHERE d.seq > ? AND d.placement = ? GROUP BY d.grp", (after_seq, placement))}


class EventState(NamedTuple):
    """What the joiner needs to know about one event before it writes."""

    decided_at: float | None  # None: no such event
    closed: bool
    deferred: bool  # waits for an activation
    activated: bool
    seen_for: str | None  # the event an outcome_id was recorded for
    seen_by_order: bool  # the outcome_id was recorded by an order sent by visitor id


def event_state(db: sqlite3.Connection, event_id: str, outcome_id: str | None) -> EventState:
    """An event's :class:`EventState` and where ``outcome_id`` was used, in one query."""
    row = db.execute(
        "SELECT d.ts, EXISTS (SELECT 1 FROM closed c WHERE c.event_id = q.eid), d.deferred, "
        "EXISTS (SELECT 1 FROM activations a WHERE a.event_id = q.eid), "
        "(SELECT o.event_id FROM outcomes o WHERE o.outcome_id = q.oid), "
        "EXISTS (SELECT 1 FROM orders r WHERE r.outcome_id = q.oid) "
        "FROM (SELECT ? AS eid, ? AS oid) q LEFT JOIN decisions d ON d.event_id = q.eid",
        (event_id, outcome_id)).fetchone()
    return EventState(row[0], bool(row[1]), bool(row[2]), bool(row[3]), row[4], bool(row[5]))


def order_seen(db: sqlite3.Connection, outcome_id: str) -> bool:
    """Whether ``outcome_id`` was recorded, by an order sent by visitor id or for an event."""
    return bool(db.execute(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE outcome_id = ?) OR "
        "EXISTS (SELECT 1 FROM outcomes WHERE outcome_id = ?)",
        (outcome_id, outcome_id)).fetchone()[0])


def visitor_open(db: sqlite3.Connection, columns: str, visitor_hash: str, since: float,
                 limit: int) -> list[tuple]:
    """Rows (``columns`` of ``decisions d``) of the visitor's open, active decisions made at
    or after ``since``: the newest ``limit`` of them, oldest first (a range of the
    (visitor_hash, ts) index)."""
    rows = db.execute(
        f"SELECT {columns} FROM decisions d WHERE d.visitor_hash = ? AND d.ts >= ? AND "
        f"NOT EXISTS (SELECT 1 FROM closed c WHERE c.event_id = d.event_id) AND {ACTIVE} "
        "ORDER BY d.ts DESC, d.seq DESC LIMIT ?", (visitor_hash, since, limit)).fetchall()
    return rows[::-1]
