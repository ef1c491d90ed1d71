"""Preview links: a signed-in shop user sees a chosen action at each placement on the live
pages, and nothing is logged or learned (docs/integration.md, "Preview").

``POST /v1/preview`` (read access: the dashboard's session or the token) signs
``{placement: action}`` for 15 minutes; the page carries the token in its address
(``?cw_preview=...``), the storefront script sends it with each decide, and decide answers
the previewed action (the placement's control where the link names none) with
``"preview": true``, without the engine: no event, no cap count, no learning.

A token is ``base64url(JSON payload) "." base64url(HMAC-SHA256)`` under a key derived from
the shop's token (a process without one signs with a key of its own, so its links work only
on it).

>>> key = b"k" * 32
>>> token, _ = sign(key, {"cart": "discount_10"}, now=1000.0)
>>> read(key, token, now=1100.0)
{'cart': 'discount_10'}
>>> read(key, token, now=1000.0 + PREVIEW_S + 1)
Traceback (most recent call last):
...
bandit.domain.errors.CartwheelError: preview: the link expired; create a new one on the dashboard
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import msgspec
from aiohttp import web

from bandit.domain.errors import CartwheelError
from bandit.http import api

#: how long a preview link works
PREVIEW_S = 15 * 60
KEY = web.AppKey("preview_key", bytes)


def key_of(token: str | None) -> bytes:
    """The signing key: derived from the shop's token (every process of the shop agrees on
    it), or random for a process without one."""
    secret = token.encode() if token else os.urandom(32)
    return hmac.new(secret, b"cartwheel preview links", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, actions: dict[str, str], now: float | None = None) -> tuple[str, float]:
    """A token previewing ``actions`` (placement id -> action id) and when it expires."""
    expires = (time.time() if now is None else now) + PREVIEW_S
    payload = _b64(json.dumps({"a": actions, "exp": expires}, sort_keys=True).encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}", expires


def read(key: bytes, token: str, now: float | None = None) -> dict[str, str]:
    """The actions a token previews (:class:`CartwheelError`, field ``preview``, when it is
    forged, damaged or expired)."""
    payload, _, mac = token.partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac.encode(), expected.encode()):
        raise CartwheelError("preview: not a preview link of this shop", field="preview")
    try:
        data = json.loads(_unb64(payload))
        actions, expires = dict(data["a"]), float(data["exp"])
    except (ValueError, KeyError, TypeError) as exc:  # signed, so ours: a bug, said plainly
        raise CartwheelError(f"preview: unreadable ({exc})", field="preview") from None
    if (time.time() if now is None else now) > expires:
        raise CartwheelError("preview: the link expired; create a new one on the dashboard",
                             field="preview")
    return actions


class PreviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Which action each placement shows in the preview."""

    actions: dict[str, str]


decode_request = msgspec.json.Decoder(PreviewRequest).decode


def check(config, actions: dict[str, str]) -> None:
    """Refuse a placement the shop does not have or an action not decided there."""
    if not actions:
        raise CartwheelError("actions: name at least one placement and its action",
                             field="actions")
    for placement_id, action in actions.items():
        placement = config.placement(placement_id)
        if action not in placement.actions:
            raise CartwheelError(f"actions: {action!r} is not decided at placement "
                                 f"{placement.id!r}; its actions: {list(placement.actions)}",
                                 field="actions")


def decision(config, key: bytes, req: api.DecideRequest) -> api.DecideResponse:
    """The previewed answer to a decide request that carries a preview token."""
    placement = config.placement(req.placement)
    actions = read(key, req.preview)
    action = actions.get(placement.id, placement.control)
    return api.DecideResponse("", action, 1.0, "treatment", 0, placement.id, preview=True)
