"""Schema 1 -> 2 of the event store (:mod:`bandit.store.events`), called through
:meth:`EventStore.rewrite_v1` by :mod:`bandit.store.migration`: every stored context through
``normalize`` (dict -> dict) and every outcome id through ``hash_id``, in one transaction (the
only time log rows are updated), then a VACUUM so no page of the old rows survives."""

from __future__ import annotations

from bandit.store.rows import decode, encode


def rewrite(store, normalize, hash_id, version: int, chunk: int = 10_000) -> tuple[int, int]:
    """Rewrite ``store`` (an open, writable :class:`~bandit.store.events.EventStore` at schema 1) and
    mark it schema ``version``; returns how many contexts and outcome ids changed."""
    contexts = ids = 0
    # what is rewritten must not linger in freed space, old pages or the WAL
    store.db.execute("PRAGMA secure_delete = ON")
    store._begin()
    try:
        after = 0
        while True:
            rows = store.db.execute("SELECT seq, context FROM decisions WHERE seq > ? "
                                    "ORDER BY seq LIMIT ?", (after, chunk)).fetchall()
            if not rows:
                break
            updates = [(encode(normalize(decode(ctx))), seq) for seq, ctx in rows]
            changed = [(new, seq) for (new, seq), (_, old) in zip(updates, rows)
                       if new != bytes(old)]
            store._run("UPDATE decisions SET context = ? WHERE seq = ?", changed, many=True)
            contexts += len(changed)
            after = rows[-1][0]
        outcome_ids = store.db.execute("SELECT seq, outcome_id FROM outcomes WHERE "
                                       "outcome_id IS NOT NULL").fetchall()
        store._run("UPDATE outcomes SET outcome_id = ? WHERE seq = ?",
                   [(hash_id(oid), seq) for seq, oid in outcome_ids], many=True)
        ids = len(outcome_ids)
        store._run("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                   (str(version),))
        store.commit()
    except BaseException:
        store.rollback()
        raise
    store.schema_version = version
    store.db.execute("VACUUM")  # a fresh file: no page of the old rows survives
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return contexts, ids
