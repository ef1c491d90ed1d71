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

import os

import msgspec
from aiohttp import web

from bandit.domain.errors import CartwheelError
from bandit.http import api
from bandit.http.sealed import SealError, derive_key, seal, unseal

#: how long a preview link works
PREVIEW_S = 15 * 60
KEY = web.AppKey("preview_key", bytes)


def key_of(token: str | None) -> bytes:
    """The signing key: derived from the shop's token (every process of the shop agrees on
    it), or random for a process without one."""
    return derive_key(token.encode() if token else os.urandom(32), b"cartwheel preview links")


def sign(key: bytes, actions: dict[str, str], now: float | None = None) -> tuple[str, float]:
    """A token previewing ``actions`` (placement id -> action id) and when it expires."""
    return seal(key, {"a": actions}, PREVIEW_S, now)


_WHY = {"forged": "not a preview link of this shop", "unreadable": "unreadable",
        "expired": "the link expired; create a new one on the dashboard"}


def read(key: bytes, token: str, now: float | None = None) -> dict[str, str]:
    """The actions a token previews (:class:`CartwheelError`, field ``preview``, when it is
    forged, damaged or expired)."""
    try:
        data = unseal(key, token, now)
        return {str(k): str(v) for k, v in dict(data["a"]).items()}
    except SealError as exc:
        raise CartwheelError(f"preview: {_WHY[str(exc)]}", field="preview") from None
    except (KeyError, TypeError, ValueError):  # signed, so ours: said plainly
        raise CartwheelError("preview: unreadable", field="preview") from None


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
