"""Limits on the socket, before a request exists: slow or idle connections must not starve a
normal request (docs/security.md, "Limits").

aiohttp closes an idle keep-alive connection after ``keepalive_timeout`` and bounds each
header line and the number of headers, but a connection that never completes its first
request header is kept for ever, and connections are not counted. :class:`ConnectionGuard`
wraps each connection's protocol: a connection has ``header_timeout_s`` to complete its first
request header (the blank line that ends it) and may send at most ``max_header_bytes`` before
it does; at most ``max_connections`` are open at once (by default what the process's
descriptor limit leaves after ``RESERVED_FDS`` for the event log, snapshots and logs). At the
limit the oldest connection still waiting for its first header makes room (a slowloris holds
those); when there is none, the new connection is closed at once. The body's own timeout is
:func:`bandit.http.routes.read_body`'s.

>>> ConnectionGuard.default_max(soft_limit=1024)
924
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict

log = logging.getLogger("cartwheel.server")
#: descriptors kept for the event log (and its WAL and checkpoint connection), snapshots,
#: the lock, logs and the bus
RESERVED_FDS = 100
HEADER_END = b"\r\n\r\n"


class ConnectionGuard:
    """Counts connections and wraps each one's protocol (see the module docstring)."""

    def __init__(self, factory, *, header_timeout_s: float, max_header_bytes: int,
                 max_connections: int = 0, on_refused=None):
        self.factory = factory  # aiohttp's: one RequestHandler per connection
        self.header_timeout_s, self.max_header_bytes = header_timeout_s, max_header_bytes
        self.max_connections = max_connections or self.default_max()
        self.on_refused = on_refused  # called with why (metrics)
        self.open: set = set()
        self.waiting: OrderedDict = OrderedDict()  # no first header yet, oldest first

    @staticmethod
    def default_max(soft_limit: int | None = None) -> int:
        """What the descriptor limit leaves after :data:`RESERVED_FDS` (at least 16)."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if soft_limit is None else soft_limit
        if soft == resource.RLIM_INFINITY:
            soft = 65536
        return max(16, soft - RESERVED_FDS)

    def __call__(self) -> "GuardedConnection":
        return GuardedConnection(self, self.factory())

    def admit(self, conn: "GuardedConnection") -> bool:
        if len(self.open) >= self.max_connections:
            if not self.waiting:
                self._refused("connection limit")
                return False
            oldest, _ = self.waiting.popitem(last=False)
            oldest.close("the connection limit was reached: the oldest connection still "
                         "waiting for its first request header made room")
        self.open.add(conn)
        self.waiting[conn] = None
        return True

    def headed(self, conn: "GuardedConnection") -> None:
        self.waiting.pop(conn, None)

    def gone(self, conn: "GuardedConnection") -> None:
        self.open.discard(conn)
        self.waiting.pop(conn, None)

    def _refused(self, why: str) -> None:
        if self.on_refused is not None:
            self.on_refused(why)


class GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's protocol behind the guard's limits."""

    def __init__(self, guard: ConnectionGuard, inner):
        self.guard, self.inner = guard, inner
        self.transport = None
        self.received, self.tail, self.started = 0, b"", False
        self.timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ the guard's part
    def connection_made(self, transport) -> None:
        self.transport = transport
        if not self.guard.admit(self):
            transport.abort()
            return
        self.started = True
        self.inner.connection_made(transport)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.guard.header_timeout_s, self.close,
                                     "no complete request header in time")

    def data_received(self, data: bytes) -> None:
        if self.timer is not None:  # still waiting for the first header's end
            self.received += len(data)
            window = self.tail + data
            if HEADER_END in window:
                self._headed()
            elif self.received > self.guard.max_header_bytes:
                self.close("request header larger than the limit")
                return
            else:
                self.tail = window[-3:]
        self.inner.data_received(data)

    def _headed(self) -> None:
        self.timer.cancel()
        self.timer = None
        self.guard.headed(self)

    def close(self, why: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard._refused(why)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()  # no lingering: the descriptor goes now

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.gone(self)
        if self.started:
            self.inner.connection_lost(exc)

    # ------------------------------------------------------------------ passed through
    def eof_received(self):
        return self.inner.eof_received() if self.started else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
