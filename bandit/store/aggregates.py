"""The report's aggregates, folded in as rows are committed (with ``bandit.store.events``,
``bandit.store.queries`` and ``bandit.store.wal``, the only SQL of the project).

The report and the dashboard must cost O(hours + groups + actions), not O(decisions): a
shop's log grows by millions of rows a week and ``GET /v1/report`` is polled by a page. Several
tables hold what every report figure is a function of (docs/architecture.md, "Report
aggregates"):

* ``visitor_totals(grp, visitor_hash, n, c, r, k)``: per visitor (the unit of randomization
  between treatment and holdout) their decisions, conversions, revenue and incentive cost; an
  order sent by visitor id that closed N decisions adds ``1/N`` of its conversion and revenue
  per decision (``closed.share``), so it counts once per visitor;
* ``moment_totals(grp, visitors, n, c, r, k, nn, cc, rr, kk, rk, cn, rc)``: per group, the
  sums over its visitors of those totals, their squares and cross products (the Welch and
  delta-method intervals need nothing else; profit ``m r - k`` is expanded at read time, so
  a changed margin needs no rebuild), kept by triggers on ``visitor_totals``: a visitor's
  change from ``old`` to ``new`` adds ``new - old`` (``new**2 - old**2``);
* ``action_totals(grp, placement, action, decisions, conversions, revenue, cost, rr, kk, rk)``:
  per placement and action, per-decision sums (an action is drawn per decision, so a decision
  is its unit; an order closing decisions at two placements converts both);
* ``final_totals(grp, placement, action, <the same sums>)``: ``action_totals`` of the decisions
  whose outcome is final (their attribution window has passed and they are closed), folded as
  expiry moves its final watermark (:meth:`EventStore.mark_final`), so the report's per-action
  KPIs never count a young decision's early conversion before its neighbours' non-conversions
  (censoring; docs/offline-evaluation.md);
* ``hourly(hour, grp, placement, action, <the same sums>)``: per hour of the *decision*
  (``floor(ts / 3600)``), for uplift over time and the action mix;
* ``arm_totals(grp, placement, action, visitors, c, r, k, rr, kk, rk, ck)``: the per-action
  uplift's units (:mod:`bandit.insight.action_uplift`): per placement, each visitor's first
  (not deferred) decision there, under the action drawn for them (a holdout visitor's
  would-have draw), with that decision's final outcome; folded with ``final_totals`` (a first
  decision is final before any later one of its visitor). Visitors whose first decision was
  logged before would-have draws were (``meta`` key ``would_have_since``) are left out on both
  sides.

The store folds the rows of each transaction in right before it commits (:func:`fold`: a few
set statements per commit, none per row), so a reader sees the rows and their aggregates
together or neither, and a rolled-back group leaves both as they were. A store written
before the tables existed is folded whole, once, in one transaction, at its first writable
open (:func:`install`).
"""

from __future__ import annotations

import sqlite3

#: meta key whose presence says the aggregates are installed and filled
META_KEY = "aggregates"
#: 4: arm totals of the per-action uplift (an older store is folded again)
VERSION = "4"
#: meta key: the decisions seq after which holdout rows carry would-have draws (a store made
#: before them was upgraded at that seq)
WOULD_HAVE_SINCE_KEY = "would_have_since"
#: meta key: the decisions seq up to which ``final_totals`` holds the log
FINAL_KEY = "aggregates_final"
#: meta key: "decisions_seq closed_seq" up to which the log is folded into the aggregates
FOLDED_KEY = "aggregates_folded"

_SUMS = ("decisions INTEGER NOT NULL, conversions REAL NOT NULL, revenue REAL NOT NULL, "
         "cost REAL NOT NULL, rr REAL NOT NULL, kk REAL NOT NULL, rk REAL NOT NULL")
_TABLES = f"""
CREATE TABLE IF NOT EXISTS visitor_totals (
    grp TEXT NOT NULL, visitor_hash TEXT NOT NULL,
    n INTEGER NOT NULL, c REAL NOT NULL, r REAL NOT NULL, k REAL NOT NULL,
    PRIMARY KEY (grp, visitor_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS moment_totals (
    grp TEXT NOT NULL PRIMARY KEY, visitors INTEGER NOT NULL,
    n REAL NOT NULL, c REAL NOT NULL, r REAL NOT NULL, k REAL NOT NULL,
    nn REAL NOT NULL, cc REAL NOT NULL, rr REAL NOT NULL, kk REAL NOT NULL, rk REAL NOT NULL,
    cn REAL NOT NULL, rc REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS action_totals (
    grp TEXT NOT NULL, placement TEXT NOT NULL, action TEXT NOT NULL, {_SUMS},
    PRIMARY KEY (grp, placement, action)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS final_totals (
    grp TEXT NOT NULL, placement TEXT NOT NULL, action TEXT NOT NULL, {_SUMS},
    PRIMARY KEY (grp, placement, action)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS arm_totals (
    grp TEXT NOT NULL, placement TEXT NOT NULL, action TEXT NOT NULL,
    visitors INTEGER NOT NULL, c REAL NOT NULL, r REAL NOT NULL, k REAL NOT NULL,
    rr REAL NOT NULL, kk REAL NOT NULL, rk REAL NOT NULL, ck REAL NOT NULL,
    PRIMARY KEY (grp, placement, action)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (
    hour INTEGER NOT NULL, grp TEXT NOT NULL, placement TEXT NOT NULL, action TEXT NOT NULL,
    {_SUMS}, PRIMARY KEY (hour, grp, placement, action)) WITHOUT ROWID;
"""

# a visitor's first row adds one visitor; each later change adds new - old
_MOMENT_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS agg_visitor_new AFTER INSERT ON visitor_totals BEGIN
    INSERT INTO moment_totals VALUES (NEW.grp, 1, NEW.n, NEW.c, NEW.r, NEW.k,
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
    WHERE grp = NEW.grp;
END;
"""

# rows appended since the last fold, ``:a < seq <= :b``, one set statement per table; a
# visitor's decisions are folded before its closings, so its row exists when they arrive
_R = "c.order_value * c.converted"  # revenue of a closing
_CLOSINGS = ("FROM closed c JOIN decisions d ON d.event_id = c.event_id "
             "WHERE c.seq > :a AND c.seq <= :b AND (c.converted != 0 OR c.cost != 0)")
DECISION_FOLDS = [
    "INSERT INTO visitor_totals SELECT grp, visitor_hash, COUNT(*), 0, 0, 0 FROM decisions "
    "WHERE seq > :a AND seq <= :b GROUP BY grp, visitor_hash "
    "ON CONFLICT DO UPDATE SET n = n + excluded.n",
    *(f"INSERT INTO {table} SELECT {keys}, COUNT(*), 0, 0, 0, 0, 0, 0 FROM decisions "
      f"WHERE seq > :a AND seq <= :b GROUP BY {keys} "
      "ON CONFLICT DO UPDATE SET decisions = decisions + excluded.decisions"
      for table, keys in (("action_totals", "grp, placement, action"),
                          ("hourly", "CAST(ts / 3600 AS INTEGER), grp, placement, action")))]
CLOSED_FOLDS = [
    f"INSERT INTO visitor_totals SELECT d.grp, d.visitor_hash, 0, SUM(c.converted * c.share), "
    f"SUM({_R} * c.share), SUM(c.cost) {_CLOSINGS} GROUP BY d.grp, d.visitor_hash "
    "ON CONFLICT DO UPDATE SET c = c + excluded.c, r = r + excluded.r, k = k + excluded.k",
    *(f"INSERT INTO {table} SELECT {keys}, 0, SUM(c.converted), SUM({_R}), SUM(c.cost), "
      f"SUM(({_R}) * ({_R})), SUM(c.cost * c.cost), SUM({_R} * c.cost) {_CLOSINGS} "
      f"GROUP BY {keys} ON CONFLICT DO UPDATE SET "
      "conversions = conversions + excluded.conversions, revenue = revenue + excluded.revenue, "
      "cost = cost + excluded.cost, rr = rr + excluded.rr, kk = kk + excluded.kk, "
      "rk = rk + excluded.rk"
      for table, keys in (("action_totals", "d.grp, d.placement, d.action"),
                          ("hourly", "CAST(d.ts / 3600 AS INTEGER), d.grp, d.placement, "
                                     "d.action")))]


# decisions ``:a < seq <= :b`` became final: their sums, closed or not (one not closed yet was
# closed by expiry in this very transaction, or closes with the default: no conversion)
FINAL_FOLD = (
    f"INSERT INTO final_totals SELECT d.grp, d.placement, d.action, COUNT(*), "
    f"COALESCE(SUM(c.converted), 0), COALESCE(SUM({_R}), 0), COALESCE(SUM(c.cost), 0), "
    f"COALESCE(SUM(({_R}) * ({_R})), 0), COALESCE(SUM(c.cost * c.cost), 0), "
    f"COALESCE(SUM({_R} * c.cost), 0) FROM decisions d LEFT JOIN closed c "
    "ON c.event_id = d.event_id WHERE d.seq > :a AND d.seq <= :b "
    "GROUP BY d.grp, d.placement, d.action ON CONFLICT DO UPDATE SET "
    "decisions = decisions + excluded.decisions, "
    "conversions = conversions + excluded.conversions, revenue = revenue + excluded.revenue, "
    "cost = cost + excluded.cost, rr = rr + excluded.rr, kk = kk + excluded.kk, "
    "rk = rk + excluded.rk")


# of the decisions ``:a < seq <= :b`` that became final, each visitor's first (not deferred)
# one at its placement and in its group: the unit of the per-action uplift, under the action
# drawn for it (a holdout row's would-have draw), with its outcome (an order counts once: one
# decision per visitor; the (visitor_hash, ts) index finds earlier ones)
ARM_FOLD = (
    f"INSERT INTO arm_totals SELECT d.grp, d.placement, "
    "CASE d.grp WHEN 'holdout' THEN d.would_have_action ELSE d.action END, COUNT(*), "
    f"COALESCE(SUM(c.converted), 0), COALESCE(SUM({_R}), 0), COALESCE(SUM(c.cost), 0), "
    f"COALESCE(SUM(({_R}) * ({_R})), 0), COALESCE(SUM(c.cost * c.cost), 0), "
    f"COALESCE(SUM({_R} * c.cost), 0), COALESCE(SUM(c.converted * c.cost), 0) "
    "FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id "
    "WHERE d.seq > :a AND d.seq <= :b AND d.deferred = 0 "
    "AND (d.grp = 'treatment' OR d.would_have_action IS NOT NULL) "
    f"AND d.seq > COALESCE((SELECT CAST(value AS INTEGER) FROM meta "
    f"WHERE key = '{WOULD_HAVE_SINCE_KEY}'), 0) "
    "AND NOT EXISTS (SELECT 1 FROM decisions e WHERE e.visitor_hash = d.visitor_hash "
    "AND e.seq < d.seq AND e.placement = d.placement AND e.grp = d.grp AND e.deferred = 0) "
    "GROUP BY 1, 2, 3 ON CONFLICT DO UPDATE SET visitors = visitors + excluded.visitors, "
    "c = c + excluded.c, r = r + excluded.r, k = k + excluded.k, rr = rr + excluded.rr, "
    "kk = kk + excluded.kk, rk = rk + excluded.rk, ck = ck + excluded.ck")


def final_folded(db: sqlite3.Connection) -> int:
    """The decisions seq up to which ``final_totals`` holds the log."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (FINAL_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def fold_final(execute, upto: int, into: int) -> None:
    """Fold the decisions ``upto < seq <= into`` (now final) into ``final_totals``."""
    if into > upto:
        execute(FINAL_FOLD, {"a": upto, "b": into})
        execute(ARM_FOLD, {"a": upto, "b": into})
        execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (FINAL_KEY, str(into)))


def folded(db: sqlite3.Connection) -> tuple[int, int]:
    """(decisions seq, closed seq) up to which the aggregates hold the log."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (FOLDED_KEY,)).fetchone()
    return (0, 0) if row is None else tuple(int(v) for v in row[0].split())


def fold(execute, upto: tuple[int, int], into: tuple[int, int]) -> None:
    """Fold decisions ``upto[0] < seq <= into[0]`` and closings ``upto[1] < seq <= into[1]``
    into the aggregates and record ``into``, with ``execute(sql, params)`` inside the
    caller's transaction (the store folds right before it commits)."""
    if into[0] > upto[0]:
        for q in DECISION_FOLDS:
            execute(q, {"a": upto[0], "b": into[0]})
    if into[1] > upto[1]:
        for q in CLOSED_FOLDS:
            execute(q, {"a": upto[1], "b": into[1]})
    execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (FOLDED_KEY, f"{into[0]} {into[1]}"))


def installed(db: sqlite3.Connection) -> bool:
    """Whether this store keeps the aggregates (a store written by an older cartwheel gets
    them at its first writable open)."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    return row is not None and row[0] == VERSION


def install(db: sqlite3.Connection) -> int:
    """Create the tables and triggers; when they are new, fold the whole log already there
    into them. Runs inside the caller's transaction (the store commits it; a crash midway
    rolls it all back: never half-filled). Returns how many decisions were backfilled."""
    if installed(db):
        return 0
    # an older version's tables are dropped and folded again from the log
    for table in ("visitor_totals", "moment_totals", "action_totals", "hourly", "final_totals",
                  "arm_totals"):
        db.execute(f"DROP TABLE IF EXISTS {table}")  # its triggers go with it
    db.execute("DELETE FROM meta WHERE key IN (?, ?)", (FOLDED_KEY, FINAL_KEY))
    # not executescript, which would commit: one statement at a time, in the transaction
    for statement in _split(_TABLES + _MOMENT_TRIGGERS):
        db.execute(statement)
    top = tuple(int(db.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {t}").fetchone()[0])
                for t in ("decisions", "closed"))
    fold(db.execute, folded(db), top)
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_KEY, VERSION))
    return top[0]


def _split(script: str) -> list[str]:
    """The statements of ``script`` (a trigger's body holds semicolons of its own)."""
    out, part = [], []
    for line in script.strip().splitlines():
        part.append(line)
        text = "\n".join(part).strip()
        if sqlite3.complete_statement(text):
            out.append(text)
            part = []
    return out


class Reader:
    """The report's reads of the aggregates (``EventStore.aggregates``): each refuses a store
    written by a cartwheel before them, saying how to build them."""

    def __init__(self, db: sqlite3.Connection, path):
        self.db, self.path = db, path

    def _need(self) -> sqlite3.Connection:
        if not installed(self.db):
            raise RuntimeError(f"{self.path} was written by an older cartwheel and has no "
                               "report aggregates yet: start `cartwheel serve` (or any "
                               "command that opens it for writing) once to build them")
        return self.db

    def group_moments(self, margin: float) -> list[tuple]:
        """Per group, the visitor count and sums over per-visitor totals."""
        return moment_rows(self._need(), margin)

    def action_sums(self, placement: str | None = None) -> list[tuple]:
        """Per group and action, per-decision sums, at one ``placement`` or over all."""
        return action_rows(self._need(), placement)

    def placement_ids(self) -> list[str]:
        """The placements the log holds decisions at."""
        return placement_ids(self._need())

    def final_action_sums(self, placement: str | None = None) -> list[tuple]:
        """Per group and action, the sums of the decisions whose outcome is final, at one
        ``placement`` or over all."""
        return action_rows(self._need(), placement, table="final_totals")

    def arm_sums(self) -> list[tuple]:
        """(group, placement, action, visitors, c, r, k, rr, kk, rk, ck) of the per-action
        uplift's units whose outcome is final."""
        return self._need().execute(
            "SELECT grp, placement, action, visitors, c, r, k, rr, kk, rk, ck FROM arm_totals "
            "ORDER BY placement, action, grp").fetchall()

    def hourly(self, since_hour: int, placement: str | None = None) -> list[tuple]:
        """Per-decision sums per hour, group and action from ``since_hour`` on."""
        return hourly_rows(self._need(), since_hour, placement)

    def last_hour(self) -> int | None:
        """The newest hour (``floor(ts / 3600)``) with a decision."""
        return last_hour(self._need())


def moment_rows(db: sqlite3.Connection, margin: float) -> list[tuple]:
    """Per group: visitors, then the sums n, c, r, k, p, nn, cc, rr, kk, pp, cn, rc over its
    visitors' totals (``p = margin r - k``)."""
    return db.execute(
        "SELECT grp, visitors, n, c, r, k, :m * r - k, nn, cc, rr, kk, "
        ":m * :m * rr - 2 * :m * rk + kk, cn, rc FROM moment_totals ORDER BY grp",
        {"m": margin}).fetchall()


_SUM_COLS = ("SUM(decisions), SUM(conversions), SUM(revenue), SUM(cost), SUM(rr), SUM(kk), "
             "SUM(rk)")


def action_rows(db: sqlite3.Connection, placement: str | None = None,
                table: str = "action_totals") -> list[tuple]:
    """(group, action, decisions, conversions, revenue, cost, rr, kk, rk) per group and action,
    at one ``placement`` or summed over all (of every decision, or ``table="final_totals"``:
    of those whose outcome is final)."""
    if table not in ("action_totals", "final_totals"):
        raise ValueError(f"not an action table: {table!r}")
    where, params = ("WHERE placement = ?", (placement,)) if placement is not None else ("", ())
    return db.execute(f"SELECT grp, action, {_SUM_COLS} FROM {table} {where} "
                      "GROUP BY grp, action ORDER BY grp, action", params).fetchall()


def placement_ids(db: sqlite3.Connection) -> list[str]:
    """The placements the log has decisions at."""
    return [r[0] for r in db.execute("SELECT DISTINCT placement FROM action_totals "
                                     "ORDER BY placement")]


def hourly_rows(db: sqlite3.Connection, since_hour: int,
                placement: str | None = None) -> list[tuple]:
    """(hour, group, action, decisions, conversions, revenue, cost, rr, kk, rk) of every hour
    from ``since_hour`` on, in hour order (a range of the primary key), at one ``placement``
    or summed over all."""
    where = "hour >= ?" + ("" if placement is None else " AND placement = ?")
    params = (since_hour,) if placement is None else (since_hour, placement)
    return db.execute(f"SELECT hour, grp, action, {_SUM_COLS} FROM hourly WHERE {where} "
                      "GROUP BY hour, grp, action ORDER BY hour, grp, action",
                      params).fetchall()


def last_hour(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT MAX(hour) FROM hourly").fetchone()
    return None if row is None or row[0] is None else int(row[0])
