"""Where the server's two secrets come from, and how a banner points at them without printing
them: the write token (outcomes, erasure, trusted decides) and the read secret (the shop's
figures). Each is configured (deprecated in the config file), set in the environment, or kept
in the data dir (:func:`bandit.store.keyfiles.kept_secret`); the one a rotation replaces is
accepted beside it (``*_PREVIOUS``: :class:`bandit.domain.secrets.Secret`).
"""

from __future__ import annotations

import logging
import os
import re
import secrets

from bandit.domain.secrets import Secret
from bandit.store.keyfiles import kept_secret

log = logging.getLogger("cartwheel.server")
TOKEN_FILE = "token"
READ_TOKEN_FILE = "read_token"
#: a configured secret shorter than this is accepted for one release, with a warning
MIN_SECRET = 32


def outcome_token(config, auth: bool = True, kept=None) -> tuple[str | None, str]:
    """The bearer token outcomes need, and where it came from: ``[server] token``, else a
    non-empty ``CARTWHEEL_TOKEN``, else ``kept()``: one process's token kept in its data dir
    (:func:`data_dir_token`), or the one the shop's processes share on a bus.
    ``auth=False`` (``--no-auth``) leaves outcomes open."""
    if not auth:
        return None, "none: outcomes are open to anyone who can reach this port (--no-auth)"
    if config.server.token:
        log.warning("[server] token in the config is deprecated: set CARTWHEEL_TOKEN (or let "
                    "cartwheel keep one in the data dir); a config file travels further than "
                    "a secret should")
    return _secret(config.server.token, "[server] token", config.source, "CARTWHEEL_TOKEN",
                   kept)


def read_secret(config, auth: bool, data_dir) -> tuple[str | None, str]:
    """The secret that reads the shop's figures (report, segments, dashboard, metrics) and
    where it came from: ``[server] read_token``, else ``CARTWHEEL_READ_TOKEN``, else one
    generated into ``<data dir>/read_token`` (32 random bytes; never the write token)."""
    if not auth:
        return None, "none (--no-auth): the figures are open too"
    return _secret(config.server.read_token, "[server] read_token", config.source,
                   "CARTWHEEL_READ_TOKEN", lambda: kept_secret(
                       data_dir, READ_TOKEN_FILE, lambda: secrets.token_urlsafe(32)))


def _secret(configured: str | None, key: str, config_source: str, env: str, kept
            ) -> tuple[Secret, str]:
    """The configured value, else the environment's ``env``, else ``kept()``; with the one
    ``<env>_PREVIOUS`` names accepted beside it while a rotation rolls out."""
    if configured:
        value, source = _strong(configured, key), f"{key} in {config_source}"
    elif os.environ.get(env, "").strip():
        value, source = _strong(os.environ[env].strip(), env), env
    else:
        value, source = kept()
    return Secret(value, previous=(os.environ.get(f"{env}_PREVIOUS", "").strip(),)), source


def _strong(secret: str, name: str) -> str:
    if len(secret) < MIN_SECRET:
        log.warning("%s is %d characters: use at least %d random ones (generated secrets are 32 "
                    "random bytes); shorter ones are refused from the next release", name,
                    len(secret), MIN_SECRET)
    return secret


def token_hint(source: str) -> str:
    """How a banner shows the write token without printing it: a shell expression that reads
    it from where it is kept (no secret in a banner, a terminal's scrollback or a log).

    >>> token_hint("generated and kept in /srv/data/token")
    '$(cat /srv/data/token)'
    >>> token_hint("kept in /srv/data/token")
    '$(cat /srv/data/token)'
    >>> token_hint("CARTWHEEL_TOKEN")
    '$CARTWHEEL_TOKEN'
    """
    kept = re.search(r"(?:^|\s)kept in (\S+)$", source)
    if kept:
        return f"$(cat {kept.group(1)})"
    if source == "CARTWHEEL_TOKEN":
        return "$CARTWHEEL_TOKEN"
    return f"<the token: {source}>"


def data_dir_token(data_dir) -> tuple[str, str]:
    """The token kept in ``data_dir``, generated there on the first start (as Jupyter does;
    a kept file that is a symbolic link, or that other users may read or write, is refused:
    a planted or readable token would let anyone send outcomes)."""
    return kept_secret(data_dir, TOKEN_FILE, lambda: secrets.token_urlsafe(24))
