"""Secrets a data dir keeps apart from its event log: the token and the hash key.

The hash key is the key of every visitor and order id hash. Kept in the event database beside
the hashes, anyone holding that one file could recover numeric ids by trying them all; so it
lives in ``<data dir>/hash_key`` (0600), or only in the environment (``CARTWHEEL_HASH_KEY``,
then nothing is written). A store of an older release kept it in ``meta``: the first start
moves it out (the same key: the holdout and the caps do not change) and scrubs it from the
database's bytes. ``[privacy] salt`` in a config keeps working for one release, with a
warning. A kept file that is a symbolic link, or that other users may read or write, is
refused: a planted or readable key (or token) is as good as none.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from bandit.domain.errors import CartwheelError
from bandit.store.erasure import remove_meta

log = logging.getLogger("cartwheel.engine")
HASH_KEY_FILE = "hash_key"
HASH_KEY_ENV = "CARTWHEEL_HASH_KEY"


def read_kept(data_dir, name: str) -> str | None:
    """The secret kept in ``<data_dir>/<name>``, or None when there is none."""
    path = Path(data_dir) / name
    if path.is_symlink():
        raise CartwheelError(f"{path} is a symbolic link: cartwheel does not follow it "
                             "(remove it: a new one is generated)")
    if not path.exists():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CartwheelError(
            f"{path} may be read or written by other users (mode {mode:o}): a secret others "
            f"can read is no secret. Run `chmod 600 {path}`, or remove it to have a new one "
            "generated (a new hash key starts new visitor hashes)")
    return path.read_text().strip()


def kept_secret(data_dir, name: str, generate) -> tuple[str, str]:
    """The secret kept in ``<data_dir>/<name>``, written there (0600) from ``generate()``
    on the first start; with where it came from."""
    kept = read_kept(data_dir, name)
    path = Path(data_dir) / name
    if kept is not None:
        return kept, f"kept in {path}"
    value = generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, f"generated and kept in {path}"


def hash_key(data_dir, store, *, configured: str | None = None,
             shared: str | None = None) -> tuple[str, str]:
    """The shop's hash key and where it came from: ``[privacy] salt`` (``configured``,
    deprecated), else ``CARTWHEEL_HASH_KEY``, else the one the shop's processes share on a bus
    (``shared``), else ``<data dir>/hash_key`` (generated on the first start, or moved there
    from an older store's ``meta``). Refuses a key that disagrees with the one the log was
    written with."""
    in_db = store.get_meta("salt")
    kept = read_kept(data_dir, HASH_KEY_FILE)
    env = os.environ.get(HASH_KEY_ENV, "").strip()
    if configured:
        log.warning("[privacy] salt in the config is deprecated: set %s, or let cartwheel "
                    "keep it in %s (0600)", HASH_KEY_ENV, Path(data_dir) / HASH_KEY_FILE)
        key, source = configured, "[privacy] salt"
    elif env:
        key, source = env, HASH_KEY_ENV
    elif shared:
        key, source = shared, "the bus"
    else:
        key, source = kept_secret(data_dir, HASH_KEY_FILE,
                                  lambda: in_db or secrets.token_hex(16))
        kept = key
    for other, where in ((kept, Path(data_dir) / HASH_KEY_FILE), (in_db, "the event log")):
        if other is not None and other != key:
            raise CartwheelError(f"the hash key from {source} is not the one {where} was "
                                 "written with: visitor hashes would not match (the holdout "
                                 "and caps would restart); use the same key")
    if in_db is not None:  # an older store: the key leaves the database, bytes and all (kept
        remove_meta(store, "salt")  # in the file above, or held by the config, env or bus)
        log.warning("the hash key left the event log (now from %s)", source)
    return key, source
