"""What every role of the endpoint shares: the app's keys, the one error shape, body checks,
``POST /v1/decide``, ``/v1/outcome`` and ``/v1/activate`` over a role's request group, ``/metrics``,
``/openapi.json``, and routing with CORS (docs/architecture.md, "The endpoint").

Every request body is validated by msgspec; every error, whatever raised it, leaves as
``{"error": {"code", "message", "field"}}``, and nothing already stored is touched by a
refused request. Bodies must be ``application/json`` and not compressed (415 otherwise):
nothing is ever inflated on the event loop, and no page can post a decision as ``text/plain``
without a CORS preflight.
"""

from __future__ import annotations

import asyncio
import hashlib
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
from bandit.http import api, preview, trust
from bandit.http.auth import bearer_reads, may_read, may_write
from bandit.http.metrics import RequestMetrics
from bandit.http.responses import error_response
from bandit.http.serving import Cors

log = logging.getLogger("cartwheel.server")
ENGINE = web.AppKey("engine", object)
GROUP = web.AppKey("group", object)
METRICS = web.AppKey("metrics", object)
MAX_BODY = web.AppKey("max_body", int)
#: seconds a request body may take to arrive ([server] body_timeout_s)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
OPENAPI = web.AppKey("openapi", bytes)
REPORT = web.AppKey("report", object)
LIMIT = web.AppKey("limit", object)
ADDRESS_LIMIT = web.AppKey("address_limit", object)
#: all untrusted calls together ([server] global_rate; off by default)
GLOBAL_LIMIT = web.AppKey("global_limit", object)
PROXIES = web.AppKey("proxies", frozenset)
TRAINER = web.AppKey("trainer", object)
ROUTES = web.AppKey("routes", tuple)  # the role's (method, path, handler) triples
DECIDING = ("/v1/decide", "/v1/outcome", "/v1/activate")
#: what pages call: CORS from ``[server] allowed_origins``
FROM_PAGES = ("/v1/decide", "/v1/activate")
#: what pages load (CORS headers for the allowed origins, no preflight)
FOR_PAGES = ("/v1/client.js",)
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
        except trust.UnsignedError as exc:
            response = error_response(401, exc.code, exc.message, exc.field)
        except trust.ForbiddenFieldError as exc:
            response = error_response(403, exc.code, exc.message, exc.field)
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


async def read_body(request: web.Request) -> bytes:
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
    try:  # a body that trickles in must not hold a request open for ever
        return await asyncio.wait_for(request.read(), request.app[BODY_TIMEOUT])
    except asyncio.TimeoutError:
        raise web.HTTPRequestTimeout() from None


def _caller(request: web.Request) -> bool:
    """Whether the caller is trusted (:func:`~bandit.http.auth.may_write`; pages are
    untrusted, :mod:`bandit.http.trust`); an untrusted one is counted against its address's
    limit (429 beyond it)."""
    trusted = may_write(request)
    if not trusted:
        request.app[GLOBAL_LIMIT].check("pages", time.monotonic())
        request.app[ADDRESS_LIMIT].check(trust.client_address(request, request.app[PROXIES]),
                                         time.monotonic())
    return trusted


async def decide(request: web.Request) -> web.Response:
    req = api.decode_decide(await read_body(request))
    config = request.app[ENGINE].config
    trust.check_decide(config, request.app[trust.SIGNING_KEY], _caller(request), req,
                       reader=bearer_reads(request))
    if req.preview is not None:  # a preview link: the chosen action, nothing logged
        answer = preview.decision(config, request.app[preview.KEY], req)
        return web.Response(content_type="application/json", body=api.encode(answer))
    if isinstance(req.visitor_id, str):  # a bad id is the engine's to refuse (400)
        request.app[LIMIT].check(req.visitor_id, time.monotonic())
    d = await request.app[GROUP].decide(req)
    request.app[METRICS].decided[d.placement, d.action, d.group].inc()
    answer = api.DecideResponse(d.event_id, d.action, d.probability, d.group, d.model_version,
                                d.placement, d.deferred)
    if req.explain:
        answer.reasons = (None if d.reasons is None else
                          [api.Reason(r.feature, r.value, r.contribution) for r in d.reasons])
        if d.reasons is None:
            answer.reasons_unavailable = d.reasons_unavailable
        else:
            answer.reasons_versus = d.reasons_versus
    return web.Response(content_type="application/json", body=api.encode(answer))


async def outcome(request: web.Request) -> web.Response:
    if not may_write(request):
        return error_response(401, "unauthorized", "POST /v1/outcome needs 'Authorization: Bearer "
                      "<token>' with the shop's write token (serve prints where it is kept)",
                      "Authorization")
    req = api.decode_outcome(await read_body(request))
    if (req.event_id is None) == (req.visitor_id is None):
        raise CartwheelError("send exactly one of event_id (an outcome of that decision) or "
                             "visitor_id (an order: every open decision of the visitor is "
                             "credited)", field="event_id" if req.event_id else "visitor_id")
    status, events = await request.app[GROUP].outcome(req)
    request.app[METRICS].outcomes.labels(status).inc()
    answer = api.OutcomeResponse(status)
    if events is not None and status != "duplicate":  # a duplicate closed nothing now
        answer.events = events
    return web.Response(content_type="application/json", body=api.encode(answer))


async def activate(request: web.Request) -> web.Response:
    """A page showed a deferred decision (open like decide: pages call it)."""
    req = api.decode_activate(await read_body(request))
    trust.check_activate(request.app[ENGINE].config, request.app[trust.SIGNING_KEY],
                         _caller(request), req)
    status = await request.app[GROUP].activate(req)
    request.app[METRICS].activations.labels(status).inc()
    return web.Response(content_type="application/json",
                        body=api.encode(api.ActivateResponse(status)))


class ClientScript:
    """``GET /v1/client.js``: the storefront script (``assets/client.js``), read once, with an
    ETag (a conditional request answers 304) and a short public cache lifetime, so a shop may
    also host its own copy (docs/integration.md)."""

    MAX_AGE_S = 300

    def __init__(self):
        from importlib import resources

        self.body = resources.files("bandit.http").joinpath("assets", "client.js").read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'

    async def __call__(self, request: web.Request) -> web.Response:
        headers = {"ETag": self.etag, "Cache-Control": f"public, max-age={self.MAX_AGE_S}",
                   "X-Content-Type-Options": "nosniff"}
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, content_type="application/javascript",
                            charset="utf-8", headers=headers)


client_script = ClientScript()


async def metrics(request: web.Request) -> web.Response:
    """Prometheus's page: it shows spend and budget, so it needs the read secret (or the
    token) unless ``[server] open_metrics``."""
    if not (request.app[ENGINE].config.server.open_metrics or may_read(request)):
        return error_response(401, "unauthorized", "/metrics needs 'Authorization: Bearer "
                              "<read secret>' (Prometheus: authorization.credentials), or "
                              "[server] open_metrics = true", "Authorization")
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(content_type="application/json", body=request.app[OPENAPI])


async def unrouted(request: web.Request) -> web.Response:
    """Unknown path (404) or a known path with the wrong method (405), in the error shape."""
    if request.app.get(TRAINER) is not None and request.path in DECIDING:
        return error_response(404, "not_found", "the trainer takes no decisions or outcomes: send them "
                      "to a replica (cartwheel serve --role decide)")
    methods = [m for m, path, _ in request.app[ROUTES] if path == request.path]
    if methods:
        raise web.HTTPMethodNotAllowed(request.method, methods)
    raise web.HTTPNotFound()


def add_routes(app: web.Application, routes) -> None:
    """Route ``(method, path, handler)`` triples, each guarded (one error shape, timed),
    decide with CORS when origins are allowed, and every other path to :func:`unrouted`."""
    cors = Cors(app[ENGINE].config.server.allowed_origins)
    for method, path, handler in routes:
        guarded = _guarded(path, handler)
        if path in FROM_PAGES + FOR_PAGES and cors.origins:
            guarded = cors.wrap(guarded)
        if path in FROM_PAGES and cors.origins:
            app.router.add_route("OPTIONS", path, cors.preflight)
        # GET routes answer HEAD too (load balancers' health checks)
        add = app.router.add_get if method == "GET" else app.router.add_post
        add(path, guarded)
    app.router.add_route("*", "/{tail:.*}", _guarded("other", unrouted))
    app[ROUTES] = tuple(routes)


