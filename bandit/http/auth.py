"""The bearer checks every route shares (write: outcomes, erasure, trusted decides; read: the
shop's figures), and where the app keeps the two secrets."""

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


def bearer_reads(request: web.Request) -> bool:
    """Whether the caller carries the read secret (the write token is :func:`may_write`)."""
    read = request.app[READ_TOKEN]
    return read is not None and bearer_authorized(request, read)


def may_write(request: web.Request) -> bool:
    """The shop's backend (the write token), or anyone when the shop runs without one
    (``--no-auth``)."""
    token = request.app[TOKEN]
    return token is None or bearer_authorized(request, token)


def may_read(request: web.Request) -> bool:
    """Whoever may write, or carries the read secret (a dashboard session is
    :func:`bandit.http.dashboard_routes.readable`'s)."""
    return may_write(request) or bearer_reads(request)
