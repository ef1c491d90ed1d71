"""A secret compared as secrets are: in constant time, and, while a rotation rolls out,
against the ones it replaces too (docs/security.md, "Rotating secrets")."""

from __future__ import annotations

import hmac


class Secret(str):
    """A secret, and the ones it replaces that are still accepted while a rotation rolls out
    (``CARTWHEEL_TOKEN_PREVIOUS``, ``CARTWHEEL_READ_TOKEN_PREVIOUS``: docs/security.md,
    "Rotating secrets"). Compares like the string it is.

    >>> s = Secret("new", previous=("old",))
    >>> matches("old", s), matches("new", s), matches("other", s), s == "new"
    (True, True, False, True)
    """

    previous: tuple[str, ...] = ()

    def __new__(cls, value: str, previous=()):
        secret = super().__new__(cls, value)
        secret.previous = tuple(p for p in previous if p and p != value)
        return secret


def matches(given: str, secret: str) -> bool:
    """Whether ``given`` is ``secret`` or one it replaces, each compared in constant time."""
    ok = False
    for known in (str(secret), *getattr(secret, "previous", ())):
        ok |= hmac.compare_digest(given.encode(), known.encode())
    return ok
