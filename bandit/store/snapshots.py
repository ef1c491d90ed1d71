"""Atomic model snapshots: ``snapshot-<updates>.npz`` (policy state) + ``.json`` (metadata).

Each file is written to a temporary name, fsynced and renamed; the JSON goes last and is the
commit marker, so a snapshot either exists whole or not at all, whatever kills the process.

>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> _ = write_snapshot(d, {"w": np.arange(3.0)}, {"update_count": 7})
>>> state, meta = latest_snapshot(d)
>>> state["w"].tolist(), meta["update_count"], meta["snapshot_version"]
([0.0, 1.0, 2.0], 7, 1)
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from bandit.store.datadir import FILE_MODE, private_dir

SNAPSHOT_VERSION = 1
KEEP = 3
log = logging.getLogger("cartwheel.snapshots")


def _fsync_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(directory, state: dict[str, np.ndarray], meta: dict) -> Path:
    """Write one snapshot atomically and prune all but the newest ``KEEP``; returns the JSON path."""
    directory = private_dir(Path(directory))
    meta = {**meta, "snapshot_version": SNAPSHOT_VERSION, "written_at": time.time()}
    stem = f"snapshot-{int(meta.get('update_count', 0)):012d}-{time.time_ns()}"
    _fsync_write(directory / f"{stem}.npz", lambda f: np.savez(f, **state))
    _fsync_write(directory / f"{stem}.json",
                 lambda f: f.write(json.dumps(meta, indent=2, sort_keys=True).encode()))
    _fsync_dir(directory)
    for old in sorted(directory.glob("snapshot-*.json"))[:-KEEP]:
        old.with_suffix(".npz").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return directory / f"{stem}.json"


class SnapshotWriter:
    """Writes snapshots on a thread of its own, so the caller (the server's event loop) never
    waits for the file writes and fsyncs. One at a time: a snapshot due while the previous is
    still being written is skipped (the next one comes soon, and the log fills any gap)."""

    def __init__(self, write=None):
        self.write = write or write_snapshot
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    @property
    def busy(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def submit(self, directory, state: dict[str, np.ndarray], meta: dict) -> bool:
        """Start writing (``state`` must not change afterwards); False when still busy."""
        if self.busy:
            return False
        self._report_failure()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="cartwheel-snapshot")
        self._pending = self._pool.submit(self.write, directory, state, meta)
        return True

    def wait(self) -> None:
        """Block until the snapshot being written, if any, is on disk."""
        if self._pending is not None:
            wait([self._pending])
            self._report_failure()

    def close(self) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()

    def _report_failure(self) -> None:
        done, self._pending = self._pending, None
        if done is not None and done.exception() is not None:
            # not fatal: the previous snapshot and the log still restore everything
            log.error("writing a snapshot failed: %s", done.exception())


def snapshots(directory):
    """The complete, readable, finite snapshots in ``directory`` as (path, state, meta), newest
    first. Any other one (truncated, empty, unreadable, from another snapshot version, or
    holding NaN or infinity) is skipped with a warning that names it: the engine then falls
    back to an older one, or re-learns from the log."""
    directory = Path(directory)
    for marker in sorted(directory.glob("snapshot-*.json"), reverse=True):
        try:
            meta = json.loads(marker.read_text())
            if not isinstance(meta, dict):
                raise ValueError("metadata is not a JSON object")
            with np.load(marker.with_suffix(".npz"), allow_pickle=False) as f:
                state = {k: f[k] for k in f.files}
        except Exception as exc:  # zip, EOF, JSON, OS errors: all mean "unreadable"
            log.warning("skipping snapshot %s: unreadable (%s: %s)", marker.name,
                        type(exc).__name__, exc)
            continue
        if meta.get("snapshot_version") != SNAPSHOT_VERSION:
            log.warning("skipping snapshot %s: snapshot version %r, this cartwheel reads %d",
                        marker.name, meta.get("snapshot_version"), SNAPSHOT_VERSION)
            continue
        bad = [k for k, v in state.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            log.warning("skipping snapshot %s: %s holds NaN or infinity", marker.name, bad[0])
            continue
        yield marker, state, meta


def latest_snapshot(directory) -> tuple[dict[str, np.ndarray], dict] | None:
    """The newest usable snapshot as (state, meta), or None when there is none."""
    for _, state, meta in snapshots(directory):
        return state, meta
    return None
