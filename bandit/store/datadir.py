"""One process per data directory: an exclusive ``flock`` on ``<data dir>/lock``.

Two engines writing one event log would interleave their request groups and each learn half
of the outcomes; the lock refuses the second with what to do instead. The kernel drops the
lock when its process dies (SIGKILL included), so a crash never leaves a directory locked.

>>> import tempfile
>>> path = tempfile.mkdtemp()
>>> first = DataDirLock(path)
>>> DataDirLock(path)
Traceback (most recent call last):
...
bandit.domain.errors.CartwheelError: another cartwheel process is using ...; stop it or choose another --data-dir
>>> first.release(); DataDirLock(path).release()
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from bandit.domain.errors import CartwheelError, StorageError


class DataDirLock:
    """Create ``path`` if needed and hold its lock until :meth:`release`."""

    def __init__(self, path):
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._file = open(path / "lock", "w")
        except OSError as exc:
            raise StorageError(f"cannot use data dir {path}: {exc.strerror}; it must be a "
                               "directory cartwheel can write (check its permissions and free "
                               "space, or choose another --data-dir)") from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise CartwheelError(f"another cartwheel process is using {path}; stop it or "
                                 "choose another --data-dir") from None

    @property
    def held(self) -> bool:
        return not self._file.closed

    def release(self) -> None:
        """Unlock (idempotent)."""
        if self.held:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
