"""The event store's counting and joining queries (with ``bandit.store.events``,
``bandit.store.aggregates`` and ``bandit.store.wal``, the only SQL of the project): frequency-cap
counts and the decisions joined with their rewards for log readers.

Each function takes the store's SQLite connection; :class:`~bandit.store.events.EventStore` exposes
them as methods, so callers never write SQL of their own.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence


class CapCounts:
    """The statement that counts, for a batch of visitors, their decisions of each capped
    action set since each cap's window start, each count stopped at the cap's maximum
    (``LIMIT``): with the (visitor_hash, action, ts) index a count reads at most that many
    index entries, so a long history (a crawler reusing one id) costs no more than a short
    one, and a batch is one round trip into SQLite.

    ``covered``: per cap, the action ids it counts; ``limits``: per cap, its maximum.
    """

    def __init__(self, covered: Sequence[tuple[str, ...]], limits: Sequence[int]):
        self.covered = [tuple(ids) for ids in covered]
        self._counts = ", ".join(
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM decisions WHERE visitor_hash = v.h AND "
            f"action IN ({', '.join('?' * len(ids))}) AND ts >= ? LIMIT {int(limit)}))"
            if ids else "0" for ids, limit in zip(self.covered, limits))
        self.sql = functools.lru_cache(maxsize=256)(self._sql)

    def _sql(self, n: int) -> str:
        """The statement for ``n`` visitors (one row of counts per visitor, in order)."""
        rows = ", ".join(f"({i}, ?)" for i in range(n))
        return f"WITH v(i, h) AS (VALUES {rows}) SELECT {self._counts} FROM v ORDER BY v.i"

    def params(self, visitor_hashes: Sequence[str], since: Sequence[float]) -> list:
        out = list(visitor_hashes)
        for ids, start in zip(self.covered, since):
            if ids:
                out += (*ids, start)
        return out

    def run(self, db: sqlite3.Connection, visitor_hashes: Sequence[str],
            since: Sequence[float]) -> list[tuple[int, ...]]:
        """Per visitor, the count under each cap (at most the cap's maximum)."""
        return db.execute(self.sql(len(visitor_hashes)),
                          self.params(visitor_hashes, since)).fetchall()


def decisions_with_rewards(db: sqlite3.Connection, after_seq: int = 0) -> Iterator[tuple]:
    """(seq, event_id, ts, context JSON, eligible JSON, action, probability, randomized, grp,
    reward or None while open) of every decision after ``after_seq``, in log order."""
    yield from db.execute(
        "SELECT d.seq, d.event_id, d.ts, d.context, d.eligible, d.action, d.probability, "
        "d.randomized, d.grp, c.reward FROM decisions d LEFT JOIN closed c "
        "ON c.event_id = d.event_id WHERE d.seq > ? ORDER BY d.seq", (after_seq,))
