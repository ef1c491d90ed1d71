"""Dashboard sign-in by current practice: server-side sessions, one-time sign-in links and a
backoff on wrong secrets (docs/security.md, "Signing in").

* A session is a random id (32 bytes) the server keeps with its expiry; the cookie carries only
  the id (``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind an https proxy). ``/logout``
  deletes it; a restart, or a new read secret, ends them all (they live in memory).
* ``serve`` prints a one-time sign-in link ``/login?code=...``: the code works once, for ten
  minutes, and is not the secret.
* ``POST /login`` with the read secret in the form field ``token`` opens a session; the secret
  never travels in a URL (``GET /login?token=...`` sets no cookie). After ``FREE_FAILURES``
  wrong secrets from one address, each further try waits twice as long as the last
  (``Retry-After``), up to ``MAX_BACKOFF_S``.

>>> s = Sessions(clock=lambda: 0.0)
>>> code = s.issue_code()
>>> s.redeem(code), s.redeem(code)
(True, False)
>>> sid = s.open(); s.valid(sid), s.valid("forged")
(True, False)
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict

from aiohttp import web

#: a session's life; a code's
SESSION_TTL_S, CODE_TTL_S = 12 * 3600.0, 600.0
FREE_FAILURES, MAX_BACKOFF_S = 5, 300.0
#: sessions and addresses kept at most (the oldest go first)
MAX_KEPT = 10_000
SESSIONS = web.AppKey("sessions", object)


class Sessions:
    """The dashboard's sessions, one-time codes and per-address backoff (see the module
    docstring)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._sessions: OrderedDict[str, float] = OrderedDict()  # id -> expiry
        self._codes: dict[str, float] = {}
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # addr -> (n, until)

    # ------------------------------------------------------------------ sessions
    def open(self) -> str:
        """A new session's id."""
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = self.clock() + SESSION_TTL_S
        while len(self._sessions) > MAX_KEPT:
            self._sessions.popitem(last=False)
        return sid

    def valid(self, sid: str) -> bool:
        expiry = self._sessions.get(sid) if sid else None
        if expiry is None:
            return False
        if expiry <= self.clock():
            del self._sessions[sid]
            return False
        return True

    def close(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    # ------------------------------------------------------------------ one-time codes
    def issue_code(self) -> str:
        code = secrets.token_urlsafe(24)
        now = self.clock()
        self._codes = {c: t for c, t in self._codes.items() if t > now}
        self._codes[code] = now + CODE_TTL_S
        return code

    def redeem(self, code: str) -> bool:
        """Whether ``code`` is a live code (used up either way)."""
        for known in list(self._codes):
            if hmac.compare_digest(known.encode(), code.encode()):
                return self._codes.pop(known) > self.clock()
        return False

    # ------------------------------------------------------------------ backoff
    def wait(self, address: str) -> float:
        """Seconds ``address`` must wait before its next try (0: it may try now)."""
        _, until = self._failures.get(address, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, address: str) -> None:
        n, _ = self._failures.pop(address, (0, 0.0))
        n += 1
        delay = 0.0 if n < FREE_FAILURES else min(MAX_BACKOFF_S, 2.0 ** (n - FREE_FAILURES))
        self._failures[address] = (n, self.clock() + delay)
        while len(self._failures) > MAX_KEPT:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
