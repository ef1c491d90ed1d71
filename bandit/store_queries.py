"""The event store's aggregate and counting queries (with ``bandit.store`` and
``bandit.wal``, the only SQL of the project): frequency-cap counts, the report's sums and
per-visitor totals, and the decisions joined with their rewards for log readers.

Each function takes the store's SQLite connection; :class:`~bandit.store.EventStore` exposes
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


# per visitor of each group (or action): totals; then the sums the report needs, per group
_MOMENTS = """
WITH v AS (
    SELECT d.{key} AS key, COUNT(*) AS n, COALESCE(SUM(c.converted), 0) AS c,
           COALESCE(SUM(c.order_value * c.converted), 0) AS r, COALESCE(SUM(c.cost), 0) AS k
    FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id
    GROUP BY d.{key}, d.visitor_hash),
w AS (SELECT key, n, c, r, k, :margin * r - k AS p FROM v)
SELECT key, COUNT(*), SUM(n), SUM(c), SUM(r), SUM(k), SUM(p), SUM(n * n), SUM(c * c),
       SUM(r * r), SUM(k * k), SUM(p * p), SUM(c * n), SUM(r * c)
FROM w GROUP BY key ORDER BY key
"""


def moment_sums(db: sqlite3.Connection, by: str, margin: float) -> list[tuple]:
    """Per group (``by="grp"``) or action (``by="action"``): the visitor count and the sums
    over per-visitor totals (n, c, r, k, p, their squares, c*n, r*c) the report's intervals
    need; SQLite aggregates, no per-visitor row reaches Python."""
    if by not in ("grp", "action"):
        raise ValueError(f"moments by 'grp' or 'action', not {by!r}")
    return db.execute(_MOMENTS.format(key=by), {"margin": margin}).fetchall()


def decisions_with_rewards(db: sqlite3.Connection, after_seq: int = 0) -> Iterator[tuple]:
    """(seq, event_id, ts, context JSON, eligible JSON, action, probability, randomized, grp,
    reward or None while open) of every decision after ``after_seq``, in log order."""
    yield from db.execute(
        "SELECT d.seq, d.event_id, d.ts, d.context, d.eligible, d.action, d.probability, "
        "d.randomized, d.grp, c.reward FROM decisions d LEFT JOIN closed c "
        "ON c.event_id = d.event_id WHERE d.seq > ? ORDER BY d.seq", (after_seq,))
