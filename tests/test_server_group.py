"""Request groups: concurrent requests share one decide_batch and one commit, and a lone
request is not held back. The app runs in-process on 127.0.0.1 and is called over a socket."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

from bandit.engine import Engine
from bandit.server import make_app
from engine_helpers import shop

CTX = {"device": "mobile", "cart_value": 40.0, "page_type": "cart"}


class CountingEngine(Engine):
    """The real engine, counting its commits and the sizes of its decide batches."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commits, self.batches = 0, []

    def commit(self) -> None:
        self.commits += 1
        super().commit()

    def decide_batch(self, requests, **kwargs):
        if requests:
            self.batches.append(len(requests))
        return super().decide_batch(requests, **kwargs)


@contextlib.asynccontextmanager
async def running(engine):
    runner = web.AppRunner(make_app(engine), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            yield session
    finally:
        await runner.cleanup()


async def _decide(session, i):
    async with session.post("/v1/decide", json={"visitor_id": f"v{i}", "context": CTX}) as r:
        return r.status, await r.json()


def test_concurrent_requests_share_batches_and_commits(tmp_path):
    engine = CountingEngine(shop(holdout={"fraction": 0.0}), tmp_path, seed=0)

    async def scenario():
        async with running(engine) as session:
            decided = await asyncio.gather(*(_decide(session, i) for i in range(64)))
            outcomes = await asyncio.gather(*(
                session.post("/v1/outcome", json={"event_id": d["event_id"], "converted": False,
                                                  "order_value": 0.0})
                for _, d in decided))
            return decided, [r.status for r in outcomes]

    decided, outcome_statuses = asyncio.run(scenario())
    assert all(status == 200 for status, _ in decided) and set(outcome_statuses) == {200}
    assert sum(engine.batches) == 64
    # 64 requests in flight at once: far fewer batches and commits than requests
    assert len(engine.batches) <= 16 and max(engine.batches) >= 8
    assert engine.commits <= 32
    # acknowledged means committed: a second connection to the file sees every decision
    engine.close()
    reopened = Engine.open(shop(holdout={"fraction": 0.0}), tmp_path)
    assert reopened.store.count("decisions") == 64 and reopened.store.count("outcomes") == 64
    reopened.close()


def test_a_lone_request_waits_a_few_loop_passes_not_a_timer(tmp_path):
    """Counted in event-loop passes, not in wall-clock time (which a loaded machine stretches):
    a group closes after two passes that brought no new request."""
    from bandit import api
    from bandit.server import RequestGroup

    engine = CountingEngine(shop(), tmp_path, seed=0)
    group = RequestGroup(engine)

    async def passes_until_answered():
        future = group.decide(api.DecideRequest(visitor_id="v", context=CTX))
        passes = 0
        while not future.done():
            await asyncio.sleep(0)  # one loop pass
            passes += 1
        return passes, future.result()

    passes, decision = asyncio.run(passes_until_answered())
    engine.close()
    assert passes <= RequestGroup.QUIET_PASSES + 2 and decision.action in engine.action_ids
    assert engine.batches == [1] and engine.commits >= 1
