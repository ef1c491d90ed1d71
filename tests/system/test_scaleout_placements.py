"""Placements through decide replicas and a trainer on a real redis-server: decisions carry
their placement over the bus, activations and orders by visitor id reach the trainer, which
closes exactly the right decisions, learns one model per placement (a re-learn of its log)
and publishes them all to the replicas."""

from __future__ import annotations

import asyncio

import numpy as np
from engine_helpers import CTX, placement_shop
from relearn import assert_same_model, assert_same_policy, relearned
from scaleout_helpers import Shop, run

from bandit.http import api
from bandit.scaleout.replica import refresh


def test_replicas_and_a_trainer_carry_placements_activations_and_orders_by_visitor(
        tmp_path, redis_server):
    config = placement_shop(holdout={"fraction": 0.1})
    rng = np.random.default_rng(5)

    async def main():
        async with Shop(redis_server.url, tmp_path / "trainer", config) as s:
            expected: set[str] = set()  # the decisions the orders must close
            for round_ in range(4):
                for g, group in enumerate(s.groups):
                    visitors = [f"v{round_}-{g}-{i}" for i in range(25)]
                    visits = []
                    for v in visitors:
                        visit = {}
                        for p in ("product", "cart", "exit"):
                            visit[p] = await group.decide(api.DecideRequest(
                                v, {**CTX, "cart_value": float(rng.uniform(0, 200))},
                                placement=p))
                            assert visit[p].placement == p
                        visits.append(visit)
                    shown = [rng.random() < 0.5 for _ in visits]
                    answers = await asyncio.gather(*[
                        group.activate(api.ActivateRequest(visit["exit"].event_id))
                        for visit, show in zip(visits, shown) if show])
                    assert set(answers) <= {"accepted"}
                    for k, (v, visit, show) in enumerate(zip(visitors, visits, shown)):
                        if rng.random() < 0.4:
                            status = await group.outcome(api.OutcomeRequest(
                                visitor_id=v, converted=True,
                                order_value=float(rng.uniform(20, 90)),
                                outcome_id=f"order-{round_}-{g}-{k}"))
                            assert status == ("accepted", None)
                            expected |= {visit["product"].event_id, visit["cart"].event_id}
                            if show:
                                expected.add(visit["exit"].event_id)
                s.clock.t += 5.0
                await s.drain()
            db = s.engine.store.db
            closed = {r[0] for r in db.execute(
                "SELECT event_id FROM closed WHERE reason = 'converted'")}
            assert closed == expected
            assert dict(db.execute("SELECT placement, COUNT(*) FROM decisions GROUP BY "
                                   "placement")) == {"product": 200, "cart": 200, "exit": 200}
            assert db.execute("SELECT COUNT(*) FROM activations").fetchone()[0] > 60
            # every placement's model is published, and a replica decides with each
            await s.trainer.publish(force=True)
            assert await refresh(s.replicas[0], s.bus)
            for pid, keeper in s.engine.keepers.items():
                assert_same_policy(s.replicas[0].models[pid].policy, keeper.learner.policy, pid)
            d = await s.groups[0].decide(api.DecideRequest("late", CTX, placement="cart"))
            assert d.model_version == s.engine.keepers["cart"].learner.model_version

    run(main())
    from engine_helpers import Clock

    from bandit import Engine

    engine = Engine.open(config, tmp_path / "trainer", clock=Clock(2e9))
    assert_same_model(engine, relearned(tmp_path / "trainer", config))
    engine.close()
