"""``cartwheel serve --role decide``: the decide replica's role of the one app
(:func:`bandit.http.app.make_app` with a bus).

The same routes, request shapes and errors as the single process (:mod:`bandit.http.routes`),
with a :class:`ReplicaGroup` in place of the engine's request group: a group's
decisions, outcomes and activations become one bus entry, answered once Redis acknowledged it;
with Redis down, every request of the group answers 503 within the bus timeout. Outcomes and
activations answer ``accepted`` (durable in the stream); whether one was unknown, late or a
conflict, and how many decisions an order by visitor closed, the trainer finds out and counts
(``cartwheel_trainer_outcomes``). Reports come from the trainer.

A deferred decision counts toward a replica's frequency caps from when it is decided (the
replica that takes its activation does not know its visitor): caps on replicas are the stricter
for it, never looser.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from bandit.domain.errors import StorageError
from bandit.domain.outcomes import check_event_id, check_outcome, check_redeemed
from bandit.domain.privacy import MAX_VISITOR_ID, check_visitor, hash_visitor
from bandit.http import api
from bandit.http.metrics import ReplicaMetrics
from bandit.http.responses import error_response
from bandit.http.routes import (
    ENGINE,
    METRICS,
    activate,
    client_script,
    decide,
    metrics,
    openapi,
    outcome,
)
from bandit.http.serving import LoopLag, RequestGroup, answer
from bandit.scaleout.records import BusActivation, BusEntry, BusOutcome, encode_entry
from bandit.scaleout.replica import follow_snapshots

log = logging.getLogger("cartwheel.replica")
BUS = web.AppKey("bus", object)


class ReplicaGroup(RequestGroup):
    """Requests arriving close together become one bus entry (see the module docstring). One
    group is appended at a time: requests arriving meanwhile form the next, larger, group
    (so caps on one replica count every earlier decision of it)."""

    def __init__(self, replica, bus, on_close=None, on_append=None):
        super().__init__(replica, on_close)
        self.bus, self.on_append = bus, on_append
        self._busy = False
        self._flushing: asyncio.Task | None = None

    async def outcome(self, req: api.OutcomeRequest) -> tuple[str, None]:
        """The outcome goes into the group's entry; the trainer joins it (by visitor: to the
        visitor's open decisions it holds), so how many it closes is not known here."""
        replica = self.engine
        visitor = None
        if req.visitor_id is not None:
            check_visitor(req.visitor_id)
            visitor = hash_visitor(req.visitor_id, replica.salt)
        key = check_outcome(req.event_id, req.converted, req.order_value,
                            req.outcome_id, replica.config.objective, replica.salt)
        redeemed = check_redeemed(req.redeemed, replica.config.action_ids)
        await self._write(BusOutcome(req.event_id or "", replica.clock(), req.converted,
                                     float(req.order_value), key, visitor,
                                     None if redeemed is None else sorted(redeemed)))
        return "accepted", None

    async def activate(self, req: api.ActivateRequest) -> str:
        check_event_id(req.event_id)
        await self._write(BusActivation(req.event_id, self.engine.clock()))
        return "accepted"

    async def _write(self, record) -> None:
        """Add ``record`` to the group's entry; done once Redis acknowledged it."""
        future = self._join()
        self._writers.append((future, record))
        await future

    def _close(self) -> None:
        if self._busy:  # stays open: the running append closes it when it is done
            return
        decides, self._decides = self._decides, []
        outcomes, self._writers = self._writers, []
        self._open = False
        if self.on_close is not None:
            self.on_close(len(decides) + len(outcomes))
        self._busy = True
        # a reference kept: the loop holds tasks only weakly, and this one answers requests
        self._flushing = asyncio.get_running_loop().create_task(self._flush(decides, outcomes))

    async def _flush(self, decides: list, outcomes: list) -> None:
        try:
            results, failed = await self._decide_and_append([r for r, _ in decides],
                                                            [o for _, o in outcomes])
            for (_, future), result in zip(decides, results):
                answer(future, result)
            for future, _ in outcomes:
                answer(future, failed or "accepted")
        finally:
            self._busy = False
            if self._decides or self._writers:
                self._close()
            else:
                self._open = False

    async def _decide_and_append(self, requests: list, records: list):
        replica = self.engine
        try:
            now = replica.clock()
            if requests and replica.guardrails.caps:
                hashes = list({hash_visitor(v, replica.salt) for v, *_ in requests
                               if isinstance(v, str) and 0 < len(v) <= MAX_VISITOR_ID})
                replica.set_caps(hashes, await self.bus.cap_counts(
                    replica.cap_queries(hashes, now)))
            results = replica.decide_batch(requests, now=now, commit=False) if requests else []
            decisions, caps = replica.take()
            if decisions or records:
                started = time.perf_counter()
                outcomes = [r for r in records if isinstance(r, BusOutcome)]
                shown = [r for r in records if isinstance(r, BusActivation)]
                await self.bus.append(encode_entry(BusEntry(decisions, outcomes, replica.name,
                                                            shown)), caps)
                if self.on_append is not None:
                    self.on_append(time.perf_counter() - started)
            replica.appended()
            return results, None
        except Exception as exc:  # nothing of the group counts
            replica.rollback(exc)  # a StorageError marks it degraded
            if not isinstance(exc, StorageError):
                log.exception("a request group failed")
            return [exc] * len(requests), exc


async def healthz(request: web.Request) -> web.Response:
    replica = request.app[ENGINE]
    healthy = replica.degraded is None
    if not healthy:  # while degraded, one round trip says whether the bus answers again
        try:
            await request.app[BUS].now()
            replica.degraded = None
            healthy = True
        except StorageError:
            pass
    body = {"status": "ok" if healthy else "degraded", "role": "decide",
            "model_version": replica.model_version, "shop": replica.config.name}
    if not healthy:
        body["reason"] = replica.degraded
    return web.Response(status=200 if healthy else 503, content_type="application/json",
                        body=api.encode(body), headers=None if healthy else {"Retry-After": "1"})


async def report(request: web.Request) -> web.Response:
    return error_response(404, "not_found", "a replica keeps no log: the report comes from the "
                         "trainer (GET /v1/report on cartwheel train's --port)")


ROUTES = (("POST", "/v1/decide", decide), ("POST", "/v1/outcome", outcome),
          ("POST", "/v1/activate", activate), ("GET", "/v1/client.js", client_script),
          ("GET", "/v1/report", report), ("GET", "/healthz", healthz),
          ("GET", "/metrics", metrics), ("GET", "/openapi.json", openapi))
ENDPOINTS = tuple(path for _, path, _ in ROUTES)


def decide_replica(app: web.Application, replica, bus, poll_s: float = 1.0):
    """Fill ``app`` for a decide replica's role; returns its request group, routes and
    background tasks (following published models and the shared spend)."""
    config = replica.config
    metrics = app[METRICS] = ReplicaMetrics(replica, ENDPOINTS)
    app[BUS] = bus
    group = ReplicaGroup(replica, bus, on_close=metrics.group_size.observe,
                         on_append=metrics.bus_latency.observe)

    async def background(app):
        def failed(exc):
            metrics.bus_errors.inc()

        async def spend():
            while True:
                try:
                    shared = await bus.spend()
                    if shared is not None:
                        replica.set_shared(*shared)
                except StorageError:
                    metrics.bus_errors.inc()
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(follow_snapshots(replica, bus, poll_s, failed)),
                 asyncio.create_task(LoopLag(metrics.loop_lag.observe).run())]
        if config.budget is not None:
            tasks.append(asyncio.create_task(spend()))
        yield
        for task in tasks:
            task.cancel()
        await bus.close()

    return group, ROUTES, background
