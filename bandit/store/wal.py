"""The WAL checkpointer of the event store: copies the write-ahead log back into the database
file from a thread of its own (part of the store: its SQL is a PRAGMA on its own connection)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("cartwheel.store")


class Checkpointer(threading.Thread):
    """Copies the WAL back into the database file from a thread of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, so every
    few dozen commits one of them copies thousands of pages while its requests wait. Here the
    bulk of the copy runs on this thread's own connection when :meth:`poke` says enough was
    written: a PASSIVE checkpoint never blocks the writer, and SQLite releases the GIL while
    it copies, so it runs beside the event loop. The WAL restarts from its beginning only when
    a write transaction starts while every frame is copied, which a busy writer, starting
    the next one at once, never sees; so once this thread is :attr:`done`, the writer copies
    the few frames written meanwhile itself (:meth:`EventStore.commit`) and its next write
    restarts the WAL. Durability never depends on checkpoints.
    """

    def __init__(self, path: Path):
        super().__init__(name="cartwheel-checkpoint", daemon=True)
        self.path = path
        self._due = threading.Event()
        self.done = False  # a checkpoint finished since the writer last caught up
        self._stopping = False

    def run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done = True
                except sqlite3.Error:  # e.g. disk full: the WAL keeps everything meanwhile
                    log.exception("background checkpoint failed; will retry")
        finally:
            db.close()

    def poke(self) -> None:
        """Ask for a checkpoint (one runs at a time; pokes meanwhile fold into the next)."""
        self._due.set()

    def stop(self, wait: bool = True) -> None:
        self._stopping = True
        self._due.set()
        if wait:
            self.join()
