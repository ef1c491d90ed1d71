"""The dashboard's routes on ``cartwheel serve`` (and ``cartwheel train``): the page at ``/``,
``/login`` and ``/logout``, ``GET /v1/segments``, and the read check that the report shares
(see :mod:`bandit.http.dashboard` for the session cookie and the page's security)."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bandit.http import api, preview
from bandit.http.auth import TOKEN, bearer_authorized
from bandit.http.dashboard import (
    COOKIE,
    COOKIE_MAX_AGE_S,
    render,
    session_value,
    sign_in_page,
)
from bandit.http.responses import error_response
from bandit.http.routes import ENGINE

log = logging.getLogger("cartwheel.dashboard")
SEGMENTS = web.AppKey("segments", object)
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def _token(request: web.Request) -> str | None:
    return request.app[TOKEN]


def readable(request: web.Request) -> bool:
    """Whether the request may read the shop's figures: no token configured, the bearer
    token, or the session cookie that ``/login`` set."""
    token = _token(request)
    if token is None or bearer_authorized(request, token):  # the bearer check outcomes use
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode(), session_value(token).encode())


def refused(request: web.Request) -> web.Response | None:
    """The 401 of a read that :func:`readable` refuses (None when it may read)."""
    if readable(request):
        return None
    return error_response(401, "unauthorized", f"{request.path} needs the shop's token: "
                  "'Authorization: Bearer <token>', or open the /login?token=... link "
                  "`cartwheel serve` printed (it sets a session cookie)", "Authorization")


def _html(body: str, status: int = 200, csp: str | None = None) -> web.Response:
    headers = dict(_HEADERS)
    if csp:
        headers["Content-Security-Policy"] = csp
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8",
                        headers=headers)


async def page(request: web.Request) -> web.Response:
    if not readable(request):
        return _html(sign_in_page(
            "This shop's dashboard needs its token. Open the /login?token=... link that "
            "`cartwheel serve` printed when it started (the token is in the data directory's "
            "'token' file, the [server] token setting or CARTWHEEL_TOKEN)."), 401)
    body, csp = render()
    return _html(body, csp=csp)


async def login(request: web.Request) -> web.Response:
    token = _token(request)
    if token is None:
        return _redirect()  # nothing to sign in to
    given = request.query.get("token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        log.warning("dashboard sign-in refused (wrong or missing token)")
        return _html(sign_in_page("That link's token is not this shop's token. Use the "
                                  "/login?token=... link `cartwheel serve` printed."), 401)
    response = _redirect()
    response.set_cookie(COOKIE, session_value(token), max_age=COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="Strict", secure=request.secure)
    return response


async def logout(request: web.Request) -> web.Response:
    response = _redirect()
    response.del_cookie(COOKIE, path="/")
    return response


def _redirect() -> web.Response:
    """303 to the page (returned, not raised: the route guard turns raised HTTP errors into
    the JSON error shape)."""
    return web.Response(status=303, headers={**_HEADERS, "Location": "/"})


async def segments(request: web.Request) -> web.Response:
    denied = refused(request)
    if denied is not None:
        return denied
    # ?placement=ID: that placement's model (the shop's first by default)
    result = await request.app[SEGMENTS](request.query.get("placement"))
    return web.Response(content_type="application/json", body=api.encode(result.to_dict()))


async def create_preview(request: web.Request) -> web.Response:
    """``POST /v1/preview {"actions": {placement: action}}``: a preview link's token, for
    whoever may read the dashboard (:mod:`bandit.http.preview`)."""
    denied = refused(request)
    if denied is not None:
        return denied
    if request.content_type != "application/json":
        return error_response(415, "unsupported_media_type", "Content-Type must be "
                              "application/json", "Content-Type")
    req = preview.decode_request(await request.read())
    preview.check(request.app[ENGINE].config, req.actions)
    token, expires = preview.sign(request.app[preview.KEY], req.actions)
    return web.Response(content_type="application/json", body=api.encode(
        {"token": token, "expires_at": expires, "query": f"cw_preview={token}"}),
        headers={"Cache-Control": "no-store"})


ROUTES = (("GET", "/", page), ("GET", "/login", login), ("GET", "/logout", logout),
          ("GET", "/v1/segments", segments), ("POST", "/v1/preview", create_preview))
