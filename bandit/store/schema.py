"""The event log's SQLite schema: its tables, their columns and the indexes a query needs.

Schema (``SCHEMA_VERSION`` 2; the log tables below are append-only, their rows never updated
or deleted; the report's aggregate tables in :mod:`bandit.store.aggregates` are derived from
them and updated by the fold before each commit):

* ``meta(key, value)``: schema version and the generated privacy salt.
* ``decisions(seq, event_id, ts, visitor_hash, context, eligible, action, probability, grp,
  model_version, randomized)``: one row per ``decide``; ``context`` is the JSON context,
  ``eligible`` the JSON list of eligible action ids, ``probability`` the probability with which
  ``action`` was drawn from them; only the salted visitor hash is stored, and the context as
  the model sees it (:meth:`bandit.domain.features.FeatureSpace.normalize_row`: undeclared categories
  as the unknown marker, numbers clipped, cyclic values modulo their period).
* ``outcomes(seq, outcome_id, event_id, ts, converted, order_value)``: every reported outcome;
  ``outcome_id`` is the keyed hash of the shop's id, unique when given (idempotency).
* ``closed(seq, event_id, ts, reason, converted, order_value, cost, reward, learned)``: one row
  per event whose attribution ended (``reason`` = converted | expired); ``learned`` says whether
  the reward fed the model (randomized treatment decisions only). Replaying ``learned`` rows in
  ``seq`` order after a snapshot's ``last_learned_seq`` restores the model exactly.

``seq`` is the rowid: rows are never deleted, so it only grows (no AUTOINCREMENT, whose
bookkeeping table would cost every commit one more page write). Indexes are only those a query
needs: each extra one is another page written per commit.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2
#: versions this code reads; a writable open of an older one is migrated by the engine
READABLE_VERSIONS = (1, 2)

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, ts REAL NOT NULL,
    visitor_hash TEXT NOT NULL, context TEXT NOT NULL, eligible TEXT NOT NULL,
    action TEXT NOT NULL, probability REAL NOT NULL, grp TEXT NOT NULL,
    model_version INTEGER NOT NULL, randomized INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY, outcome_id TEXT UNIQUE, event_id TEXT NOT NULL,
    ts REAL NOT NULL, converted INTEGER NOT NULL, order_value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS closed (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, ts REAL NOT NULL,
    reason TEXT NOT NULL, converted INTEGER NOT NULL, order_value REAL NOT NULL,
    cost REAL NOT NULL, reward REAL NOT NULL, learned INTEGER NOT NULL);
"""


def install(db: sqlite3.Connection, visitor_index: bool) -> None:
    """Create the tables if missing and bring the indexes to what this shop's queries need."""
    db.executescript(TABLES)
    # stores made by 0.1.0 before this change carry two indexes no query uses; every
    # commit paid a page write for each
    db.execute("DROP INDEX IF EXISTS decisions_ts")
    db.execute("DROP INDEX IF EXISTS outcomes_event")
    # frequency caps count a visitor's decisions of some actions in a window (bounded by
    # LIMIT: see store_queries.CapCounts); shops without caps need not pay for the index
    db.execute("DROP INDEX IF EXISTS decisions_visitor")  # (visitor_hash, ts): older
    if visitor_index:
        db.execute("CREATE INDEX IF NOT EXISTS decisions_visitor_action "
                   "ON decisions(visitor_hash, action, ts)")
    else:
        db.execute("DROP INDEX IF EXISTS decisions_visitor_action")
