"""The parts of the HTTP server that are not routes: request groups, per-visitor rate limits,
event-loop lag, single-flight reports, CORS, running a site and the outcome token
(docs/architecture.md, "The endpoint")."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import time
from collections import OrderedDict

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bandit.domain.errors import RateLimitedError, StorageError
from bandit.http import api
from bandit.http.connections import ConnectionGuard

log = logging.getLogger("cartwheel.server")


class RequestGroup:
    """Requests that reach the engine close together share one ``decide_batch`` and one commit.

    A decide request joins the group's batch (one policy call, one insert for all of them); a
    request that wrote (an outcome) joins to wait for the commit. The group stays open while
    requests keep arriving: it closes once ``QUIET_PASSES`` event-loop passes brought no new
    request, or after ``MAX_PASSES`` passes. A request whose bytes arrive in one poll reaches
    the handler a pass later, so one quiet pass does not yet mean the pipeline is empty. A busy
    server thus decides and commits many requests at once, which is what a single process needs
    (per-call overhead, not per-row work, dominates at a few rows), while on a quiet server a
    request waits only a few idle passes, microseconds. Nothing is answered before the commit
    (acknowledged means durable).
    """

    QUIET_PASSES = 2
    MAX_PASSES = 8

    def __init__(self, engine, on_close=None):
        self.engine = engine
        self.on_close = on_close  # called with each group's size (metrics)
        self._decides: list = []  # ((visitor_id, context, eligible), future)
        self._writers: list = []  # (future, group id) of requests that wrote and wait
        self._open = False

    def decide(self, req: api.DecideRequest) -> asyncio.Future:
        """Future of the :class:`~bandit.domain.records.Decision` for ``req``, after the commit."""
        future = self._join()
        self._decides.append(((req.visitor_id, req.context, req.eligible, req.explain,
                               req.placement, req.activate), future))
        return future

    async def outcome(self, req: api.OutcomeRequest) -> tuple[str, int | None]:
        """Record an outcome (for an event, or an order by visitor) in the open group; its
        status, and the decisions an order by visitor closed, once the group is committed."""
        engine = self.engine
        if req.visitor_id is not None:
            status, events = engine.record_order(req.visitor_id, req.converted, req.order_value,
                                                 req.outcome_id, commit=False,
                                                 redeemed=req.redeemed)
        else:
            status, events = engine.record_outcome(req.event_id, req.converted, req.order_value,
                                                   req.outcome_id, commit=False,
                                                   redeemed=req.redeemed), None
        await self.committed()
        return status, events

    async def activate(self, req: api.ActivateRequest) -> str:
        """Activate a deferred decision in the open group; its status once committed."""
        status = self.engine.activate(req.event_id, commit=False)
        await self.committed()
        return status

    def committed(self) -> asyncio.Future:
        """Future that is done once everything written so far is committed (it fails when
        the write was rolled back before that)."""
        future = self._join()
        self._writers.append((future, self.engine.group_id))
        return future

    def _join(self) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if not self._open:
            self._open = True
            loop.call_soon(self._pass, loop, 0, 0, 1)
        return loop.create_future()

    def _pass(self, loop, seen: int, quiet: int, passes: int) -> None:
        size = len(self._decides) + len(self._writers)
        quiet = quiet + 1 if size == seen else 0
        if quiet < self.QUIET_PASSES and passes < self.MAX_PASSES:
            loop.call_soon(self._pass, loop, size, quiet, passes + 1)
        else:
            self._close()

    def _close(self) -> None:
        decides, self._decides = self._decides, []
        writers, self._writers = self._writers, []
        self._open = False
        if self.on_close is not None:
            self.on_close(len(decides) + len(writers))
        engine = self.engine
        group = engine.group_id
        try:
            # one request's error stays in its slot; an exception here is the group's own
            results = engine.decide_batch([r for r, _ in decides], commit=False)
            engine.commit()
        except Exception as exc:  # nothing of the group is durable
            if not isinstance(exc, StorageError):
                log.exception("a request group failed")
            results, failed = [exc] * len(decides), exc
        else:
            failed = None
        # a writer whose write was rolled back meanwhile (another request's storage fault, a
        # health probe) wrote in an earlier group id: it fails, though this commit succeeded
        lost = StorageError("the event log could not be written; nothing was stored: retry")
        answers = [(f, r) for (_, f), r in zip(decides, results)] + [
            (f, failed or (lost if wrote != group else None)) for f, wrote in writers]
        for future, result in answers:
            answer(future, result)


def answer(future: asyncio.Future, result) -> None:
    """Resolve a request's future with its result, or fail it with an exception. A client
    that went away has nobody to answer; what it asked for is stored all the same."""
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


class MalformedHttpLog(logging.Filter):
    """Keeps aiohttp's record of each request it could not parse out of the log, and writes
    one WARNING line per ``interval`` seconds instead, with how many there were.

    aiohttp logs every such request (a header line over 8 KiB, ``Content-Length`` beside
    ``Transfer-Encoding``, bytes that are not HTTP) at ERROR with a traceback and the client's
    IP address: about 1 KB of log per hostile request, which one client can send thousands of
    a second, and an address that is personal data. The line written here names neither the
    address nor the request's bytes. Every other record (a bug in a handler) passes
    unchanged. ``on_refused`` is called for each malformed request (a metric).

    >>> import logging
    >>> from aiohttp.http_exceptions import LineTooLong
    >>> quiet = MalformedHttpLog(interval=60.0, clock=iter([0.0, 1.0, 61.0]).__next__)
    >>> def record():
    ...     return logging.LogRecord("aiohttp.server", logging.ERROR, "", 0, "Error handling "
    ...         "request from %s", ("198.51.100.7",), (LineTooLong, LineTooLong("x", 8190), None))
    >>> first, second, third = record(), record(), record()
    >>> [quiet.filter(r) for r in (first, second, third)]
    [True, False, True]
    >>> print(third.levelname, third.getMessage())
    WARNING refused 2 requests that were not valid HTTP (400 LineTooLong) in the last 61 s
    """

    def __init__(self, interval: float = 60.0, on_refused=None, clock=time.monotonic):
        super().__init__()
        self.interval, self.on_refused, self.clock = float(interval), on_refused, clock
        self._refused, self._since = 0, None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if self.on_refused is not None:
            self.on_refused()
        now = self.clock()
        self._refused += 1
        if self._since is not None and now - self._since < self.interval:
            return False
        window = "" if self._since is None else f" in the last {now - self._since:.0f} s"
        record.msg = (f"refused {self._refused} request{'s' if self._refused > 1 else ''} "
                      f"that {'were' if self._refused > 1 else 'was'} not valid HTTP "
                      f"({exc.code} {type(exc).__name__}){window}")
        record.args, record.exc_info, record.exc_text = (), None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._refused, self._since = 0, now
        return True


async def run_site(app: web.Application, host: str, port: int, announce, limits,
                   on_malformed=None, on_refused=None) -> None:
    """Serve ``app`` until SIGTERM/SIGINT: ``announce`` gets the URL once it listens; then
    stop accepting, let in-flight requests finish and run the app's cleanup. Requests that
    are not valid HTTP are logged as counts (:class:`MalformedHttpLog`; ``on_malformed`` is
    called for each). Every connection passes :class:`~bandit.http.connections.
    ConnectionGuard` with the shop's ``[server]`` ``limits`` (header and idle timeouts, header
    size, connection count; ``on_refused(why)`` for each connection it closes)."""

    # auto_decompress off: a compressed body is refused (415) unread, never inflated on the loop
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=10.0,
                           auto_decompress=False, keepalive_timeout=limits.idle_timeout_s,
                           max_headers=64)
    # the handlers first: a SIGTERM right after the announcement still shuts down cleanly
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    quiet = MalformedHttpLog(on_refused=on_malformed)
    logging.getLogger("aiohttp.server").addFilter(quiet)
    try:
        await runner.setup()
        guard = ConnectionGuard(runner.server, header_timeout_s=limits.header_timeout_s,
                                max_header_bytes=limits.max_header_bytes,
                                max_connections=limits.max_connections,
                                on_refused=on_refused)
        server = await loop.create_server(guard, host, port, backlog=128, reuse_address=True)
        announce(f"http://{host}:{server.sockets[0].getsockname()[1]}")
        await stop.wait()
        server.close()  # stop accepting; in-flight requests finish in the cleanup
        await runner.cleanup()
    finally:
        logging.getLogger("aiohttp.server").removeFilter(quiet)


class VisitorLimit:
    """Per-visitor token buckets: at most ``burst`` decisions at once and ``rate`` per second
    in the long run for one visitor id, so nobody who knows an id can use up that visitor's
    frequency caps (or flood the log with it). Only ids seen lately are kept (at most
    ``max_visitors``; the least recently seen go first), in memory only, keyed by a hash.

    >>> limit = VisitorLimit(rate=1.0, burst=2)
    >>> [limit.admit("v", now=0.0) for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> limit.admit("v", now=1.0), limit.admit("w", now=1.0)
    (0.0, 0.0)
    """

    def __init__(self, rate: float, burst: int, max_visitors: int = 100_000,
                 field: str = "visitor_id", what: str = "decisions for this visitor_id"):
        self.rate, self.burst, self.max_visitors = float(rate), float(burst), max_visitors
        self.field, self.what = field, what  # what the 429 names
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()  # tokens, time

    def admit(self, visitor_id: str, now: float) -> float:
        """0 when a decision is allowed now (and counted), else the seconds to wait."""
        if not self.rate:
            return 0.0
        key = hash(visitor_id)
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0 if not wait else tokens, now)
        if len(self._buckets) > self.max_visitors:
            self._buckets.popitem(last=False)
        return wait

    def check(self, visitor_id: str, now: float) -> None:
        """Raise :class:`RateLimitedError` (429) when ``visitor_id`` (or whatever the limit
        is keyed by: a client address) must wait."""
        wait = self.admit(visitor_id, now)
        if wait:
            raise RateLimitedError(f"too many {self.what}; retry in {math.ceil(wait)} s",
                                   field=self.field, retry_after=math.ceil(wait))


class LoopLag:
    """Measures how late the event loop runs a timer: the time something on the loop kept
    every request waiting (``observe`` gets each lag in seconds, e.g. a histogram's)."""

    INTERVAL = 0.05

    def __init__(self, observe):
        self.observe = observe

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.INTERVAL
            await asyncio.sleep(self.INTERVAL)
            self.observe(max(0.0, loop.time() - due))


class SingleFlight:
    """Runs ``compute`` on a worker thread, one run at a time: callers that arrive while it
    runs share its result instead of starting another (a dashboard polling from many tabs
    costs one computation).

    >>> import asyncio
    >>> asyncio.run(SingleFlight(lambda: 42)())
    42
    """

    def __init__(self, compute):
        self.compute = compute
        self._running: asyncio.Future | None = None

    @property
    def running(self) -> bool:
        """Whether a run is under way (a caller now would share it, its arguments unused)."""
        return self._running is not None

    async def __call__(self, *args):
        if self._running is None:
            self._running = asyncio.get_running_loop().run_in_executor(None, self.compute, *args)
            self._running.add_done_callback(self._finished)
        return await asyncio.shield(self._running)

    def _finished(self, _future) -> None:
        self._running = None


class Cors:
    """Lets pages of the configured origins call ``POST /v1/decide`` from the browser.

    A JSON POST from another origin is preceded by a preflight ``OPTIONS`` request; both get
    ``Access-Control-Allow-Origin`` for an allowed origin (``*`` when any is allowed) and
    nothing for any other, which the browser then blocks. Error responses carry the header
    too, so the page can read what was wrong. Only the decide endpoint: outcomes come from
    the shop's servers with a token, which no page should hold.
    """

    def __init__(self, origins: tuple[str, ...]):
        self.any = "*" in origins
        self.origins = frozenset(origins)

    def allow(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and (self.any or origin in self.origins):
            response.headers["Access-Control-Allow-Origin"] = "*" if self.any else origin
            if not self.any:
                response.headers["Vary"] = "Origin"
        return response

    def wrap(self, handler):
        async def with_cors(request: web.Request) -> web.StreamResponse:
            return self.allow(request, await handler(request))

        return with_cors

    async def preflight(self, request: web.Request) -> web.Response:
        response = web.Response(status=204)
        if "Access-Control-Allow-Origin" in self.allow(request, response).headers:
            response.headers.update({"Access-Control-Allow-Methods": "POST",
                                     "Access-Control-Allow-Headers": "Content-Type",
                                     "Access-Control-Max-Age": "86400"})
        return response
