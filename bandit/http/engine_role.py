"""The engine's roles: one process that decides, learns and reports (``cartwheel serve``), and
the trainer (``cartwheel train``: report, health and metrics; decisions and outcomes go to the
replicas). Requests that arrive close together form a :class:`~bandit.http.serving.RequestGroup`:
its decisions are made by one ``Engine.decide_batch`` (one policy call, one insert), and all of
its writes share one SQLite commit, after which, and only then, they are answered (acknowledged
means durable). A group whose commit fails answers 503 with ``Retry-After`` for all of it, and
nothing of it is stored (every 200 is stored, every 5xx is not).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from bandit.core import gate
from bandit.http import api
from bandit.http import dashboard_routes as dashboard_server
from bandit.http.auth import may_write
from bandit.http.metrics import EngineMetrics
from bandit.http.responses import error_response
from bandit.http.routes import (
    DECIDING,
    ENGINE,
    GROUP,
    METRICS,
    REPORT,
    TRAINER,
    activate,
    client_script,
    decide,
    metrics,
    openapi,
    outcome,
    read_body,
)
from bandit.http.segments_cache import SegmentsCache
from bandit.http.serving import LoopLag, RequestGroup, SingleFlight
from bandit.insight import probation
from bandit.insight.report import build_report, with_engine, with_spend
from bandit.store import erasure as store_erasure
from bandit.store.events import EventStore

log = logging.getLogger("cartwheel.server")


def _report_computer(engine):
    """The report from the log, on a connection of its own (read-only), so that it can run on
    a thread: SQLite aggregates without holding the GIL and decisions go on meanwhile."""
    path, margin = engine.store.path, engine.config.objective.margin
    config = engine.config

    def compute():
        store = EventStore.read_only(path)
        try:
            return build_report(store, margin, placements=config.placement_ids,
                                costed=config.costed_ids,
                                holdout_fraction=config.holdout.fraction,
                                currency=config.currency)
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


async def forget(request: web.Request) -> web.Response:
    """Erase one visitor on request (:meth:`bandit.core.engine.Engine.forget`): after the
    open request group has committed, never inside one."""
    if not may_write(request):
        return error_response(401, "unauthorized", "POST /v1/forget needs 'Authorization: Bearer "
                              "<token>' with the shop's token", "Authorization")
    req = api.decode_forget(await read_body(request))
    engine = request.app[ENGINE]
    while engine.group_open:  # the erasure commits: not with another group's writes
        await request.app[GROUP].committed()
    erased = engine.forget(req.visitor_id)
    return web.Response(content_type="application/json", body=api.encode(api.ForgetResponse(
        "forgotten", erased.decisions, erased.outcomes, erased.activations, store_erasure.NOTE)))


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
                    lag_seconds=trainer.backlog[1],
                    dead_letters=trainer.totals.malformed)
        if healthy and trainer.bus_error is not None:
            healthy, reason = False, trainer.bus_error
    if not healthy:
        body["status"], body["reason"] = "degraded", reason
    return web.Response(status=200 if healthy else 503, content_type="application/json",
                        body=api.encode(body), headers=None if healthy else {"Retry-After": "1"})


async def gate_change(request: web.Request) -> web.Response:
    """A person's decision on a promotion gate (:func:`bandit.core.gate.change`), after the
    open request group has committed (it writes a snapshot)."""
    if not may_write(request):
        return error_response(401, "unauthorized", "POST /v1/policies needs 'Authorization: "
                              "Bearer <token>' with the shop's token", "Authorization")
    req = api.decode_policies(await read_body(request))
    engine = request.app[ENGINE]
    while engine.group_open:
        await request.app[GROUP].committed()
    view = gate.change(engine, req.change, req.spec, req.placement)
    return web.Response(content_type="application/json", body=api.encode(view))


ROUTES = (("POST", "/v1/decide", decide), ("POST", "/v1/outcome", outcome),
          ("POST", "/v1/forget", forget), ("POST", "/v1/policies", gate_change),
          ("POST", "/v1/activate", activate), ("GET", "/v1/client.js", client_script),
          ("GET", "/v1/report", report), ("GET", "/healthz", healthz),
          ("GET", "/metrics", metrics), ("GET", "/openapi.json", openapi),
          *dashboard_server.ROUTES)
ENDPOINTS = tuple(path for _, path, _ in ROUTES)


EXPIRY_SLICE_S = 0.003  # aim for each expiry slice (VW learns every event it closes)
#: retention runs this often, this many decisions a transaction (bandit.core.retention)
COMPACT_EVERY_S, COMPACT_BATCH = 300.0, 500
#: how often a promotion is checked against the holdout (bandit.insight.probation)
PROBATION_EVERY_S = 60.0


def expire_slice(engine, size: int) -> int | None:
    """Close up to ``size`` expired events, or None (nothing done) while a request group has
    writes staged: expiry commits, and committing another group's writes behind its back
    would make that group's writers look rolled back (503) although they were stored."""
    if engine.group_open:
        return None
    return engine.expire(limit=size)


def probation_pass(engine, since: dict) -> list[str]:
    """Roll back a promotion the holdout says is losing (bandit.insight.probation): for each
    gate whose last promotion can still be rolled back, the decisions made since it was first
    seen here (``since``: placement -> (promotions seen, decision seq then), kept by the
    caller between passes). Returns the placements rolled back."""
    rolled = []
    for pid, view in engine.models.gates().items():
        count = len(view["promotions"])
        if view["previous"] is None:
            since.pop(pid, None)
            continue
        if since.get(pid, (None,))[0] != count:
            since[pid] = (count, engine.store.max_seq("decisions"))
            continue
        losing, why = probation.check(engine.store, pid, since[pid][1], 1 - view["confidence"])
        if losing and not engine.group_open:
            gate.change(engine, "roll_back", placement=pid,
                        reason=f"the holdout says the shop earns less: {why}")
            rolled.append(pid)
    return rolled


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

    async def compact():
        """Retention ([storage] keep_days): a batch at a time, requests served between."""
        while True:
            await asyncio.sleep(COMPACT_EVERY_S)
            try:
                while not engine.group_open:
                    removed = engine.compact(limit=COMPACT_BATCH)
                    if removed < COMPACT_BATCH:
                        break
                    await asyncio.sleep(0)
            except Exception:
                log.exception("retention failed; will retry")

    async def on_probation():
        """A promotion the holdout says is losing is rolled back (probation_pass)."""
        since: dict = {}
        while True:
            await asyncio.sleep(PROBATION_EVERY_S)
            try:
                probation_pass(engine, since)
            except Exception:
                log.exception("the holdout check of a promotion failed; will retry")

    tasks = [asyncio.create_task(expire()),
             asyncio.create_task(LoopLag(app[METRICS].loop_lag.observe).run())]
    if engine.config.retention_s is not None:
        tasks.append(asyncio.create_task(compact()))
    if any(p.challengers for p in engine.config.placements):
        tasks.append(asyncio.create_task(on_probation()))
    yield
    for task in tasks:
        task.cancel()


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


def one_process(app: web.Application, engine, trainer=None):
    """Fill ``app`` for the engine's role (the trainer's with ``trainer``); returns the role's
    routes and its background task (an aiohttp cleanup context)."""
    app[METRICS] = EngineMetrics(engine, ENDPOINTS)
    app[REPORT] = SingleFlight(_report_computer(engine))
    app[dashboard_server.SEGMENTS] = SegmentsCache(engine)
    app[TRAINER] = trainer
    group = RequestGroup(engine, on_close=app[METRICS].group_size.observe)
    if trainer is None:
        return group, ROUTES, _background
    return group, tuple(r for r in ROUTES if r[1] not in DECIDING), _training
