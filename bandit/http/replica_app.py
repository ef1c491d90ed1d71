"""``cartwheel serve --role decide``: the HTTP endpoint of a decide replica.

The same routes, request shapes and errors as the single process (``bandit.http.app``'s
handlers), with a :class:`ReplicaGroup` in place of the engine's request group: a group's
decisions and outcomes become one bus entry, answered once Redis acknowledged it; with Redis
down, every request of the group answers 503 within the bus timeout. Outcomes answer
``accepted`` (durable in the stream); whether one was unknown, late or a conflict the trainer
finds out, and counts (``cartwheel_trainer_outcomes``). Reports come from the trainer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from bandit.core.decider import MAX_VISITOR_ID
from bandit.domain.errors import StorageError
from bandit.domain.outcomes import check_outcome
from bandit.domain.privacy import hash_visitor
from bandit.http import api
from bandit.http import app as server
from bandit.http.auth import TOKEN
from bandit.http.metrics import ReplicaMetrics
from bandit.http.responses import error_response
from bandit.http.serving import LoopLag, RequestGroup, VisitorLimit, answer
from bandit.scaleout.records import BusEntry, BusOutcome, encode_entry
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

    async def outcome(self, req: api.OutcomeRequest) -> str:
        replica = self.engine
        key = check_outcome(req.event_id, req.converted, req.order_value, req.outcome_id,
                            replica.config.objective, replica.salt)
        record = BusOutcome(req.event_id, replica.clock(), req.converted,
                            float(req.order_value), key)
        future = self._join()
        self._writers.append((future, record))
        await future
        return "accepted"

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
                await self.bus.append(encode_entry(BusEntry(decisions, records, replica.name)),
                                      caps)
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
    replica = request.app[server.ENGINE]
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


def make_replica_app(replica, bus, *, token: str | None, poll_s: float = 1.0
                     ) -> web.Application:
    """The aiohttp application of a decide replica."""
    config = replica.config
    max_body = config.server.max_body_bytes
    app = web.Application(client_max_size=max_body + 1)
    metrics = ReplicaMetrics(replica, server.ENDPOINTS)
    app[server.ENGINE], app[BUS], app[TOKEN] = replica, bus, token
    app[server.MAX_BODY], app[server.METRICS] = max_body, metrics
    app[server.GROUP] = ReplicaGroup(replica, bus, on_close=metrics.group_size.observe,
                                     on_append=metrics.bus_latency.observe)
    app[server.LIMIT] = VisitorLimit(config.server.visitor_rate, config.server.visitor_burst)
    app[server.OPENAPI] = api.encode(api.openapi(title=f"cartwheel: {config.name} (replica)"))
    server.add_routes(app, (
        ("POST", "/v1/decide", server.decide), ("POST", "/v1/outcome", server.outcome),
        ("GET", "/v1/report", report), ("GET", "/healthz", healthz),
        ("GET", "/metrics", server.metrics), ("GET", "/openapi.json", server.openapi)))

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

    app.cleanup_ctx.append(background)
    return app
