"""One process per data directory: an exclusive ``flock`` on ``<data dir>/lock``.

Two engines writing one event log would interleave their request groups and each learn half
of the outcomes; the lock refuses the second with what to do instead. The kernel drops the
lock when its process dies (SIGKILL included), so a crash never leaves a directory locked.

The data dir holds hashes, contexts and the token: it is the owner's alone. It is made (or
tightened to) mode 0700, everything cartwheel writes in it is 0600 (:func:`private_file`),
and the lock is never opened through a symbolic link (a planted ``lock -> ~/.bashrc`` would
otherwise have the file truncated).

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

import errno
import fcntl
import logging
import os
import stat
from pathlib import Path

from bandit.domain.errors import CartwheelError, StorageError

log = logging.getLogger("cartwheel.datadir")
#: what cartwheel's directories and files may be: the owner's alone
DIR_MODE, FILE_MODE = 0o700, 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700, or tighten an existing one to it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s was open to other users; made it private (0700)", path)
        path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> None:
    """Make an existing file of cartwheel's the owner's alone (0600)."""
    if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(FILE_MODE)


class DataDirLock:
    """Create ``path`` if needed and hold its lock until :meth:`release`."""

    def __init__(self, path):
        path = Path(path)
        try:
            private_dir(path)
            # never through a symbolic link, never truncating: the lock's content is nothing
            fd = os.open(path / "lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
            self._file = os.fdopen(fd, "w")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StorageError(f"{path / 'lock'} is a symbolic link: cartwheel does not "
                                   "follow it (remove it; cartwheel creates its own)") from None
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
