"""Retention: removing what the shop no longer needs, off the hot path (with
``bandit.store.events`` and its siblings, the only SQL of the project): ``[storage]
keep_days``, ``cartwheel compact``.

A decision is removed, with its outcomes, closing and activation, once all of these hold:
it was made before the retention horizon (``keep_days``, never shorter than the longest
frequency-cap window or the attribution window: caps and attribution read those rows); it
is closed and its outcome is final (folded into the report's aggregates, which keep the
history: the report beyond ``keep_days`` stays right); and its rows are covered by the
oldest kept model snapshot of every placement (a restore re-learns only what comes after a
snapshot, so nothing it needs is gone). The newest row of each table always stays: SQLite
hands out the largest rowid plus one, and the log's sequence numbers must only grow. Orders
sent by visitor id older than the horizon go too. What is removed is deleted in batches, so
each transaction stays short; SQLite reuses the freed pages, so at steady traffic the file
stops growing (``benchmarks/retention.py``).

What it costs: an outcome for a removed decision answers 404 (unknown event), an order id is
a duplicate only while its record is kept, and a re-learn from the log alone (every
snapshot lost) learns only what is kept (docs/operations.md, "Retention").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Horizon:
    """What may be removed: decisions made before ``before_ts`` with ``seq <= decisions_upto``
    whose closing has ``seq <= closed_upto``; orders before ``orders_before_ts``."""

    before_ts: float
    decisions_upto: int
    closed_upto: int
    orders_before_ts: float


def remove(store, horizon: Horizon, limit: int = 5000) -> int:
    """Remove up to ``limit`` decisions (and their rows) within ``horizon`` from ``store``
    (an :class:`~bandit.store.events.EventStore`), in its open transaction; returns how
    many."""
    db, run = store.db, store.write
    top_d = db.execute("SELECT COALESCE(MAX(seq), 0) FROM decisions").fetchone()[0]
    top_c = db.execute("SELECT COALESCE(MAX(seq), 0) FROM closed").fetchone()[0]
    batch = db.execute(
        "SELECT d.seq, d.event_id, d.visitor_hash, d.grp FROM decisions d JOIN closed c "
        "ON c.event_id = d.event_id "
        "WHERE d.seq <= :d AND d.ts < :ts AND c.seq <= :c ORDER BY d.seq LIMIT :n",
        {"d": min(horizon.decisions_upto, top_d - 1), "ts": horizon.before_ts,
         "c": min(horizon.closed_upto, top_c - 1), "n": limit}).fetchall()
    if batch:
        events = [(e,) for _, e, _, _ in batch]
        for table in ("outcomes", "closed", "activations"):
            run(f"DELETE FROM {table} WHERE event_id = ?", events, many=True)
        run("DELETE FROM decisions WHERE seq = ?", [(s,) for s, _, _, _ in batch], many=True)
        # a visitor with no decision left leaves the per-visitor totals (the group sums keep
        # them), so that table holds the visitors of the kept window, not every one ever
        # by its primary key (grp, visitor_hash): one lookup each, not a scan
        run("DELETE FROM visitor_totals WHERE grp = ? AND visitor_hash = ? AND NOT EXISTS "
            "(SELECT 1 FROM decisions d WHERE d.visitor_hash = visitor_totals.visitor_hash)",
            sorted({(g, h) for _, _, h, g in batch}), many=True)
    top_o = db.execute("SELECT COALESCE(MAX(seq), 0) FROM orders").fetchone()[0]
    run("DELETE FROM orders WHERE seq IN (SELECT seq FROM orders WHERE ts < ? AND seq < ? "
        "ORDER BY seq LIMIT ?)", (horizon.orders_before_ts, top_o, limit))
    return len(batch)
