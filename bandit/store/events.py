"""EventStore: append-only SQLite (WAL) log of decisions, outcomes and closed (learned) events.

Schema: :mod:`bandit.store.schema` (the tables, their columns and indexes).

Schema 1 (cartwheel 0.1.0) stored contexts and outcome ids as sent;
:meth:`EventStore.rewrite_v1` (:mod:`bandit.store.v1`, called by :mod:`bandit.store.migration`)
rewrites them in one transaction (the only time rows are updated).

Durability: WAL with ``synchronous=NORMAL`` survives a killed process (FULL also survives power
loss). Writes are not committed one by one: callers batch them and call :meth:`commit` (group
commit), and acknowledge only after it returns. Faults are transactional: a write or commit
that fails (disk full, read-only file, I/O error) rolls back everything since the last commit
and raises :class:`~bandit.domain.errors.StorageError`; the store is usable again as soon as SQLite
can write.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path

from bandit.domain.errors import StorageError
from bandit.domain.records import LoggedEvent
from bandit.store import aggregates as store_aggregates
from bandit.store import queries as store_queries
from bandit.store import schema as store_schema
from bandit.store import v1 as store_v1
from bandit.store.datadir import FILE_MODE, private_dir, private_file
from bandit.store.rows import (
    DECISION_COLS,
    LEGACY_DECISION_COLS,
    NOTELESS_DECISION_COLS,
    ClosedEvent,
    StoredDecision,
    closed_join,
    closed_of,
    decision_of,
    eligible_json,
    encode,
)
from bandit.store.schema import ADDS_COLUMNS_ONLY, READABLE_VERSIONS, SCHEMA_VERSION
from bandit.store.wal import Checkpointer

# the background checkpoint is asked for after this many rows (SQLite's own default is after
# 1000 WAL pages; a decision row with the caps index dirties one or two pages)
CHECKPOINT_ROWS = 1000
_TABLES = ("decisions", "outcomes", "closed", "activations", "orders")
log = logging.getLogger("cartwheel.store")



class EventStore:
    """The durable log. Not thread-safe: use it from one thread (the engine's).

    ``background_checkpoints``: the process that writes the log (the engine) checkpoints the
    WAL from a :class:`Checkpointer` thread every ``CHECKPOINT_ROWS`` rows instead of inside a
    commit.
    """

    def __init__(self, path: str | Path, synchronous: str = "normal", visitor_index: bool = False,
                 background_checkpoints: bool = False, *, read_only: bool = False):
        self.path = Path(path)
        self._checkpointer = None
        self._unchecked_rows = 0  # rows written since the last checkpoint was asked for
        self._folded = None  # (decisions, closed) seq the aggregates hold; None: not kept
        # decisions seq up to which the final totals hold the log: committed, folded in the
        # open transaction, and asked for (mark_final)
        self._final = self._final_target = self._final_committed = 0
        if read_only:  # no schema or index changes, and any write raises
            if not self.path.exists():
                raise FileNotFoundError(f"no event log at {self.path}: `cartwheel serve "
                                        "--data-dir DIR` (or Engine.open) writes one; or point "
                                        "--data-dir at the right one")
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                      isolation_level=None, check_same_thread=False)
            self.schema_version = self._check_version(self.get_meta("schema_version"))
            self._columns(store_schema.columns(self.db, "decisions"))
            #: the report's aggregates, read (bandit.store.aggregates.Reader)
            self.aggregates = store_aggregates.Reader(self.db, self.path)
            return
        try:
            self._open_writable(synchronous, visitor_index, background_checkpoints)
        except sqlite3.Error as exc:  # read-only file or directory, full disk, not a database
            raise StorageError(f"cannot open the event log {self.path} for writing: {exc}; "
                               "check that its directory is writable and has free space")
        except OSError as exc:
            raise StorageError(f"cannot open the event log {self.path}: {exc.strerror}")

    def _open_writable(self, synchronous: str, visitor_index: bool,
                       background_checkpoints: bool) -> None:
        private_dir(self.path.parent)
        if not self.path.exists():  # SQLite gives its -wal and -shm files the same mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE))
        for part in ("", "-wal", "-shm"):
            private_file(self.path.with_name(self.path.name + part))
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        self.db.execute("PRAGMA busy_timeout=5000")
        store_schema.install(self.db, visitor_index)
        version = self.get_meta("schema_version")
        if version is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version in ADDS_COLUMNS_ONLY:  # install() added what is new: nothing else changes
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                            (str(SCHEMA_VERSION),))
            version = str(SCHEMA_VERSION)
        if self.get_meta(store_aggregates.WOULD_HAVE_SINCE_KEY) is None:
            # holdout rows carry would-have draws from here on (0: a new store, all of them)
            self.db.execute("INSERT INTO meta VALUES (?, ?)", (
                store_aggregates.WOULD_HAVE_SINCE_KEY, str(self.max_seq("decisions"))))
        self._columns(store_schema.columns(self.db, "decisions"))
        #: an older version is readable as it is; the engine migrates it (bandit.store.migration)
        self.schema_version = self._check_version(version)
        if not store_aggregates.installed(self.db):  # new, or written by an older cartwheel
            self._begin()
            backfilled = store_aggregates.install(self.db)
            self.commit()
            if backfilled:
                log.warning("%s: report aggregates built from %d logged decisions (once)",
                            self.path, backfilled)
        self._folded = store_aggregates.folded(self.db)
        self._final = self._final_target = store_aggregates.final_folded(self.db)
        self._final_committed = self._final
        self.aggregates = store_aggregates.Reader(self.db, self.path)
        if background_checkpoints:
            self.db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()
            # a store dropped without close() must not leave its thread and connection behind
            weakref.finalize(self, self._checkpointer.stop, wait=False)

    def _columns(self, present: set[str]) -> None:
        """The decision columns to read: a store written before placements (opened read-only,
        so not upgraded) reads as if every decision was made at the default placement."""
        self._decision_cols = (DECISION_COLS if "decision_notes" in present else
                               NOTELESS_DECISION_COLS if "placement" in present else
                               LEGACY_DECISION_COLS)
        self._closed_join = closed_join(self._decision_cols)
        self._would_have_cols = ("d.would_have_action, d.would_have_probability"
                                 if "would_have_action" in present else "NULL, NULL")

    @classmethod
    def read_only(cls, path: str | Path) -> "EventStore":
        """Open an existing log for reading only (reports beside a running server)."""
        return cls(path, read_only=True)

    def _check_version(self, version: str | None) -> int:
        if version is None:
            return SCHEMA_VERSION
        if int(version) not in READABLE_VERSIONS:
            raise RuntimeError(f"{self.path}: store schema version {version}; this cartwheel "
                               f"reads versions {READABLE_VERSIONS}: upgrade cartwheel")
        return int(version)

    # ------------------------------------------------------------ transactions
    def _begin(self, rows: int = 1):
        self._unchecked_rows += rows
        # SQLite's own flag, not one of ours: after some errors (disk full) SQLite has rolled
        # the transaction back by itself, and a stale flag of ours would let later writes
        # autocommit one by one
        if not self.db.in_transaction:
            self._run("BEGIN")

    def write(self, sql: str, params=(), many: bool = False) -> sqlite3.Cursor:
        """Run a write in the open transaction (begun if none is): what the store's
        maintenance modules (:mod:`bandit.store.erasure`, :mod:`bandit.store.retention`) use,
        so that their SQL stays in the store's package and its faults roll back alike."""
        self._begin()
        return self._run(sql, params, many)

    def _run(self, sql: str, params=(), many: bool = False) -> sqlite3.Cursor:
        """Execute a write; a storage fault rolls back the whole transaction and raises
        :class:`StorageError`, so nothing of a failed group stays behind."""
        try:
            return (self.db.executemany if many else self.db.execute)(sql, params)
        except sqlite3.IntegrityError:  # a bug, not a storage fault: rolled back, as it is
            self.rollback()
            raise
        except sqlite3.DatabaseError as exc:  # full, read-only, I/O, locked, corrupt
            self.rollback()
            raise StorageError(f"the event log cannot be written ({exc}); nothing of these "
                               "requests was stored: retry later") from exc

    def checkpoint_done(self) -> bool:
        """Whether the checkpoint thread finished a checkpoint the writer has not caught up
        with yet (its next commit copies the rest; the write after restarts the WAL)."""
        return self._checkpointer is not None and self._checkpointer.done

    def commit(self) -> None:
        """Make every write since the last commit durable (one commit for many requests).

        Raises :class:`StorageError` when SQLite cannot commit; everything since the last
        commit is then rolled back."""
        if not self.db.in_transaction:
            return
        folded = self._fold()
        self._run("COMMIT")
        self._folded, self._final_committed = folded, self._final
        if self._checkpointer is not None:
            if self._checkpointer.done:  # copy the rest: the next write restarts the WAL
                self._checkpointer.done = False
                try:
                    self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # committed already: a checkpoint can wait
                    log.warning("checkpoint after commit failed; the WAL keeps the rows")
            if self._unchecked_rows >= CHECKPOINT_ROWS:
                self._unchecked_rows = 0
                self._checkpointer.poke()

    def _fold(self):
        """Fold the rows of this transaction into the report's aggregates (in it, so a reader
        sees both or neither); returns what they then hold."""
        if self._folded is None:
            return None
        top = (self.max_seq("decisions"), self.max_seq("closed"))
        if top != self._folded:  # a fault rolls back and raises, as any write (_run)
            store_aggregates.fold(self._run, self._folded, top)
        if self._final_target > self._final:
            store_aggregates.fold_final(self._run, self._final, self._final_target)
            self._final = self._final_target  # (a failed commit resets it: rollback)
        return top

    @property
    def final_through(self) -> int:
        """Every decision up to this seq has its final outcome folded (committed)."""
        return self._final_committed

    def mark_final(self, seq: int) -> None:
        """Every decision up to ``seq`` has a final outcome (its window passed and it is
        closed): folded into the final totals with the group's commit."""
        if seq > self._final_target:
            self._begin()  # the fold needs a transaction to commit with, even an empty one
            self._final_target = seq

    def rollback(self) -> None:
        """Drop every write since the last commit (no-op when nothing is pending)."""
        self._final = self._final_target = self._final_committed
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite may have rolled back already, or cannot now
                log.warning("rollback failed; SQLite discards the transaction itself")

    @property
    def pending(self) -> bool:
        """Whether writes are waiting for :meth:`commit`."""
        return self.db.in_transaction

    def close(self) -> None:
        try:
            self.commit()
        except StorageError:
            log.error("closing the store with writes that could not be committed (dropped)")
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.db.close()  # the last connection to close checkpoints and removes the WAL

    # ------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._begin()
        self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def rewrite_v1(self, normalize, hash_id, chunk: int = 10_000) -> tuple[int, int]:
        """Schema 1 -> 2 in one transaction (:func:`bandit.store.v1.rewrite`)."""
        return store_v1.rewrite(self, normalize, hash_id, SCHEMA_VERSION, chunk)

    # ------------------------------------------------------------ writes
    def add_decisions(self, events: list[LoggedEvent], eligible: list[tuple[str, ...]]) -> int:
        """Append decisions (one statement for the batch); returns the last ``seq``."""
        self._begin(len(events))
        self._run(
            "INSERT INTO decisions (event_id, ts, visitor_hash, context, eligible, action, "
            "probability, grp, model_version, randomized, placement, deferred, "
            "would_have_action, would_have_probability, decision_notes) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(e.event_id, e.ts, e.visitor_hash, encode(e.context), eligible_json(ids),
              e.action, e.probability, e.group, e.model_version, int(e.randomized),
              e.placement, int(e.deferred), e.would_have_action, e.would_have_probability,
              e.decision_notes)
             for e, ids in zip(events, eligible)], many=True)
        return self.max_seq("decisions")

    def add_outcome(self, event_id: str, ts: float, converted: bool, order_value: float,
                    outcome_id: str | None) -> None:
        self._begin()
        self._run("INSERT INTO outcomes (outcome_id, event_id, ts, converted, order_value) "
                        "VALUES (?,?,?,?,?)", (outcome_id, event_id, ts, int(converted), order_value))

    def add_closed(self, event_id: str, ts: float, reason: str, converted: bool,
                   order_value: float, cost: float, reward: float, learned: bool,
                   share: float = 1.0) -> int:
        """Record that an event closed; returns its ``closed.seq`` (the learning order)."""
        self._begin()
        cur = self._run(
            "INSERT INTO closed (event_id, ts, reason, converted, order_value, cost, reward, "
            "learned, share) VALUES (?,?,?,?,?,?,?,?,?)",
            (event_id, ts, reason, int(converted), order_value, cost, reward, int(learned),
             share))
        return int(cur.lastrowid)

    def add_activation(self, event_id: str, ts: float) -> None:
        """A deferred decision was shown (it carries the decision's visitor and action)."""
        self._begin()
        self._run("INSERT INTO activations (event_id, ts, visitor_hash, action) SELECT "
                  "event_id, ?, visitor_hash, action FROM decisions WHERE event_id = ?",
                  (ts, event_id))

    def add_order(self, outcome_id: str | None, ts: float, converted: bool, order_value: float,
                  event_ids: list[str]) -> None:
        """An order sent by visitor id: its record, and one outcome row (without an id) per
        decision it was attributed to."""
        self._begin(1 + len(event_ids))
        self._run("INSERT INTO orders (outcome_id, ts, converted, order_value, events) "
                  "VALUES (?,?,?,?,?)", (outcome_id, ts, int(converted), order_value,
                                         len(event_ids)))
        if event_ids:
            self._run("INSERT INTO outcomes (outcome_id, event_id, ts, converted, order_value) "
                      "VALUES (NULL,?,?,?,?)",
                      [(e, ts, int(converted), order_value) for e in event_ids], many=True)

    # ------------------------------------------------------------ reads
    def decision(self, event_id: str) -> StoredDecision | None:
        row = self.db.execute(f"SELECT {self._decision_cols} FROM decisions d "
                              "WHERE d.event_id = ?", (event_id,)).fetchone()
        return None if row is None else decision_of(row)

    def known_event_ids(self, event_ids: list[str]) -> set[str]:
        """The ones of ``event_ids`` the log holds a decision for."""
        found: set[str] = set()
        for start in range(0, len(event_ids), 500):
            part = event_ids[start:start + 500]
            found.update(row[0] for row in self.db.execute(
                f"SELECT event_id FROM decisions WHERE event_id IN ({', '.join('?' * len(part))})",
                part))
        return found

    def lookup(self, event_id: str, outcome_id: str | None) -> store_queries.EventState:
        """The event's state and where ``outcome_id`` was used, in one query
        (:func:`bandit.store.queries.event_state`)."""
        return store_queries.event_state(self.db, event_id, outcome_id)

    def order_seen(self, outcome_id: str) -> bool:
        """Whether ``outcome_id`` was recorded already (by visitor or for an event)."""
        return store_queries.order_seen(self.db, outcome_id)

    def visitor_open(self, visitor_hash: str, since: float, limit: int) -> list[StoredDecision]:
        """The visitor's decisions made at or after ``since`` that are still open and active
        (a deferred one only once activated), oldest first, at most ``limit`` (the newest)."""
        return [decision_of(r) for r in store_queries.visitor_open(
            self.db, self._decision_cols, visitor_hash, since, limit)]

    def spend_buckets(self, since: float, bucket_s: float) -> list[tuple[int, float]]:
        """Incentive cost of conversions closed at or after ``since``, summed per bucket of
        ``bucket_s`` seconds (bucket number = floor(ts / bucket_s)); read once at start."""
        return [(int(b), float(c)) for b, c in self.db.execute(
            "SELECT CAST(ts / ? AS INTEGER) AS b, SUM(cost) FROM closed WHERE converted = 1 AND "
            "cost > 0 AND ts >= ? GROUP BY b", (bucket_s, since))]

    def expired(self, cutoff: float, after_seq: int, upto_seq: int,
                limit: int = 10_000) -> list[tuple[StoredDecision, bool]]:
        """Open decisions made before ``cutoff`` with ``after_seq < seq <= upto_seq``, oldest
        first, each with whether it is active (a deferred one: activated). ``upto_seq`` is
        :meth:`last_seq_before` ``cutoff``: the log is in time order, so the events still
        inside their window, however many, are never scanned."""
        rows = self.db.execute(
            f"SELECT {self._decision_cols}, {store_queries.ACTIVE} FROM decisions d "
            "WHERE d.seq > ? AND d.seq <= ? AND d.ts < ? AND NOT EXISTS "
            "(SELECT 1 FROM closed c WHERE c.event_id = d.event_id) ORDER BY d.seq LIMIT ?",
            (after_seq, upto_seq, cutoff, limit)).fetchall()
        return [(decision_of(r), bool(r[-1])) for r in rows]

    def last_seq_before(self, cutoff: float, after_seq: int = 0) -> int:
        """The largest seq (at least ``after_seq``) of a decision made before ``cutoff``, by
        bisection over seq: ~log2(n) primary-key lookups, as the log is in time order (the
        engine never logs a time earlier than the one before)."""
        lo, hi = after_seq, self.max_seq("decisions")
        while lo < hi:
            mid = (lo + hi + 1) // 2
            seq, ts = self.db.execute("SELECT seq, ts FROM decisions WHERE seq >= ? ORDER BY seq "
                                      "LIMIT 1", (mid,)).fetchone()
            if ts < cutoff:
                lo = seq
            else:
                hi = mid - 1
        return lo

    def closed_ts(self, seq: int) -> float | None:
        """When the closed row ``seq`` closed (None for 0 or an unknown seq)."""
        row = self.db.execute("SELECT ts FROM closed WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else float(row[0])

    def last_decision_ts(self) -> float | None:
        row = self.db.execute("SELECT ts FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def oldest_open_seq(self, after_seq: int) -> int | None:
        """seq of the oldest decision after ``after_seq`` that is still open."""
        row = self.db.execute(
            "SELECT d.seq FROM decisions d WHERE d.seq > ? AND NOT EXISTS (SELECT 1 FROM closed c "
            "WHERE c.event_id = d.event_id) ORDER BY d.seq LIMIT 1", (after_seq,)).fetchone()
        return None if row is None else int(row[0])

    def closed_events(self, after_seq: int = 0, learned_only: bool = False,
                      placement: str | None = None, changing: float | None = None
                      ) -> Iterator[ClosedEvent]:
        """Closed events joined with their decisions (of one ``placement``, or all), in
        ``closed.seq`` order; ``changing`` (the default reward): only those that change a
        model that learned every decision with it already (a conversion, a reward other than
        the default, a deferred decision), not the expired rest."""
        query = (f"{self._closed_join} WHERE c.seq > ?"
                 + (" AND c.learned = 1" if learned_only else "")
                 + (" AND d.placement = ?" if placement is not None else "")
                 + (" AND (c.converted = 1 OR c.reward != ? OR d.deferred = 1)"
                    if changing is not None else "") + " ORDER BY c.seq")
        params = (after_seq, *([placement] if placement is not None else []),
                  *([changing] if changing is not None else []))
        for row in self.db.execute(query, params):
            yield closed_of(row)

    def closed_at(self, seqs: list[int]) -> list[ClosedEvent]:
        """The closed events with these ``closed.seq`` values, in the order given."""
        found = {}
        for chunk in range(0, len(seqs), 500):
            part = seqs[chunk:chunk + 500]
            query = f"{self._closed_join} WHERE c.seq IN ({', '.join('?' * len(part))})"
            for row in self.db.execute(query, part):
                found[row[0]] = closed_of(row)
        return [found[s] for s in seqs]

    # ------------------------------------------------------------ counting (store_queries)
    def cap_counts(self, query: store_queries.CapCounts, visitor_hashes, since,
                   holdout=None) -> list:
        return query.run(self.db, visitor_hashes, since, holdout)

    def rewards_by_group(self, after_seq: int, placement: str) -> dict:
        return store_queries.rewards_by_group(self.db, after_seq, placement)

    def decisions_with_rewards(self, after_seq: int = 0) -> Iterator[tuple]:
        return store_queries.decisions_with_rewards(
            self.db, after_seq, "d.placement" if self._decision_cols != LEGACY_DECISION_COLS
            else "'default'", self._would_have_cols)

    def decisions(self, after_seq: int = 0, placement: str | None = None
                  ) -> Iterator[StoredDecision]:
        """Decisions after ``after_seq`` (of one ``placement``, or all), in log order."""
        where = "d.seq > ?" + ("" if placement is None else " AND d.placement = ?")
        params = (after_seq,) if placement is None else (after_seq, placement)
        for row in self.db.execute(f"SELECT {self._decision_cols} FROM decisions d WHERE "
                                   f"{where} ORDER BY d.seq", params):
            yield decision_of(row)

    def count(self, table: str) -> int:
        if table not in _TABLES:
            raise ValueError(f"unknown table {table!r}")
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def open_count(self) -> int:
        """Decisions not closed yet, in O(log n): rows are never deleted, so each table's
        row count is its largest ``seq`` (a COUNT(*) would scan the log)."""
        return self.max_seq("decisions") - self.max_seq("closed")

    def max_seq(self, table: str) -> int:
        if table not in _TABLES:
            raise ValueError(f"unknown table {table!r}")
        return int(self.db.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {table}").fetchone()[0])
