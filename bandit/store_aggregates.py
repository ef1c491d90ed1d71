"""The report's aggregates, kept up to date by SQLite triggers as rows are appended (with
``bandit.store``, ``bandit.store_queries`` and ``bandit.wal``, the only SQL of the project).

The report and the dashboard must cost O(hours + groups + actions), not O(decisions): a
shop's log grows by millions of rows a week and ``GET /v1/report`` is polled by a page. Three
tables hold what every report figure is a function of (docs/architecture.md, "Report
aggregates"):

* ``visitor_totals(kind, key, visitor_hash, n, c, r, k)``: per visitor and group (``kind`` 0)
  or action (``kind`` 1) their decisions, conversions, revenue and incentive cost;
* ``moment_totals(kind, key, visitors, n, c, r, k, nn, cc, rr, kk, rk, cn, rc)``: per group or
  action, the sums over its visitors of those totals, their squares and cross products (the
  Welch and delta-method intervals need nothing else; profit ``m r - k`` is expanded at read
  time, so a changed margin needs no rebuild);
* ``hourly(hour, grp, action, decisions, conversions, revenue, cost, rr, kk, rk)``: per hour
  of the *decision* (``floor(ts / 3600)``), group and action, per-decision sums, for uplift
  over time and the action mix.

Triggers on ``decisions`` and ``closed`` maintain them inside the same transaction as the row
that changes them, so a crash or a rolled-back group can never leave them out of step with
the log; a visitor's totals changing from ``old`` to ``new`` move the moment sums by
``new - old`` (and ``new**2 - old**2``). A store written before the tables existed is
backfilled once, in one transaction, at its first writable open (:func:`install`).
"""

from __future__ import annotations

import sqlite3

#: meta key whose presence says the aggregates are installed and filled
META_KEY = "aggregates"
VERSION = "1"

_TABLES = """
CREATE TABLE IF NOT EXISTS visitor_totals (
    kind INTEGER NOT NULL, key TEXT NOT NULL, visitor_hash TEXT NOT NULL,
    n INTEGER NOT NULL, c REAL NOT NULL, r REAL NOT NULL, k REAL NOT NULL,
    PRIMARY KEY (kind, key, visitor_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS moment_totals (
    kind INTEGER NOT NULL, key TEXT NOT NULL, visitors INTEGER NOT NULL,
    n REAL NOT NULL, c REAL NOT NULL, r REAL NOT NULL, k REAL NOT NULL,
    nn REAL NOT NULL, cc REAL NOT NULL, rr REAL NOT NULL, kk REAL NOT NULL, rk REAL NOT NULL,
    cn REAL NOT NULL, rc REAL NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (
    hour INTEGER NOT NULL, grp TEXT NOT NULL, action TEXT NOT NULL,
    decisions INTEGER NOT NULL, conversions REAL NOT NULL, revenue REAL NOT NULL,
    cost REAL NOT NULL, rr REAL NOT NULL, kk REAL NOT NULL, rk REAL NOT NULL,
    PRIMARY KEY (hour, grp, action)) WITHOUT ROWID;
"""

# a visitor's first row under a key adds one visitor; each later change adds new - old
_MOMENT_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS agg_visitor_new AFTER INSERT ON visitor_totals BEGIN
    INSERT INTO moment_totals VALUES (NEW.kind, NEW.key, 1, NEW.n, NEW.c, NEW.r, NEW.k,
        NEW.n * NEW.n, NEW.c * NEW.c, NEW.r * NEW.r, NEW.k * NEW.k, NEW.r * NEW.k,
        NEW.c * NEW.n, NEW.r * NEW.c)
    ON CONFLICT DO UPDATE SET visitors = visitors + 1, n = n + excluded.n, c = c + excluded.c,
        r = r + excluded.r, k = k + excluded.k, nn = nn + excluded.nn, cc = cc + excluded.cc,
        rr = rr + excluded.rr, kk = kk + excluded.kk, rk = rk + excluded.rk,
        cn = cn + excluded.cn, rc = rc + excluded.rc;
END;
CREATE TRIGGER IF NOT EXISTS agg_visitor_change AFTER UPDATE ON visitor_totals BEGIN
    UPDATE moment_totals SET n = n + NEW.n - OLD.n, c = c + NEW.c - OLD.c,
        r = r + NEW.r - OLD.r, k = k + NEW.k - OLD.k,
        nn = nn + NEW.n * NEW.n - OLD.n * OLD.n, cc = cc + NEW.c * NEW.c - OLD.c * OLD.c,
        rr = rr + NEW.r * NEW.r - OLD.r * OLD.r, kk = kk + NEW.k * NEW.k - OLD.k * OLD.k,
        rk = rk + NEW.r * NEW.k - OLD.r * OLD.k, cn = cn + NEW.c * NEW.n - OLD.c * OLD.n,
        rc = rc + NEW.r * NEW.c - OLD.r * OLD.c
    WHERE kind = NEW.kind AND key = NEW.key;
END;
"""

_LOG_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS agg_decision AFTER INSERT ON decisions BEGIN
    INSERT INTO visitor_totals VALUES (0, NEW.grp, NEW.visitor_hash, 1, 0, 0, 0)
        ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO visitor_totals VALUES (1, NEW.action, NEW.visitor_hash, 1, 0, 0, 0)
        ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO hourly VALUES (CAST(NEW.ts / 3600 AS INTEGER), NEW.grp, NEW.action,
        1, 0, 0, 0, 0, 0, 0) ON CONFLICT DO UPDATE SET decisions = decisions + 1;
END;
CREATE TRIGGER IF NOT EXISTS agg_closed AFTER INSERT ON closed
WHEN NEW.converted != 0 OR NEW.cost != 0 BEGIN
    UPDATE visitor_totals SET c = c + NEW.converted, r = r + NEW.order_value * NEW.converted,
        k = k + NEW.cost
    WHERE kind = 0 AND (key, visitor_hash) =
        (SELECT grp, visitor_hash FROM decisions WHERE event_id = NEW.event_id);
    UPDATE visitor_totals SET c = c + NEW.converted, r = r + NEW.order_value * NEW.converted,
        k = k + NEW.cost
    WHERE kind = 1 AND (key, visitor_hash) =
        (SELECT action, visitor_hash FROM decisions WHERE event_id = NEW.event_id);
    UPDATE hourly SET conversions = conversions + NEW.converted,
        revenue = revenue + NEW.order_value * NEW.converted, cost = cost + NEW.cost,
        rr = rr + (NEW.order_value * NEW.converted) * (NEW.order_value * NEW.converted),
        kk = kk + NEW.cost * NEW.cost, rk = rk + NEW.order_value * NEW.converted * NEW.cost
    WHERE (hour, grp, action) = (SELECT CAST(ts / 3600 AS INTEGER), grp, action
                                 FROM decisions WHERE event_id = NEW.event_id);
END;
"""

# the backfill: the same totals computed from the log in one pass each (the visitor_totals
# inserts fire agg_visitor_new, which fills moment_totals)
_BACKFILL = """
INSERT INTO visitor_totals
SELECT {kind}, d.{key}, d.visitor_hash, COUNT(*), COALESCE(SUM(c.converted), 0),
       COALESCE(SUM(c.order_value * c.converted), 0), COALESCE(SUM(c.cost), 0)
FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id
GROUP BY d.{key}, d.visitor_hash;
"""
_BACKFILL_HOURLY = """
INSERT INTO hourly
SELECT CAST(d.ts / 3600 AS INTEGER) AS h, d.grp, d.action, COUNT(*),
       COALESCE(SUM(c.converted), 0), COALESCE(SUM(c.order_value * c.converted), 0),
       COALESCE(SUM(c.cost), 0), COALESCE(SUM(c.order_value * c.converted * c.order_value
       * c.converted), 0), COALESCE(SUM(c.cost * c.cost), 0),
       COALESCE(SUM(c.order_value * c.converted * c.cost), 0)
FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id
GROUP BY h, d.grp, d.action;
"""


def installed(db: sqlite3.Connection) -> bool:
    """Whether this store keeps the aggregates (a read-only store written by an older
    cartwheel may not: its report then falls back to scanning the log)."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    return row is not None and row[0] == VERSION


def install(db: sqlite3.Connection) -> int:
    """Create the tables and triggers; when they are new, fill them from the log already
    there. Runs inside the caller's transaction (the store commits it). Returns how many
    decisions were backfilled (0 on a store that had the aggregates)."""
    if installed(db):
        return 0
    # not executescript, which would commit: one statement at a time, in the transaction
    for statement in _split(_TABLES + _MOMENT_TRIGGERS):
        db.execute(statement)
    # a half-installed store (a crash inside this transaction) cannot exist: it rolled back
    for kind, key in ((0, "grp"), (1, "action")):
        db.execute(_BACKFILL.format(kind=kind, key=key))
    db.execute(_BACKFILL_HOURLY)
    for statement in _split(_LOG_TRIGGERS):
        db.execute(statement)
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_KEY, VERSION))
    return int(db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def _split(script: str) -> list[str]:
    """The statements of ``script``; a trigger's body ends with ``END;`` on its own line."""
    out, part = [], []
    for line in script.strip().splitlines():
        part.append(line)
        text = "\n".join(part).strip()
        if sqlite3.complete_statement(text):
            out.append(text)
            part = []
    return out


def moment_rows(db: sqlite3.Connection, by: str, margin: float) -> list[tuple]:
    """What :func:`bandit.store_queries.moment_sums` returns, read from ``moment_totals``:
    per key, visitors, n, c, r, k, p and nn, cc, rr, kk, pp, cn, rc (``p = margin r - k``)."""
    kind = {"grp": 0, "action": 1}[by]
    return db.execute(
        "SELECT key, visitors, n, c, r, k, :m * r - k, nn, cc, rr, kk, "
        ":m * :m * rr - 2 * :m * rk + kk, cn, rc FROM moment_totals WHERE kind = :kind "
        "ORDER BY key", {"m": margin, "kind": kind}).fetchall()


def hourly_rows(db: sqlite3.Connection, since_hour: int) -> list[tuple]:
    """(hour, group, action, decisions, conversions, revenue, cost, rr, kk, rk) of every hour
    from ``since_hour`` on, in hour order (a range of the primary key)."""
    return db.execute("SELECT hour, grp, action, decisions, conversions, revenue, cost, rr, kk, "
                      "rk FROM hourly WHERE hour >= ? ORDER BY hour, grp, action",
                      (since_hour,)).fetchall()


def last_hour(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT MAX(hour) FROM hourly").fetchone()
    return None if row is None or row[0] is None else int(row[0])
