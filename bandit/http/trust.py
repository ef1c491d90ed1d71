"""Who may ask what (docs/integration.md, "Trusted and untrusted callers").

A decide that carries the shop's token (``Authorization: Bearer``: the shop's backend) is
*trusted*: it may pass ``eligible`` and no per-address limit applies to it. One without (a page)
is *untrusted*: it cannot narrow what is eligible (the shop's rules do that), and its client
address is held to ``[server] address_rate`` / ``address_burst``. With ``[server]
signed_requests``, an untrusted decide must also carry a *signed token* that the shop's backend
rendered into the page: the visitor id and the context fields the config marks ``trusted =
true`` are taken from it, and a request that says otherwise is refused (401). An activation
from a page needs one too.

A signed token is ``base64url(JSON {"v": visitor id, "c": {trusted fields}, "exp": epoch
seconds}) "." base64url(HMAC-SHA256(key, first part))``, the key being
``HMAC-SHA256(shop token, "cartwheel signed requests")``: only the shop's backend and cartwheel
hold it (:func:`sign_visitor` is the reference; docs/integration.md has it in Node too).

>>> token = sign_visitor("s3cret", "c0ffee", {"traffic_source": "email"}, ttl_s=60, now=0.0)
>>> verify(signing_key("s3cret"), token, now=30.0)
('c0ffee', {'traffic_source': 'email'})
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from bandit.domain.errors import CartwheelError
from bandit.http.sealed import SealError, derive_key, seal, unseal

SIGNING_KEY = web.AppKey("signing_key", object)


class UnsignedError(CartwheelError):
    """A signed-requests shop got a decide or activation without a valid token (401)."""

    code = "unsigned"


class ForbiddenFieldError(CartwheelError):
    """An untrusted caller sent what only the shop's backend may send (403)."""

    code = "forbidden"


def signing_key(token: str | None) -> bytes | None:
    """The key signed tokens are checked with (None: a shop without a token signs nothing)."""
    return derive_key(token.encode(), b"cartwheel signed requests") if token else None


def sign_visitor(shop_token: str, visitor_id: str, trusted: dict, ttl_s: float = 3600.0,
                 now: float | None = None) -> str:
    """A signed token for one visitor (what a shop's backend renders into its pages)."""
    return seal(signing_key(shop_token), {"v": visitor_id, "c": trusted}, ttl_s, now)[0]


_WHY = {"forged": "not signed with this shop's key", "unreadable": "unreadable",
        "expired": "expired; the page needs a freshly rendered one"}


def verify(key: bytes, token: str, now: float | None = None) -> tuple[str, dict]:
    """(visitor id, trusted context) of a signed token; :class:`UnsignedError` when it is
    forged, damaged or expired."""
    try:
        data = unseal(key, token, now)
        return str(data["v"]), dict(data["c"])
    except SealError as exc:
        raise UnsignedError(f"token: {_WHY[str(exc)]}", field="token") from None
    except (KeyError, TypeError, ValueError):
        raise UnsignedError("token: unreadable", field="token") from None


def check_decide(config, key: bytes | None, trusted: bool, req, reader: bool = False) -> None:
    """Refuse what an untrusted decide may not do (see the module docstring); in signed mode
    the request's visitor id and trusted fields must be the token's (the context then takes
    the token's values). ``explain`` (the model's scores) needs the token or, ``reader``, the
    read secret."""
    if req.explain and not (trusted or reader):
        raise ForbiddenFieldError("explain shows the model's scores: only for callers with the "
                                  "shop's token or read secret (Authorization: Bearer ...)",
                                  field="explain")
    if trusted:
        return
    if req.eligible is not None:
        raise ForbiddenFieldError("eligible may be sent only by the shop's backend, with its "
                                  "token (Authorization: Bearer ...); the shop's rules decide "
                                  "what a page's visitors are eligible for", field="eligible")
    if not config.server.signed_requests:
        return
    if key is None or req.token is None:
        raise UnsignedError("this shop requires signed requests: send the token its backend "
                            "rendered into the page (data-token)", field="token")
    visitor, context = verify(key, req.token)
    if req.visitor_id != visitor:
        raise UnsignedError("visitor_id is not the one the token was signed for",
                            field="visitor_id")
    for name in config.trusted_features:
        if name in req.context and (name not in context or req.context[name] != context[name]):
            raise UnsignedError(f"context.{name} is a trusted field: only the signed token "
                                "sets it", field=f"context.{name}")
        if name in context:
            req.context[name] = context[name]


def check_activate(config, key: bytes | None, trusted: bool, req) -> None:
    """An untrusted activation in signed mode needs a valid token of the shop."""
    if trusted or not config.server.signed_requests:
        return
    if key is None or req.token is None:
        raise UnsignedError("this shop requires signed requests: send the page's token",
                            field="token")
    verify(key, req.token)


def client_address(request: web.Request, proxies: frozenset) -> str:
    """The caller's address: the peer's, or, when the peer is one of the shop's trusted
    proxies, the last address in ``X-Forwarded-For`` that is not one of them."""
    peer = request.remote or ""
    if peer not in proxies:
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed(hops):
        if hop and hop not in proxies:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a garbled header: the proxy's own address then
    return peer
