"""A consistent copy of a data dir while it serves: ``cartwheel backup DEST``.

The event log is copied with SQLite's online backup API in one step: a read transaction that
sees one committed state of the log while the server goes on writing (in WAL mode a reader
never blocks the writer; a copy in several steps would restart each time the server commits).
The model snapshots are copied first, so the copied log is at least as new as every copied
snapshot: a restore re-learns the log after them and never learns an event twice. The token
and the other small files come along, private (0600, in a 0700 directory); the lock does not.
A restore is starting ``cartwheel serve --data-dir DEST`` (docs/operations.md, "Backups").
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bandit.domain.errors import CartwheelError
from bandit.store.datadir import FILE_MODE, private_dir

LOG = "events.sqlite3"
#: files of a data dir that are not copied: the lock and SQLite's own side files (the copy is
#: one self-contained database)
SKIPPED = {"lock", f"{LOG}-wal", f"{LOG}-shm", f"{LOG}-journal"}
#: the data dir's secrets: copied only with ``with_secrets``
SECRETS = ("token", "hash_key")


@dataclass(frozen=True)
class Backup:
    """What one backup wrote."""

    path: Path
    decisions: int
    files: int
    bytes: int
    #: secrets the data dir has that were not copied
    left_out: tuple[str, ...] = ()


def backup(data_dir, dest, with_secrets: bool = False) -> Backup:
    """Copy ``data_dir`` to the new directory ``dest`` (refused when it holds anything); the
    secrets too with ``with_secrets``."""
    data_dir, dest = Path(data_dir), Path(dest)
    source = data_dir / LOG
    if not source.exists():
        raise CartwheelError(f"no event log at {source}: is {data_dir} a data dir?",
                             field="data_dir")
    if dest.exists() and any(dest.iterdir()):
        raise CartwheelError(f"{dest} is not empty: a backup goes into a new directory",
                             field="dest")
    private_dir(dest)
    files = 0
    left_out = tuple(name for name in SECRETS if not with_secrets and (data_dir / name).exists())
    for path in sorted(data_dir.rglob("*")):  # snapshots first: the log copied after is newer
        relative = path.relative_to(data_dir)
        # a file being written right now (".tmp") is not one yet; the JSON of a snapshot is
        # renamed last, so a snapshot whose JSON was copied is whole
        if (path.is_symlink() or relative.name in SKIPPED or relative.name == LOG
                or relative.name.endswith(".tmp") or str(relative) in left_out):
            continue
        target = dest / relative
        if path.is_dir():
            private_dir(target)
        else:
            private_dir(target.parent)
            try:
                shutil.copyfile(path, target)
            except FileNotFoundError:  # an old snapshot pruned meanwhile
                continue
            target.chmod(FILE_MODE)
            files += 1
    copy = dest / LOG
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(copy)
    try:
        copy.chmod(FILE_MODE)
        src.backup(dst)  # one step: one consistent state, the writer never waits
        (check,) = dst.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise CartwheelError(f"the copy at {copy} failed its check ({check}): keep the "
                                 "previous backup and retry", field="dest")
        decisions = int(dst.execute("SELECT COALESCE(MAX(seq), 0) FROM decisions").fetchone()[0])
    finally:
        src.close()
        dst.close()
    return Backup(dest, decisions, files + 1,
                  sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()), left_out)
