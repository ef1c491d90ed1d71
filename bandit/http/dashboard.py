"""The dashboard: one read-only page at ``/`` over ``GET /v1/report`` and ``GET /v1/segments``,
the sign-in that lets a browser read them, and the same page as one file for sharing.

Sign-in: when the shop has a token, ``serve`` prints ``/login?token=...``. That link sets a
cookie and redirects to ``/`` (so the token leaves the address bar and the history). The
cookie holds a keyed hash of the token, not the token (which also authorizes outcomes):
``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it),
``Secure`` when served over https. The report, the segments and the page accept either the
cookie or ``Authorization: Bearer <token>``.

The page is static: its script and style are inlined and pinned by a Content-Security-Policy
hash, it talks to nothing but its own origin, and every value reaches the page as text
(never as markup), so a hostile action name or segment condition cannot become script.

>>> session_value("s3cret") == session_value("s3cret") != session_value("other")
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from importlib import resources

COOKIE = "cartwheel_session"
COOKIE_MAX_AGE_S = 30 * 86400
_PLACEHOLDER = re.compile(r"/\*(STYLE|SCRIPT|DATA)\*/")
#: the page's script, joined in this order into its one inline <script>: the kit (formats,
#: builders, charts), the panels, then the page's life (refresh, choices)
SCRIPTS = ("dashboard_kit.js", "dashboard_panels.js", "dashboard.js")


def session_value(token: str) -> str:
    """What the session cookie holds: HMAC-SHA256 of a fixed label keyed by the token."""
    return hmac.new(token.encode(), b"cartwheel dashboard session v1", hashlib.sha256).hexdigest()


def link(url: str, token: str | None) -> str:
    """The link ``serve`` prints: it opens the dashboard signed in (the token goes once, in
    the link; the page's address then carries none).

    >>> link("http://127.0.0.1:8080", "a/b")
    'http://127.0.0.1:8080/login?token=a%2Fb'
    """
    from urllib.parse import quote

    return f"{url}/login?token={quote(token, safe='')}" if token else f"{url}/"


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
    """The page a browser gets without a valid session (no data on it)."""
    from html import escape

    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            "content='width=device-width, initial-scale=1'><title>cartwheel: sign in</title>"
            "</head><body style='font-family: system-ui, sans-serif; max-width: 40rem; "
            "margin: 3rem auto; padding: 0 1rem'><h1>cartwheel dashboard</h1>"
            f"<p>{escape(message)}</p></body></html>")
