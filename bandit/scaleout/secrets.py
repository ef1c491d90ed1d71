"""The secrets a scaled-out shop's processes share, never through Redis (docs/scale-out.md,
"Secrets"): the hash key (``CARTWHEEL_HASH_KEY``: visitor and order id hashes), the bus key
(``CARTWHEEL_BUS_KEY``: authenticates every entry, snapshot and spend record on the bus), the
write token (``CARTWHEEL_TOKEN``: outcomes) and the bus URL (``CARTWHEEL_BUS_URL``, which may
hold Redis's password). Each comes from the environment, or from the same name in a 0600
secrets file (``--secrets FILE``, lines ``NAME=value``); the environment wins. Replicas and
the trainer refuse to start without the hash and bus keys, naming them.

>>> redact("redis://cartwheel:s3cret@10.0.0.5:6379/0")
'redis://cartwheel:***@10.0.0.5:6379/0'
>>> redact("rediss://:s3cret@redis.internal/1"), redact("redis://127.0.0.1:6379/0")
('rediss://:***@redis.internal/1', 'redis://127.0.0.1:6379/0')
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from bandit.domain.errors import CartwheelError
from bandit.domain.secrets import Secret

NAMES = ("CARTWHEEL_HASH_KEY", "CARTWHEEL_BUS_KEY", "CARTWHEEL_TOKEN", "CARTWHEEL_BUS_URL",
         "CARTWHEEL_BUS_KEY_PREVIOUS", "CARTWHEEL_TOKEN_PREVIOUS")
_PASSWORD = re.compile(r"^(\w+://[^:/@]*:)([^@]*)(@)")


def redact(url: str) -> str:
    """``url`` without its password (for errors, ``/healthz``, logs and banners)."""
    return _PASSWORD.sub(r"\1***\3", url)


@dataclass(frozen=True)
class ShopSecrets:
    """What one process of a scaled-out shop holds (see the module docstring)."""

    hash_key: str
    bus_key: bytes
    token: str | None
    bus_url: str | None
    #: the bus key a rotation replaces: still accepted on what is read, never used to sign
    bus_key_previous: bytes | None = None


def _read_file(path) -> dict[str, str]:
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise CartwheelError(f"--secrets {path}: not a regular file", field="secrets")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CartwheelError(f"--secrets {path} may be read by other users (mode {mode:o}): "
                             f"run `chmod 600 {path}`", field="secrets")
    values = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not eq or name.strip() not in NAMES:
            raise CartwheelError(f"--secrets {path}, line {n}: expected NAME=value with a "
                                 f"NAME of {', '.join(NAMES)}", field="secrets")
        values[name.strip()] = value.strip()
    return values


def load(secrets_file=None, environ=None) -> ShopSecrets:
    """The shop's secrets from the environment and ``secrets_file``; refuses without the hash
    and bus keys, naming the missing ones."""
    environ = os.environ if environ is None else environ
    kept = _read_file(secrets_file) if secrets_file else {}
    value = {name: (environ.get(name, "").strip() or kept.get(name, "")) for name in NAMES}
    missing = [name for name in NAMES[:2] if not value[name]]
    if missing:
        raise CartwheelError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: every "
            "process of a scaled-out shop (replicas and the trainer) needs the same hash key "
            "and bus key, from the environment or a 0600 file given by --secrets (never "
            "through Redis). Moving a single process's shop to scale-out: its hash key is the "
            "data dir's hash_key file (give it as CARTWHEEL_HASH_KEY: the same visitor hashes)",
            field=missing[0])
    token = value["CARTWHEEL_TOKEN"] or None
    if token is not None and value["CARTWHEEL_TOKEN_PREVIOUS"]:
        token = Secret(token, previous=(value["CARTWHEEL_TOKEN_PREVIOUS"],))
    return ShopSecrets(value["CARTWHEEL_HASH_KEY"], value["CARTWHEEL_BUS_KEY"].encode(), token,
                       value["CARTWHEEL_BUS_URL"] or None,
                       value["CARTWHEEL_BUS_KEY_PREVIOUS"].encode() or None)
