"""The bearer check that outcomes and the shop's figures share, and where the app keeps the token."""

from __future__ import annotations

from aiohttp import web

from bandit.domain.secrets import matches

TOKEN = web.AppKey("token", object)  # the shop's token (None: no auth, ``--no-auth``)
#: the secret that reads the shop's figures (report, segments, dashboard, metrics); None: the
#: write token alone does
READ_TOKEN = web.AppKey("read_token", object)


def bearer_authorized(request: web.Request, token: str) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries ``token`` (or one it replaces)."""
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    # the scheme is case-insensitive (RFC 9110); the token is compared in constant time
    return scheme.lower() == "bearer" and matches(given.strip(), token)
