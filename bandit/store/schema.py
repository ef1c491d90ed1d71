"""The event log's SQLite schema: its tables, their columns and the indexes a query needs.

Schema (``SCHEMA_VERSION`` 5; the log tables below are append-only, their rows never deleted
and updated only by an erasure, which blanks a visitor's rows in place; the report's aggregate tables in :mod:`bandit.store.aggregates` are derived from
them and updated by the fold before each commit):

* ``meta(key, value)``: schema version, the aggregates' fold marks and expiry's watermark
  (the hash key lives apart: :mod:`bandit.store.keyfiles`).
* ``decisions(seq, event_id, ts, visitor_hash, context, eligible, action, probability, grp,
  model_version, randomized, placement, deferred, would_have_action, would_have_probability,
  decision_notes)``:
  one row per ``decide``; ``placement`` is
  the decision point it was made at (``"default"`` in a shop without placements) and
  ``deferred`` says it waits for an ``activations`` row before it is learned, capped or charged; ``context`` is the JSON context,
  ``eligible`` the JSON list of eligible action ids, ``probability`` the probability with which
  ``action`` was drawn from them; only the salted visitor hash is stored, and the context as
  the model sees it (:meth:`bandit.domain.features.FeatureSpace.normalize_row`: undeclared categories
  as the unknown marker, numbers clipped, cyclic values modulo their period). A holdout row
  also holds the action a treated visitor would have got and its probability (never shown;
  NULL on treatment rows and on rows logged before schema 4). ``decision_notes`` is what a
  promotion gate noted when it decided the row (little-endian float64s, ``policies.gated``:
  which policy acted, each policy's probability of the action and value), passed back to it
  when the row is learned; NULL for other policies.
* ``outcomes(seq, outcome_id, event_id, ts, converted, order_value)``: every reported outcome;
  ``outcome_id`` is the keyed hash of the shop's id, unique when given (idempotency).
* ``activations(seq, event_id, ts, visitor_hash, action)``: a deferred decision the page showed
  (``POST /v1/activate``), once; its visitor and action are the decision's, so frequency caps
  count it from then on with an index of its own.
* ``orders(seq, outcome_id, ts, converted, order_value, events)``: an order sent by visitor id
  (``outcome_id`` its keyed hash, unique when given) and how many open decisions it closed; the
  ``outcomes`` rows it wrote, one per decision, carry no id of their own.
* ``erasures(seq, ts, decisions)``: when a visitor was erased on request and how many of
  their decisions were blanked (:mod:`bandit.store.erasure`), nothing else.
* ``closed(seq, event_id, ts, reason, converted, order_value, cost, reward, learned, share)``:
  one row per event whose attribution ended (``reason`` = converted | expired | inactive, the
  last for a deferred decision never activated); ``learned`` says whether the reward fed the
  model (randomized treatment decisions only); ``share`` is 1/N when an order by visitor closed
  N decisions (the report counts that order once per visitor). Replaying ``learned`` rows in
  ``seq`` order after a snapshot's ``last_learned_seq`` restores the model exactly.

``seq`` is the rowid: rows are never deleted, so it only grows (no AUTOINCREMENT, whose
bookkeeping table would cost every commit one more page write). Indexes are only those a query
needs: each extra one is another page written per commit.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 5
#: versions this code reads; a writable open of an older one is migrated (2, 3, 4 -> 5 by
#: :func:`install`, which only adds columns and tables; 1 by the engine, bandit.store.migration)
READABLE_VERSIONS = (1, 2, 3, 4, 5)
#: versions :func:`install` brings to ``SCHEMA_VERSION`` by adding columns alone
ADDS_COLUMNS_ONLY = ("2", "3", "4")

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
CREATE TABLE IF NOT EXISTS activations (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, ts REAL NOT NULL,
    visitor_hash TEXT NOT NULL, action TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS erasures (
    seq INTEGER PRIMARY KEY, ts REAL NOT NULL, decisions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY, outcome_id TEXT UNIQUE, ts REAL NOT NULL,
    converted INTEGER NOT NULL, order_value REAL NOT NULL, events INTEGER NOT NULL);
"""
#: columns schemas 3, 4 and 5 added to older tables (``ALTER TABLE ... ADD COLUMN`` with a
#: default: SQLite changes no row for it, so the upgrade costs nothing on a large log)
ADDED_COLUMNS = (("decisions", "placement", "TEXT NOT NULL DEFAULT 'default'"),
                 ("decisions", "deferred", "INTEGER NOT NULL DEFAULT 0"),
                 ("closed", "share", "REAL NOT NULL DEFAULT 1.0"),
                 ("decisions", "would_have_action", "TEXT"),
                 ("decisions", "would_have_probability", "REAL"),
                 ("decisions", "decision_notes", "BLOB"))


def install(db: sqlite3.Connection, visitor_index: bool) -> None:
    """Create the tables if missing and bring the indexes to what this shop's queries need."""
    db.executescript(TABLES)
    for table, column, kind in ADDED_COLUMNS:
        if column not in columns(db, table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    # stores made by 0.1.0 before this change carry two indexes no query uses; every
    # commit paid a page write for each
    db.execute("DROP INDEX IF EXISTS decisions_ts")
    db.execute("DROP INDEX IF EXISTS outcomes_event")
    # frequency caps count a visitor's decisions of some actions in a window (bounded by
    # LIMIT: see store_queries.CapCounts); shops without caps need not pay for the index.
    # ``deferred`` makes it cover the count (a deferred decision counts once activated)
    db.execute("DROP INDEX IF EXISTS decisions_visitor")  # (visitor_hash, ts): older
    db.execute("DROP INDEX IF EXISTS decisions_visitor_action")  # without deferred: older
    if visitor_index:
        db.execute("CREATE INDEX IF NOT EXISTS decisions_caps "
                   "ON decisions(visitor_hash, action, ts, deferred)")
        db.execute("CREATE INDEX IF NOT EXISTS activations_caps "
                   "ON activations(visitor_hash, action, ts)")
        # a holdout visitor's would-have draws, counted for their caps: only holdout rows
        # have an entry (partial), so treatment rows pay no page write for it
        db.execute("CREATE INDEX IF NOT EXISTS decisions_would_have_caps ON decisions("
                   "visitor_hash, would_have_action, ts, deferred) "
                   "WHERE would_have_action IS NOT NULL")
    else:
        db.execute("DROP INDEX IF EXISTS decisions_caps")
        db.execute("DROP INDEX IF EXISTS activations_caps")
        db.execute("DROP INDEX IF EXISTS decisions_would_have_caps")
    # retention removes a decision's outcomes with it: found by their event
    db.execute("CREATE INDEX IF NOT EXISTS outcomes_by_event ON outcomes(event_id)")
    # an order sent by visitor id closes that visitor's open decisions: found by this index
    # (the caps' index orders a visitor's rows by action first, so a window is not a range)
    db.execute("CREATE INDEX IF NOT EXISTS decisions_visitor_ts ON decisions(visitor_hash, ts)")


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    """The column names ``table`` has."""
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
