"""Signed, expiring tokens: what a preview link and a signed request both carry.

A token is ``base64url(JSON payload) "." base64url(HMAC-SHA256(key, first part))``, the JSON
compact with sorted keys and an ``exp`` (epoch seconds), so a shop's backend in any language
can make one (docs/integration.md, "Signed requests"). Keys are derived from a secret and a
label (:func:`derive_key`), so one secret serves several kinds of token that never open each
other.

>>> key = derive_key(b"s3cret", b"example")
>>> token, expires = seal(key, {"a": 1}, ttl_s=60, now=0.0)
>>> unseal(key, token, now=30.0)
{'a': 1, 'exp': 60.0}
>>> unseal(key, token, now=61.0)
Traceback (most recent call last):
...
bandit.http.sealed.SealError: expired
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


class SealError(ValueError):
    """Why a token does not open: ``forged`` (another key, or altered), ``unreadable``, or
    ``expired``."""


def derive_key(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, label, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def seal(key: bytes, data: dict, ttl_s: float, now: float | None = None) -> tuple[str, float]:
    """A token carrying ``data`` for ``ttl_s`` seconds, and when it expires."""
    expires = (time.time() if now is None else now) + ttl_s
    payload = _b64(json.dumps({**data, "exp": expires}, sort_keys=True,
                              separators=(",", ":")).encode())
    return f"{payload}.{_mac(key, payload)}", expires


def unseal(key: bytes, token: str, now: float | None = None) -> dict:
    """The data a token carries (its ``exp`` included); :class:`SealError` when it does not
    open (compared in constant time)."""
    payload, _, mac = token.partition(".")
    if not mac or not hmac.compare_digest(mac.encode(), _mac(key, payload).encode()):
        raise SealError("forged")
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        expires = float(data["exp"])
    except (ValueError, KeyError, TypeError):
        raise SealError("unreadable") from None
    if (time.time() if now is None else now) > expires:
        raise SealError("expired")
    return data
