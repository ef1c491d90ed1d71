"""The SQLite event store: schema, indexes and background checkpoints."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from bandit.core.engine import new_event_ids
from bandit.domain.errors import StorageError
from bandit.domain.records import LoggedEvent
from bandit.store.events import CHECKPOINT_ROWS, EventStore

CTX = {"device": "mobile", "cart_value": 35.5, "page_type": "cart"}


def _decisions(n: int) -> list[LoggedEvent]:
    return [LoggedEvent(event_id, f"visitor-{i}", CTX, (True, True), 1, "a", 0.5, "treatment", 0,
                        True, 1_700_000_000.0 + i) for i, event_id in enumerate(new_event_ids(n))]


def _write(store: EventStore, rows: int, batch: int = 50) -> None:
    for _ in range(rows // batch):
        store.add_decisions(_decisions(batch), [("none", "a")] * batch)
        store.commit()


def _pages_in_main_file(path) -> int:
    """Pages the database file itself holds: only a checkpoint moves pages out of the WAL."""
    return path.stat().st_size // 4096


def test_background_checkpoints_copy_the_wal_while_the_writer_never_does(tmp_path):
    store = EventStore(tmp_path / "e.sqlite3", background_checkpoints=True)
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    before = _pages_in_main_file(store.path)
    _write(store, CHECKPOINT_ROWS // 2)  # not yet due: everything stays in the WAL
    time.sleep(0.2)
    assert _pages_in_main_file(store.path) == before
    _write(store, CHECKPOINT_ROWS)
    deadline = time.monotonic() + 20  # the thread runs on its own; give a loaded machine time
    while _pages_in_main_file(store.path) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pages_in_main_file(store.path) > before
    store.close()
    # closing stops the thread and the last connection folds the WAL in: nothing is lost
    assert not (tmp_path / "e.sqlite3-wal").exists()
    reopened = sqlite3.connect(tmp_path / "e.sqlite3")
    assert reopened.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == (
        CHECKPOINT_ROWS // 2 // 50 * 50 + CHECKPOINT_ROWS // 50 * 50)
    reopened.close()


def test_the_wal_restarts_although_the_writer_never_pauses(tmp_path):
    """A checkpoint on another connection always lags a busy writer; without the writer
    copying the rest, the WAL would never restart and grow with every row. Once the
    checkpoint thread has finished (waited for: how long it takes depends on the machine's
    load, what follows does not), the writer's next commit copies the rest and the WAL
    restarts: writing as much again reuses the file instead of growing it."""
    store = EventStore(tmp_path / "e.sqlite3", background_checkpoints=True)
    wal = tmp_path / "e.sqlite3-wal"
    _write(store, 10 * CHECKPOINT_ROWS)
    deadline = time.monotonic() + 60
    while not store.checkpoint_done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.checkpoint_done(), "the checkpoint thread never finished"
    _write(store, 50)  # the writer copies the frames written meanwhile...
    _write(store, 50)  # ...and this write starts the WAL from its beginning again
    size = wal.stat().st_size
    _write(store, CHECKPOINT_ROWS // 2)  # less than the WAL holds: no new room needed
    assert wal.stat().st_size == size
    store.close()


def test_only_indexes_that_queries_use(tmp_path):
    def indexes(store):
        return {r[0] for r in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}

    with_caps = EventStore(tmp_path / "a.sqlite3", visitor_index=True)
    assert indexes(with_caps) == {"decisions_caps", "activations_caps", "decisions_visitor_ts",
                                  "decisions_would_have_caps", "outcomes_by_event"}
    with_caps.close()
    # caps switched off in the config: their indexes go, commits stop paying for them; orders
    # sent by visitor id keep theirs, retention its own
    without = EventStore(tmp_path / "a.sqlite3", visitor_index=False)
    assert indexes(without) == {"decisions_visitor_ts", "outcomes_by_event"}
    without.close()


def test_a_read_only_store_beside_the_writer_changes_nothing(tmp_path):
    writer = EventStore(tmp_path / "e.sqlite3", visitor_index=True, background_checkpoints=True)
    _write(writer, 100)
    reader = EventStore.read_only(tmp_path / "e.sqlite3")
    assert reader.count("decisions") == 100
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DROP INDEX decisions_caps")
    with pytest.raises(StorageError, match="readonly"):
        reader.add_decisions(_decisions(1), [("none", "a")])
    reader.close()
    # the caps index of the serving process is still there
    assert writer.db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = "
                             "'decisions_caps'").fetchone()[0] == 1
    writer.close()


def test_report_on_a_missing_log_says_where_it_looked(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bandit.cli", "report", "--data-dir",
                           str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no event log at" in proc.stderr and "nowhere" in proc.stderr
    assert not (tmp_path / "nowhere").exists()  # looking created nothing


def test_last_seq_before_agrees_with_a_scan(tmp_path):
    store = EventStore(tmp_path / "e.sqlite3")
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.choice([0.0, 0.5, 1.0, 7.0], size=400))  # ties and jumps
    events = [LoggedEvent(e, "h", CTX, (True, True), 1, "a", 0.5, "treatment", 0, True, float(t))
              for e, t in zip(new_event_ids(len(times)), times)]
    store.add_decisions(events, [("none", "a")] * len(events))
    store.commit()
    for cutoff in rng.uniform(times[0] - 1, times[-1] + 1, 200):
        for after in (0, 57, 399):
            expected = max([after] + [i + 1 for i, t in enumerate(times) if t < cutoff])
            assert store.last_seq_before(float(cutoff), after) == expected
    store.close()


def test_snapshot_writer_writes_in_the_background_one_at_a_time(tmp_path, caplog):
    import threading

    from bandit.store.snapshots import SnapshotWriter, latest_snapshot, write_snapshot

    release, written = threading.Event(), []

    def slow_write(directory, state, meta):
        release.wait(10)
        written.append(meta["update_count"])
        return write_snapshot(directory, state, meta)

    writer = SnapshotWriter(slow_write)
    state = {"w": np.arange(5.0)}
    assert writer.submit(tmp_path / "snaps", state, {"update_count": 1}) and writer.busy
    assert not writer.submit(tmp_path / "snaps", state, {"update_count": 2})  # skipped
    release.set()
    writer.wait()
    assert written == [1] and latest_snapshot(tmp_path / "snaps")[1]["update_count"] == 1
    # a failed write is logged, not raised: the previous snapshot and the log restore all
    (tmp_path / "file").write_text("not a directory")
    assert writer.submit(tmp_path / "file" / "snaps", state, {"update_count": 3})
    writer.wait()
    assert "writing a snapshot failed" in caplog.text
    writer.close()
