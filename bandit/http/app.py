"""The embedded decision endpoint: a thin aiohttp app (parse, call the Engine, serialize).

Every request body is validated by msgspec; every error, whatever raised it, leaves as
``{"error": {"code", "message", "field"}}``, and nothing already stored is touched by a
refused request. Requests that arrive close together form a
:class:`~bandit.http.serving.RequestGroup`: its decisions are made by one ``Engine.decide_batch``
(one policy call, one insert), and all of its writes share one SQLite commit, after which,
and only then, they are answered (acknowledged means durable). Every request is judged alone:
bad input answers 4xx for that request only; a group whose commit fails answers 503 with
``Retry-After`` for all of it, and nothing of it is stored (every 200 is stored, every 5xx is
not). Bodies must be ``application/json`` and not compressed (415 otherwise): nothing is ever
inflated on the event loop, and no page can post a decision as ``text/plain`` without a CORS
preflight.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bandit.domain.errors import (
    CartwheelError,
    ClosedEventError,
    RateLimitedError,
    StorageError,
    UnknownEventError,
    UnsupportedMediaError,
)
from bandit.http import api
from bandit.http import dashboard_routes as dashboard_server
from bandit.http.auth import TOKEN, bearer_authorized
from bandit.http.metrics import EngineMetrics, RequestMetrics
from bandit.http.responses import error_response
from bandit.http.segments_cache import SegmentsCache
from bandit.http.serving import (
    Cors,
    LoopLag,
    RequestGroup,
    SingleFlight,
    VisitorLimit,
    run_site,
)
from bandit.insight.report import build_report, with_engine, with_spend
from bandit.store.events import EventStore

log = logging.getLogger("cartwheel.server")
ENGINE = web.AppKey("engine", object)
GROUP = web.AppKey("group", object)
METRICS = web.AppKey("metrics", object)
MAX_BODY = web.AppKey("max_body", int)
OPENAPI = web.AppKey("openapi", bytes)
REPORT = web.AppKey("report", object)
LIMIT = web.AppKey("limit", object)
TRAINER = web.AppKey("trainer", object)
_FIELD = re.compile(r"at `\$\.([A-Za-z_][\w]*)|unknown field `([^`]+)`|field `([^`]+)`")


def _validation_field(message: str) -> str | None:
    m = _FIELD.search(message)
    return next((g for g in m.groups() if g), None) if m else None


def _guarded(endpoint: str, handler):
    """Wrap a handler: every failure leaves in the one error shape and the latency is timed.

    A wrapper per route rather than an aiohttp middleware: a middleware chain costs every
    request a few more calls, and unknown paths get the error shape from the catch-all route.
    """

    async def guarded(request: web.Request) -> web.StreamResponse:
        metrics: RequestMetrics = request.app[METRICS]
        started = time.perf_counter()
        try:
            return await handler(request)
        except msgspec.ValidationError as exc:
            response = error_response(400, "invalid_request", str(exc), _validation_field(str(exc)))
        except msgspec.DecodeError as exc:
            response = error_response(400, "malformed_json", f"body is not valid JSON: {exc}")
        except StorageError as exc:
            response = error_response(503, exc.code, exc.message, exc.field, {"Retry-After": "1"})
        except RateLimitedError as exc:
            response = error_response(429, exc.code, exc.message, exc.field,
                              {"Retry-After": str(exc.retry_after)})
        except UnknownEventError as exc:
            response = error_response(404, exc.code, exc.message, exc.field)
        except ClosedEventError as exc:
            response = error_response(409, exc.code, exc.message, exc.field)
        except UnsupportedMediaError as exc:
            response = error_response(415, exc.code, exc.message, exc.field)
        except CartwheelError as exc:
            response = error_response(400, exc.code, exc.message, exc.field)
        except web.HTTPRequestEntityTooLarge:
            limit = request.app[MAX_BODY]
            response = error_response(413, "body_too_large", f"request body exceeds {limit} bytes")
        except web.HTTPException as exc:
            response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            response = error_response(500, "internal", "internal error; nothing was acknowledged")
        finally:
            metrics.timers[endpoint].observe(time.perf_counter() - started)
        metrics.errors.labels(endpoint, str(response.status)).inc()
        return response

    return guarded


_JSON = "application/json"


async def _body(request: web.Request) -> bytes:
    """The raw JSON body, or a 413/415 before a byte of it is read or inflated."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaError(f"Content-Encoding {encoding[:40]!r} is not accepted: send the "
                           "body uncompressed (bodies are small)", field="Content-Encoding")
    if request.content_type != _JSON:
        raise UnsupportedMediaError(f"Content-Type must be {_JSON}, got "
                           f"{request.headers.get('Content-Type', 'none')[:60]!r}",
                           field="Content-Type")
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await request.read()


async def decide(request: web.Request) -> web.Response:
    req = api.decode_decide(await _body(request))
    if isinstance(req.visitor_id, str):  # a bad id is the engine's to refuse (400)
        request.app[LIMIT].check(req.visitor_id, time.monotonic())
    d = await request.app[GROUP].decide(req)
    request.app[METRICS].decided[d.action, d.group].inc()
    answer = api.DecideResponse(d.event_id, d.action, d.probability, d.group, d.model_version)
    if req.explain:
        answer.reasons = (None if d.reasons is None else
                          [api.Reason(r.feature, r.value, r.contribution) for r in d.reasons])
        if d.reasons is None:
            answer.reasons_unavailable = d.reasons_unavailable
        else:
            answer.reasons_versus = d.reasons_versus
    return web.Response(content_type="application/json", body=api.encode(answer))


async def outcome(request: web.Request) -> web.Response:
    token = request.app[TOKEN]
    if token is not None and not bearer_authorized(request, token):
        return error_response(401, "unauthorized", "POST /v1/outcome needs 'Authorization: Bearer "
                      "<token>' with the shop's token (serve prints it at start)",
                      "Authorization")
    req = api.decode_outcome(await _body(request))
    status = await request.app[GROUP].outcome(req)
    request.app[METRICS].outcomes.labels(status).inc()
    return web.Response(content_type="application/json",
                        body=api.encode(api.OutcomeResponse(status)))


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
    denied = dashboard_server.refused(request)
    if denied is not None:
        return denied
    engine = request.app[ENGINE]
    # today's spend and the model are engine state: read here, on the loop
    rep = with_engine(with_spend(await request.app[REPORT](), engine.guardrails.spend), engine)
    return web.Response(content_type="application/json", body=api.encode(rep.to_dict()))


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    # while degraded, one tiny write says whether the store can write again (the server then
    # recovers by itself, also with no traffic)
    healthy = engine.degraded is None or engine.probe()
    reason = engine.degraded
    body = {"status": "ok", "model_version": engine.model_version,
            "update_count": engine.update_count, "pending_events": engine.open_events,
            "shop": engine.config.name}
    trainer = request.app.get(TRAINER)
    if trainer is not None:  # the trainer also needs the bus it reads from
        body.update(role="train", bus_offset=trainer.offset, lag_entries=trainer.backlog[0],
                    lag_seconds=trainer.backlog[1])
        if healthy and trainer.bus_error is not None:
            healthy, reason = False, trainer.bus_error
    if not healthy:
        body["status"], body["reason"] = "degraded", reason
    return web.Response(status=200 if healthy else 503, content_type="application/json",
                        body=api.encode(body), headers=None if healthy else {"Retry-After": "1"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(content_type="application/json", body=request.app[OPENAPI])


async def unrouted(request: web.Request) -> web.Response:
    """Unknown path (404) or a known path with the wrong method (405), in the error shape."""
    if request.app.get(TRAINER) is not None and request.path in _DECIDING:
        return error_response(404, "not_found", "the trainer takes no decisions or outcomes: send them "
                      "to a replica (cartwheel serve --role decide)")
    methods = [m for m, path, _ in _ROUTES if path == request.path]
    if methods:
        raise web.HTTPMethodNotAllowed(request.method, methods)
    raise web.HTTPNotFound()


_ROUTES = (("POST", "/v1/decide", decide), ("POST", "/v1/outcome", outcome),
           ("GET", "/v1/report", report), ("GET", "/healthz", healthz),
           ("GET", "/metrics", metrics), ("GET", "/openapi.json", openapi),
           *dashboard_server.ROUTES)
ENDPOINTS = tuple(path for _, path, _ in _ROUTES)
_DECIDING = ("/v1/decide", "/v1/outcome")


EXPIRY_SLICE_S = 0.003  # aim for each expiry slice (VW learns every event it closes)


def expire_slice(engine, size: int) -> int | None:
    """Close up to ``size`` expired events, or None (nothing done) while a request group has
    writes staged: expiry commits, and committing another group's writes behind its back
    would make that group's writers look rolled back (503) although they were stored."""
    if engine.group_open:
        return None
    return engine.expire(limit=size)


async def _background(app: web.Application):
    """While serving: expire events past their window, in slices sized so that each takes
    about ``EXPIRY_SLICE_S`` with requests served between them (after a long stop, or at a
    high decision rate, there can be many to close at once), and measure event-loop lag."""
    engine = app[ENGINE]
    every = min(5.0, max(0.5, engine.config.attribution.window_s / 100))

    async def expire():
        size = 200
        while True:
            await asyncio.sleep(every)
            try:
                while True:
                    started = time.perf_counter()
                    closed = expire_slice(engine, size)
                    if closed is None:
                        break  # a request group is writing: next time
                    took = time.perf_counter() - started
                    if closed:  # the next slice as large as fits the aim (1..2000 events)
                        size = max(1, min(2000, int(closed * EXPIRY_SLICE_S / max(took, 1e-6))))
                    if closed < size:
                        break
                    await asyncio.sleep(0)
            except Exception:
                log.exception("expiry failed; will retry")

    tasks = [asyncio.create_task(expire()),
             asyncio.create_task(LoopLag(app[METRICS].loop_lag.observe).run())]
    yield
    for task in tasks:
        task.cancel()


def add_routes(app: web.Application, routes) -> None:
    """Route ``(method, path, handler)`` triples, each guarded (one error shape, timed),
    decide with CORS when origins are allowed, and every other path to :func:`unrouted`."""
    cors = Cors(app[ENGINE].config.server.allowed_origins)
    for method, path, handler in routes:
        guarded = _guarded(path, handler)
        if path == "/v1/decide" and cors.origins:
            guarded = cors.wrap(guarded)
            app.router.add_route("OPTIONS", path, cors.preflight)
        # GET routes answer HEAD too (load balancers' health checks)
        add = app.router.add_get if method == "GET" else app.router.add_post
        add(path, guarded)
    app.router.add_route("*", "/{tail:.*}", _guarded("other", unrouted))


async def _training(app: web.Application):
    """The trainer's loop (``cartwheel train``) instead of the expiry slices: it ingests,
    expires and publishes (bandit.scaleout.trainer)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(app[TRAINER].run(stop)),
             asyncio.create_task(LoopLag(app[METRICS].loop_lag.observe).run())]
    yield
    stop.set()
    tasks[1].cancel()
    try:
        await asyncio.wait_for(tasks[0], 10.0)  # the step under way finishes its commit
    except asyncio.TimeoutError:
        log.warning("the trainer's step did not finish in 10 s; what it read is read again")


def make_app(engine, *, token: str | None = None, max_body: int | None = None,
             trainer=None) -> web.Application:
    """The aiohttp application around an open :class:`~bandit.core.engine.Engine`; with a
    :class:`~bandit.scaleout.trainer.Trainer`, the trainer's (report, health and metrics, no decide or
    outcome route: those go to the replicas)."""
    max_body = max_body or engine.config.server.max_body_bytes
    # aiohttp's own limit sits above ours so that our check answers with the error shape
    app = web.Application(client_max_size=max_body + 1)
    app[ENGINE] = engine
    app[TOKEN] = token
    app[MAX_BODY] = max_body
    app[METRICS] = EngineMetrics(engine, ENDPOINTS)
    app[GROUP] = RequestGroup(engine, on_close=app[METRICS].group_size.observe)
    app[REPORT] = SingleFlight(_report_computer(engine))
    app[dashboard_server.SEGMENTS] = SegmentsCache(engine)
    app[LIMIT] = VisitorLimit(engine.config.server.visitor_rate, engine.config.server.visitor_burst)
    app[OPENAPI] = api.encode(api.openapi(title=f"cartwheel: {engine.config.name}"))
    app[TRAINER] = trainer
    add_routes(app, _ROUTES if trainer is None else
               [r for r in _ROUTES if r[1] not in _DECIDING])
    app.cleanup_ctx.append(_background if trainer is None else _training)
    return app


async def _serve(engine, host: str, port: int, token: str | None, announce) -> None:
    # on SIGTERM: stop accepting, let in-flight requests finish, then (serve) flush and snapshot
    app = make_app(engine, token=token)
    await run_site(app, host, port, announce, on_malformed=app[METRICS].malformed_http.inc)


def serve(engine, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          announce=print):
    """Serve until SIGTERM/SIGINT, then close the engine (flush + snapshot); return the final
    snapshot's path (None if the store could not write it)."""
    try:
        asyncio.run(_serve(engine, host, port, token, announce))
    finally:
        final = engine.close()
    return final
