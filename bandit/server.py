"""The embedded decision endpoint: a thin aiohttp app (parse, call the Engine, serialize).

Every request body is validated by msgspec; every error, whatever raised it, leaves as
``{"error": {"code", "message", "field"}}`` with a 4xx status, and nothing already stored is
touched by a refused request. Requests that arrive close together form a :class:`RequestGroup`:
its decisions are made by one ``Engine.decide_batch`` (one policy call, one insert), and all
of its writes share one SQLite commit, after which, and only then, they are answered
(acknowledged means durable).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import signal
import time

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest

from . import api
from .errors import CartwheelError, ClosedEventError, UnknownEventError
from .report import build_report, with_spend
from .store import EventStore

log = logging.getLogger("cartwheel.server")
ENGINE = web.AppKey("engine", object)
GROUP = web.AppKey("group", object)
METRICS = web.AppKey("metrics", object)
TOKEN = web.AppKey("token", object)
MAX_BODY = web.AppKey("max_body", int)
OPENAPI = web.AppKey("openapi", bytes)
REPORT = web.AppKey("report", object)
_FIELD = re.compile(r"at `\$\.([A-Za-z_][\w]*)|unknown field `([^`]+)`|field `([^`]+)`")


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
        self._writers: list = []  # futures of requests that wrote and wait for the commit
        self._open = False

    def decide(self, req: api.DecideRequest) -> asyncio.Future:
        """Future of the :class:`~bandit.types.Decision` for ``req``, after the commit."""
        future = self._join()
        self._decides.append(((req.visitor_id, req.context, req.eligible), future))
        return future

    def committed(self) -> asyncio.Future:
        """Future that is done once everything written so far is committed."""
        future = self._join()
        self._writers.append(future)
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
        try:
            results = self.engine.decide_batch([r for r, _ in decides], commit=False)
        except Exception as exc:  # surfaced to these requests as a 5xx
            results = [exc] * len(decides)
        try:
            self.engine.commit()
        except Exception as exc:  # nothing of the group is durable
            results, writers = [exc] * len(decides), [(f, exc) for f in writers]
        else:
            writers = [(f, None) for f in writers]
        answers = [(f, r) for (_, f), r in zip(decides, results)] + writers
        for future, result in answers:
            if future.done():  # the client went away; what it asked for is stored all the same
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class Metrics:
    """Prometheus metrics of one app (own registry, so several apps can live in one process)."""

    def __init__(self, engine):
        self.registry = CollectorRegistry()
        self.decisions = Counter("cartwheel_decisions", "Decisions made",
                                 ["action", "group"], registry=self.registry)
        # children looked up once: labels() takes a lock and a dict lookup on every call
        self.decided = {(a, g): self.decisions.labels(a, g)
                        for a in engine.config.action_ids for g in ("treatment", "holdout")}
        self.outcomes = Counter("cartwheel_outcomes", "Outcomes received by status",
                                ["status"], registry=self.registry)
        self.latency = Histogram("cartwheel_request_seconds", "Request latency", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1))
        self.errors = Counter("cartwheel_request_errors", "Refused requests",
                              ["endpoint", "code"], registry=self.registry)
        self.timers = {e: self.latency.labels(e) for e in (*_ENDPOINTS, "other")}
        self.group_size = Histogram(
            "cartwheel_group_size", "Requests decided and committed together (a request group)",
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        Gauge("cartwheel_model_updates", "Learning updates of the model",
              registry=self.registry).set_function(lambda: engine.update_count)
        Gauge("cartwheel_pending_events", "Decisions waiting for an outcome or expiry",
              registry=self.registry).set_function(lambda: engine.open_events)
        if engine.config.budget is not None:
            Gauge("cartwheel_incentive_spend_today", "Incentive spend of the budget day so far",
                  registry=self.registry).set_function(
                lambda: engine.guardrails.spend.spent(time.time()))
            Gauge("cartwheel_incentive_budget_daily", "Daily incentive budget",
                  registry=self.registry).set(engine.config.budget.daily)


def _error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=api.encode(api.ErrorResponse(api.ErrorDetail(code, message, field))))


def _validation_field(message: str) -> str | None:
    m = _FIELD.search(message)
    return next((g for g in m.groups() if g), None) if m else None


def _guarded(endpoint: str, handler):
    """Wrap a handler: every failure leaves in the one error shape and the latency is timed.

    A wrapper per route rather than an aiohttp middleware: a middleware chain costs every
    request a few more calls, and unknown paths get the error shape from the catch-all route.
    """

    async def guarded(request: web.Request) -> web.StreamResponse:
        metrics: Metrics = request.app[METRICS]
        started = time.perf_counter()
        try:
            return await handler(request)
        except msgspec.ValidationError as exc:
            response = _error(400, "invalid_request", str(exc), _validation_field(str(exc)))
        except msgspec.DecodeError as exc:
            response = _error(400, "malformed_json", f"body is not valid JSON: {exc}")
        except UnknownEventError as exc:
            response = _error(404, exc.code, exc.message, exc.field)
        except ClosedEventError as exc:
            response = _error(409, exc.code, exc.message, exc.field)
        except CartwheelError as exc:
            response = _error(400, exc.code, exc.message, exc.field)
        except web.HTTPRequestEntityTooLarge:
            limit = request.app[MAX_BODY]
            response = _error(413, "body_too_large", f"request body exceeds {limit} bytes")
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            response = _error(500, "internal", "internal error; nothing was acknowledged")
        finally:
            metrics.timers[endpoint].observe(time.perf_counter() - started)
        metrics.errors.labels(endpoint, str(response.status)).inc()
        return response

    return guarded


async def _body(request: web.Request) -> bytes:
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await request.read()


async def decide(request: web.Request) -> web.Response:
    req = api.decode_decide(await _body(request))
    d = await request.app[GROUP].decide(req)
    request.app[METRICS].decided[d.action, d.group].inc()
    return web.Response(content_type="application/json", body=api.encode(api.DecideResponse(
        d.event_id, d.action, d.probability, d.group, d.model_version)))


async def outcome(request: web.Request) -> web.Response:
    token = request.app[TOKEN]
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "unauthorized", "POST /v1/outcome needs 'Authorization: Bearer "
                          "<token>' with the configured token", "Authorization")
    engine = request.app[ENGINE]
    req = api.decode_outcome(await _body(request))
    status = engine.record_outcome(req.event_id, req.converted, req.order_value, req.outcome_id,
                                   commit=False)
    await request.app[GROUP].committed()
    request.app[METRICS].outcomes.labels(status).inc()
    return web.Response(content_type="application/json",
                        body=api.encode(api.OutcomeResponse(status)))


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

    async def __call__(self):
        if self._running is None:
            self._running = asyncio.get_running_loop().run_in_executor(None, self.compute)
            self._running.add_done_callback(self._finished)
        return await asyncio.shield(self._running)

    def _finished(self, _future) -> None:
        self._running = None


def _report_computer(engine):
    """The report from the log, on a connection of its own (read-only), so that it can run on
    a thread: SQLite aggregates without holding the GIL and decisions go on meanwhile."""
    path, margin = engine.store.path, engine.config.objective.margin

    def compute():
        store = EventStore.read_only(path)
        try:
            return build_report(store, margin)
        finally:
            store.close()

    return compute


async def report(request: web.Request) -> web.Response:
    # today's spend is engine state: read here, on the loop
    rep = with_spend(await request.app[REPORT](), request.app[ENGINE].guardrails.spend)
    return web.Response(content_type="application/json", body=api.encode(rep.to_dict()))


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.Response(content_type="application/json", body=api.encode(
        {"status": "ok", "model_version": engine.model_version,
         "update_count": engine.update_count, "pending_events": engine.open_events,
         "shop": engine.config.name}))


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(content_type="application/json", body=request.app[OPENAPI])


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


async def unrouted(request: web.Request) -> web.Response:
    """Unknown path (404) or a known path with the wrong method (405), in the error shape."""
    methods = [m for m, path, _ in _ROUTES if path == request.path]
    if methods:
        raise web.HTTPMethodNotAllowed(request.method, methods)
    raise web.HTTPNotFound()


_ROUTES = (("POST", "/v1/decide", decide), ("POST", "/v1/outcome", outcome),
           ("GET", "/v1/report", report), ("GET", "/healthz", healthz),
           ("GET", "/metrics", metrics), ("GET", "/openapi.json", openapi))
_ENDPOINTS = tuple(path for _, path, _ in _ROUTES)


EXPIRY_SLICE = 200  # events closed per slice (VW learns each: ~25 ms); requests run between


async def _expiry_loop(app: web.Application):
    """Expire events past their window while serving, in slices with requests served between
    them: after a long stop, or at a high decision rate, there can be many to close at once."""
    engine = app[ENGINE]
    every = min(5.0, max(0.5, engine.config.attribution.window_s / 100))

    async def loop():
        while True:
            await asyncio.sleep(every)
            try:
                while engine.expire(limit=EXPIRY_SLICE) == EXPIRY_SLICE:
                    await asyncio.sleep(0)
            except Exception:
                log.exception("expiry failed; will retry")

    task = asyncio.create_task(loop())
    yield
    task.cancel()


def make_app(engine, *, token: str | None = None, max_body: int | None = None) -> web.Application:
    """The aiohttp application around an open :class:`~bandit.engine.Engine`."""
    max_body = max_body or engine.config.server.max_body_bytes
    # aiohttp's own limit sits above ours so that our check answers with the error shape
    app = web.Application(client_max_size=max_body + 1)
    app[ENGINE] = engine
    app[TOKEN] = token
    app[MAX_BODY] = max_body
    app[METRICS] = Metrics(engine)
    app[GROUP] = RequestGroup(engine, on_close=app[METRICS].group_size.observe)
    app[REPORT] = SingleFlight(_report_computer(engine))
    app[OPENAPI] = api.encode(api.openapi(title=f"cartwheel: {engine.config.name}"))
    cors = Cors(engine.config.server.allowed_origins)
    for method, path, handler in _ROUTES:
        guarded = _guarded(path, handler)
        if path == "/v1/decide" and cors.origins:
            guarded = cors.wrap(guarded)
            app.router.add_route("OPTIONS", path, cors.preflight)
        # GET routes answer HEAD too (load balancers' health checks)
        add = app.router.add_get if method == "GET" else app.router.add_post
        add(path, guarded)
    app.router.add_route("*", "/{tail:.*}", _guarded("other", unrouted))
    app.cleanup_ctx.append(_expiry_loop)
    return app


async def _serve(engine, host: str, port: int, token: str | None, announce) -> None:
    app = make_app(engine, token=token)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    announce(f"http://{host}:{bound}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # stop accepting, let in-flight requests finish, then flush the store and snapshot
    await runner.cleanup()


def serve(engine, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          announce=print) -> None:
    """Serve until SIGTERM/SIGINT, then close the engine (flush + snapshot)."""
    token = token or engine.config.server.token or os.environ.get("CARTWHEEL_TOKEN") or None
    try:
        asyncio.run(_serve(engine, host, port, token, announce))
    finally:
        engine.close()
