"""The dashboard's routes on ``cartwheel serve`` (and ``cartwheel train``): the page at ``/``,
``/login`` and ``/logout``, ``GET /v1/segments``, and the read check that the report shares
(see :mod:`bandit.http.dashboard` for the session cookie and the page's security)."""

from __future__ import annotations

import logging

from aiohttp import web

from bandit.domain.secrets import matches
from bandit.http import api, preview
from bandit.http.auth import READ_TOKEN, TOKEN, may_read
from bandit.http.dashboard import COOKIE, render, sign_in_page
from bandit.http.responses import error_response
from bandit.http.routes import ENGINE
from bandit.http.sessions import SESSION_TTL_S, SESSIONS

log = logging.getLogger("cartwheel.dashboard")
SEGMENTS = web.AppKey("segments", object)
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
#: the sign-in form's page: no script, no style, posts only to this server
_FORM_CSP = ("default-src 'none'; form-action 'self'; base-uri 'none'; "
             "frame-ancestors 'none'")


def readable(request: web.Request) -> bool:
    """Whether the request may read the shop's figures: no secret configured (``--no-auth``),
    ``Authorization: Bearer`` with the read secret or the write token, or a live session."""
    return may_read(request) or request.app[SESSIONS].valid(request.cookies.get(COOKIE, ""))


def refused(request: web.Request) -> web.Response | None:
    """The 401 of a read that :func:`readable` refuses (None when it may read)."""
    if readable(request):
        return None
    return error_response(401, "unauthorized", f"{request.path} needs the shop's read secret: "
                  "'Authorization: Bearer <secret>', or sign in at /login (the one-time link "
                  "`cartwheel serve` printed, or the form with the secret)", "Authorization")


def _html(body: str, status: int = 200, csp: str | None = None,
          headers: dict | None = None) -> web.Response:
    headers = {**_HEADERS, **(headers or {})}
    headers["Content-Security-Policy"] = csp or _FORM_CSP
    if csp is None:  # the sign-in form: its POST must carry this page's Origin, not "null"
        headers["Referrer-Policy"] = "same-origin"
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8",
                        headers=headers)


async def page(request: web.Request) -> web.Response:
    if not readable(request):
        return _html(sign_in_page(
            "This shop's dashboard needs its read secret: open the one-time link `cartwheel "
            "serve` printed, or enter the secret (the data directory's 'read_token' file, "
            "[server] read_token or CARTWHEEL_READ_TOKEN)."), 401)
    body, csp = render()
    return _html(body, csp=csp)


async def login_form(request: web.Request) -> web.Response:
    """``GET /login``: the form, or ``?code=``, the one-time link. A secret in the URL
    (``?token=``) never signs in: it would sit in logs, history and Referer headers."""
    if request.app[TOKEN] is None:
        return _redirect("/")  # nothing to sign in to
    code = request.query.get("code")
    if code is not None:
        if request.app[SESSIONS].redeem(code):
            return _signed_in(request)
        return _html(sign_in_page("That sign-in link was used already or has expired (links "
                                  "work once, for ten minutes): enter the read secret."), 401)
    if "token" in request.query:
        return _html(sign_in_page("A secret never travels in a URL (it would stay in logs and "
                                  "the browser's history): enter it here instead."), 400)
    return _html(sign_in_page("Enter the shop's read secret."))


async def login(request: web.Request) -> web.Response:
    """``POST /login`` with the form field ``token``: a session for the read secret. A foreign
    ``Origin`` is refused (the cookie is SameSite=Strict; no CSRF field is needed)."""
    if request.app[TOKEN] is None:
        return _redirect("/")
    origin = request.headers.get("Origin")
    schemes = {request.scheme} | ({"https"} if _behind_https(request) else set())
    if origin is not None and origin not in {f"{s}://{request.host}" for s in schemes}:
        return _html(sign_in_page("Sign in from this server's own page."), 403)
    sessions, address = request.app[SESSIONS], request.remote or ""
    wait = sessions.wait(address)
    if wait > 0:
        return _html(sign_in_page(f"Too many wrong secrets: try again in {wait:.0f} s."), 429,
                     headers={"Retry-After": str(int(wait) + 1)})
    form = await request.post()
    given = str(form.get("token", ""))
    read = request.app[READ_TOKEN] or request.app[TOKEN]
    if not matches(given, read):
        sessions.failed(address)
        log.warning("dashboard sign-in refused (wrong secret) from %s", address)
        return _html(sign_in_page("That is not this shop's read secret."), 401)
    sessions.succeeded(address)
    return _signed_in(request)


def _behind_https(request: web.Request) -> bool:
    return request.app[ENGINE].config.server.behind_https_proxy


def _signed_in(request: web.Request) -> web.Response:
    response = _redirect("/")
    secure = request.secure or _behind_https(request)
    response.set_cookie(COOKIE, request.app[SESSIONS].open(), max_age=int(SESSION_TTL_S),
                        path="/", httponly=True, samesite="Strict", secure=secure)
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session (server-side: its cookie no longer reads anything)."""
    request.app[SESSIONS].close(request.cookies.get(COOKIE, ""))
    response = _redirect("/login")
    response.del_cookie(COOKIE, path="/")
    return response


def _redirect(location: str) -> web.Response:
    """303 to ``location`` (returned, not raised: the route guard turns raised HTTP errors
    into the JSON error shape)."""
    return web.Response(status=303, headers={**_HEADERS, "Location": location})


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


ROUTES = (("GET", "/", page), ("GET", "/login", login_form), ("POST", "/login", login),
          ("GET", "/logout", logout), ("POST", "/logout", logout),
          ("GET", "/v1/segments", segments), ("POST", "/v1/preview", create_preview))
