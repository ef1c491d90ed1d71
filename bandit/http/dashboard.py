"""The dashboard: one read-only page at ``/`` over ``GET /v1/report`` and ``GET /v1/segments``,
the sign-in that lets a browser read them, and the same page as one file for sharing.

Sign-in (:mod:`bandit.http.sessions`): ``POST /login`` with the shop's read secret, or the
one-time link ``serve`` prints, opens a server-side session; the cookie holds only its id
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind an https proxy). The report, the
segments and the page accept the session or ``Authorization: Bearer`` with the read secret
(or the write token).

The page is static: its script and style are inlined and pinned by a Content-Security-Policy
hash, it talks to nothing but its own origin, and every value reaches the page as text
(never as markup), so a hostile action name or segment condition cannot become script.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib import resources

COOKIE = "cartwheel_session"
_PLACEHOLDER = re.compile(r"/\*(STYLE|SCRIPT|DATA)\*/")
#: the page's script, joined in this order into its one inline <script>: the kit (formats,
#: builders, charts), the panels, then the page's life (refresh, choices)
SCRIPTS = ("dashboard_kit.js", "dashboard_panels.js", "dashboard.js")


def link(url: str, code: str | None) -> str:
    """The link ``serve`` prints: a one-time sign-in code (not the secret), or the page when
    the shop has no secret (``--no-auth``).

    >>> link("http://127.0.0.1:8080", "abc")
    'http://127.0.0.1:8080/login?code=abc'
    """
    return f"{url}/login?code={code}" if code else f"{url}/"


def _asset(name: str) -> str:
    return resources.files("bandit.http").joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(data) -> str:
    """JSON that cannot close its <script> element: every '<' escaped (valid JSON still)."""
    return json.dumps(data, allow_nan=False, default=str).replace("<", "\\u003c")


def render(data=None) -> tuple[str, str]:
    """(page HTML, Content-Security-Policy). ``data``: ``{"report", "segments"}`` to embed (a
    shared file that needs no server); None for the live page, which fetches them."""
    script, style = "\n".join(_asset(name) for name in SCRIPTS), _asset("dashboard.css")
    parts = {"STYLE": style, "SCRIPT": script,
             "DATA": "" if data is None else _json_for_script(_finite(data))}
    # one pass: a placeholder inside substituted text (a shop named "/*SCRIPT*/") stays text
    page = _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _asset("dashboard.html"))
    csp = ("default-src 'none'; " f"script-src '{_sha256(script)}'; "
           f"style-src '{_sha256(style)}'; connect-src 'self'; img-src 'self' data:; "
           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return page, csp


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _finite(value):
    """JSON has no infinity: an unbounded interval end (too little data) becomes null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def sign_in_page(message: str) -> str:
    """The sign-in form a browser gets without a valid session (no data on it): the read
    secret goes in a POST body, never in a URL."""
    from html import escape

    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            "content='width=device-width, initial-scale=1'><title>cartwheel: sign in</title>"
            "</head><body><main><h1>cartwheel dashboard</h1>"
            f"<p id='message'>{escape(message)}</p>"
            "<form method='post' action='/login'><label>Read secret "
            "<input type='password' name='token' autocomplete='current-password' required>"
            "</label> <button type='submit'>Sign in</button></form></main></body></html>")
