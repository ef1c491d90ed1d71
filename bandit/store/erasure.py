"""Erasing one visitor on request (with ``bandit.store.events`` and its siblings, the only SQL
of the project): ``cartwheel forget --visitor ID``, ``POST /v1/forget``.

What is erased: every trace that links a row to the person. Their decisions keep their place
in the log as anonymous records (the visitor hash and the context blanked; the action, its
probability and the outcome stay, linked to nobody), the keyed hashes of their order ids are
dropped, their activations lose the visitor hash, and the report's per-visitor totals row (the
only aggregate keyed by the visitor) is deleted. Rows are blanked rather than deleted because
the log's sequence numbers must only grow (SQLite reuses the largest rowid once deleted, and
expiry, learning and the report's folds count on it) and the report's counts stay as they were.
SQLite's ``secure_delete`` zeroes the old bytes inside the database pages, and a truncating
checkpoint drops the write-ahead log's older copies of those pages. The model is left as it
is: it holds sums over many visitors, not rows. Only the time and the count are recorded
(``erasures``). Backups and exports made before still hold the visitor: the caller says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger("cartwheel.store")

#: what an erasure cannot reach (said by the endpoint and the command)
NOTE = ("backups and exports made before this erasure still hold the visitor: erase them "
        "there too, or let them expire (docs/operations.md, \"Erasure\")")
#: what a blanked decision's visitor hash becomes: no keyed hash of any id is empty
FORGOTTEN = ""


@dataclass(frozen=True)
class Erased:
    """What one erasure changed."""

    decisions: int
    outcomes: int
    activations: int


def forget(store, visitor_hash: str, now: float) -> Erased:
    """Blank every row of ``visitor_hash`` in ``store`` (an
    :class:`~bandit.store.events.EventStore` with nothing pending), record the erasure's time
    and count, commit, and clear the write-ahead log of older copies (:func:`scrub`)."""
    if store.db.in_transaction:
        raise RuntimeError("commit the open writes before an erasure")
    run = store.write
    run("PRAGMA secure_delete = ON")  # overwritten and freed bytes are zeroed
    events = "SELECT event_id FROM decisions WHERE visitor_hash = :h"
    outcomes = run(f"UPDATE outcomes SET outcome_id = NULL WHERE event_id IN ({events}) "
                          "AND outcome_id IS NOT NULL", {"h": visitor_hash}).rowcount
    activations = run("UPDATE activations SET visitor_hash = :f WHERE visitor_hash = :h",
                             {"h": visitor_hash, "f": FORGOTTEN}).rowcount
    decisions = run("UPDATE decisions SET visitor_hash = :f, context = '{}' "
                           "WHERE visitor_hash = :h", {"h": visitor_hash, "f": FORGOTTEN}
                           ).rowcount
    # by its primary key (grp, visitor_hash): two lookups, not a scan of every visitor
    run("DELETE FROM visitor_totals WHERE grp IN ('treatment', 'holdout') AND visitor_hash = :h",
        {"h": visitor_hash})
    run("INSERT INTO erasures (ts, decisions) VALUES (?, ?)", (now, decisions))
    store.commit()
    if not scrub(store.db):
        log.warning("%s: the write-ahead log could not be emptied after an erasure (a long "
                    "read holds it); it is at the next checkpoint", store.path)
    return Erased(decisions, outcomes, activations)


def remove_meta(store, key: str) -> None:
    """Delete a meta entry for good: committed, its bytes zeroed in the database and the
    write-ahead log emptied (the hash key of an older store leaves this way)."""
    if store.db.in_transaction:
        raise RuntimeError("commit the open writes before removing a meta entry")
    store.write("PRAGMA secure_delete = ON")
    store.write("DELETE FROM meta WHERE key = ?", (key,))
    store.commit()
    scrub(store.db)


def scrub(db, attempts: int = 50) -> bool:
    """After the erasure's commit: copy the write-ahead log into the database and truncate it,
    so no older copy of an erased page stays on disk; then turn ``secure_delete`` off again.
    Returns whether the log was emptied (a long read elsewhere can hold it for a while)."""
    try:
        for _ in range(attempts):
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            time.sleep(0.05)
        return False
    finally:
        db.execute("PRAGMA secure_delete = OFF")


def erasures(db) -> list[tuple[float, int]]:
    """(time, decisions) of every erasure so far."""
    return db.execute("SELECT ts, decisions FROM erasures ORDER BY seq").fetchall()
