"""Decide replicas and a trainer on a real redis-server, driven in one process (deterministic):
exactly-once ingest, model broadcast, caps across replicas, one config, Redis down, and the
same captured gain as one process."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from engine_helpers import Clock, shop
from groups import drive_groups
from redis_helpers import RedisServer
from relearn import assert_same_model, relearned
from scaleout_helpers import Shop, bus_of, run

import simulator
from bandit import Engine
from bandit.domain.errors import BusConfigError, BusUnavailableError
from bandit.http import api
from bandit.http.serving import RequestGroup
from bandit.scaleout.bus import fingerprint
from bandit.scaleout.replica import refresh

CTX = {"device": "mobile", "cart_value": 35.0, "traffic_source": "paid"}


def test_groups_are_ingested_exactly_once_and_the_model_is_a_relearn_of_the_log(
        tmp_path, redis_server):
    config = shop(holdout={"fraction": 0.1})

    async def main():
        async with Shop(redis_server.url, tmp_path / "trainer", config) as s:
            rng = np.random.default_rng(0)
            acked_decisions, acked_outcomes = [], []
            for round_ in range(6):
                for g, group in enumerate(s.groups):
                    ds = await asyncio.gather(*[group.decide(api.DecideRequest(
                        f"v{rng.integers(300)}", {**CTX, "cart_value": float(rng.uniform(0, 200))}))
                        for _ in range(40)])
                    acked_decisions += [d.event_id for d in ds]
                    buys = [d for d in ds if rng.random() < 0.3]
                    # opaque order ids (an event id's 32 hex digits can look like a card
                    # number to the personal-data check, which then refuses it)
                    st = await asyncio.gather(*[group.outcome(api.OutcomeRequest(
                        event_id=d.event_id, converted=True,
                        order_value=float(rng.uniform(10, 90)),
                        outcome_id=f"order-{round_}-{g}-{k}")) for k, d in enumerate(buys)])
                    assert set(st) <= {("accepted", None)}
                    acked_outcomes += [d.event_id for d in buys]
                s.clock.t += 1.0
                await s.drain()
            # trimmed: only the entry at the committed offset is left of 12
            assert len(await s.bus.redis.xrange(s.bus.log_key)) == 1
            return acked_decisions, acked_outcomes

    decisions, outcomes = run(main())
    engine = Engine.open(config, tmp_path / "trainer", clock=Clock(2e9))
    stored = [r[0] for r in engine.store.db.execute("SELECT event_id FROM decisions")]
    assert sorted(stored) == sorted(decisions)  # each acknowledged decision, once, nothing else
    closed = [r[0] for r in engine.store.db.execute(
        "SELECT event_id FROM closed WHERE reason = 'converted'")]
    assert sorted(closed) == sorted(outcomes)
    assert_same_model(engine, relearned(tmp_path / "trainer", config))
    engine.close()


def test_a_repeated_entry_is_ingested_once(tmp_path, redis_server):
    config = shop()

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config, n=1) as s:
            group = s.groups[0]
            ds = await asyncio.gather(*[group.decide(api.DecideRequest(f"v{i}", CTX))
                                        for i in range(30)])
            await group.outcome(api.OutcomeRequest(
                event_id=ds[0].event_id, converted=True, order_value=40.0, outcome_id="o-1"))
            raw = [e for _, e, _ in await s.bus.read("0-0", 100)]
            for entry in raw:  # the same bytes appended twice more
                await s.bus.append(entry, [])
                await s.bus.append(entry, [])
            await s.drain()
            t = s.trainer.totals
            assert (t.decisions, t.duplicates) == (30, 2 * 30 + 2)
            assert t.outcomes == {"recorded": 1, "duplicate": 2}
            assert s.engine.store.count("decisions") == 30
            assert s.engine.store.count("outcomes") == 1

    run(main())


def test_the_published_model_reaches_replicas_and_names_itself_in_decisions(
        tmp_path, redis_server):
    config = shop(holdout={"fraction": 0.0})

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config) as s:
            for _ in range(3):
                for group in s.groups:
                    ds = await asyncio.gather(*[group.decide(api.DecideRequest(f"v{i}", CTX))
                                                for i in range(100)])
                    await asyncio.gather(*[group.outcome(api.OutcomeRequest(
                        event_id=d.event_id, converted=True, order_value=50.0))
                                           for d in ds[:20]])
                s.clock.t += 2.0
                await s.drain()
            version = s.engine.model_version
            assert version > 0 and s.trainer.published == version
            assert await refresh(s.replicas[0], s.bus)
            assert not await refresh(s.replicas[0], s.bus)  # already on it
            assert s.replicas[0].model_version == version
            # the replica's policy is the trainer's state (its own random stream aside)
            mine, theirs = s.replicas[0].policy.get_state(), s.engine.policy.get_state()
            for key in theirs:
                if key.startswith("policy.") and theirs[key].dtype.kind == "f":
                    np.testing.assert_array_equal(mine[key], theirs[key])
            d = await s.groups[0].decide(api.DecideRequest("v-new", CTX))
            assert d.model_version == version
            assert s.replicas[1].model_version == 0  # not refreshed yet
            await s.drain()
            row = s.engine.store.decision(d.event_id)
            assert row.model_version == version
            # two replicas on the same published model never draw in lockstep
            await asyncio.gather(*[s.groups[1].decide(api.DecideRequest(f"w{i}", CTX))
                                        for i in range(70)])
            await s.drain()
            await s.trainer.publish(force=True)
            assert s.trainer.published == s.engine.model_version > version
            assert await refresh(s.replicas[0], s.bus) and await refresh(s.replicas[1], s.bus)
            assert s.replicas[0].model_version == s.replicas[1].model_version
            a = s.replicas[0].policy.rng.random(4)
            b = s.replicas[1].policy.rng.random(4)
            assert not np.allclose(a, b)

    run(main())


def test_a_model_of_another_config_is_not_loaded(tmp_path, redis_server):
    config = shop()

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config, n=1) as s:
            await s.groups[0].decide(api.DecideRequest("v1", CTX))
            await s.drain()
            state, meta = s.engine.snapshot_contents()
            from bandit.scaleout.replica import snapshot_bytes
            meta["config_hash"] = "0123456789abcdef"
            await s.bus.publish_snapshot(99, *snapshot_bytes(state, meta))
            refused = set()
            assert not await refresh(s.replicas[0], s.bus, refused)
            assert refused == {99} and s.replicas[0].model_version == 0

    run(main())


def test_a_process_with_another_config_or_hash_key_refuses_to_join(tmp_path, redis_server):
    """One config and one hash key for every process; Redis holds neither key nor token (a
    fingerprint of the hash key tells whether two processes agree, and nothing more)."""
    async def main():
        bus = bus_of(redis_server.url, "shop")
        await bus.join("aaaa", "a.toml", fingerprint=fingerprint("k1"))
        await bus.join("aaaa", "copy-of-a.toml", fingerprint=fingerprint("k1"))
        with pytest.raises(BusConfigError, match=r"b\.toml, hash bbbb.*a\.toml, hash aaaa"):
            await bus.join("bbbb", "b.toml", fingerprint=fingerprint("k1"))
        await bus.join("bbbb", "b.toml", fingerprint=fingerprint("k1"), replace=True)
        with pytest.raises(BusConfigError, match="hash key"):
            await bus.join("bbbb", "b.toml", fingerprint=fingerprint("another"))
        shared = await bus.redis.hgetall(bus.shared_key)
        assert set(shared) == {b"config_hash", b"config_source", b"fingerprint"}
        assert b"k1" not in b"".join(shared.values())
        # a shop of the previous release kept its salt and token in Redis: a process with
        # another key is refused and told where the old one is; one with it removes both
        await bus.redis.hset(bus.shared_key, mapping={"salt": "k1", "token": "t0ken"})
        with pytest.raises(BusConfigError, match="HGET cartwheel:shop:shared salt"):
            await bus.join("bbbb", "b.toml", fingerprint=fingerprint("k2"), hash_key="k2")
        await bus.join("bbbb", "b.toml", fingerprint=fingerprint("k1"), hash_key="k1")
        assert set(await bus.redis.hgetall(bus.shared_key)) == {
            b"config_hash", b"config_source", b"fingerprint"}
        await bus.close()

    run(main())


def test_caps_count_the_decisions_of_every_replica(tmp_path, redis_server):
    # one visitor may see a discount at most once a day, whichever replica it reaches
    config = shop(holdout={"fraction": 0.0},
                  caps={"limits": [{"action": "discount_10", "max_per_visitor": 1,
                                    "window_s": 86400}]})

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config) as s:
            shown = {}
            for visitor in range(40):
                for k in range(6):  # alternate replicas, only discount_10 or the control
                    d = await s.groups[k % 2].decide(api.DecideRequest(
                        f"v{visitor}", CTX, ["discount_10", "none"]))
                    shown[visitor] = shown.get(visitor, 0) + (d.action == "discount_10")
                    s.clock.t += 1.0
            assert max(shown.values()) == 1  # never a second time, on either replica
            assert sum(shown.values()) >= 30  # and the cap did not remove it for everyone
            s.clock.t += 86400 + 1  # the window passed: eligible again
            d = [await s.groups[1].decide(api.DecideRequest(f"v{v}", CTX, ["discount_10"]))
                 for v in range(5)]
            assert {x.action for x in d} == {"discount_10"}

    run(main())


def test_with_redis_down_decide_fails_fast_and_nothing_changes(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    config = shop()

    async def main():
        async with Shop(server.url, tmp_path / "t", config, n=1) as s:
            group, replica = s.groups[0], s.replicas[0]
            first = await group.decide(api.DecideRequest("v0", CTX))
            rng_state = replica.policy.rng.bit_generator.state
            server.kill()
            started = time.monotonic()
            with pytest.raises(BusUnavailableError):
                await group.decide(api.DecideRequest("v1", CTX))
            with pytest.raises(BusUnavailableError):
                await group.outcome(api.OutcomeRequest(
                    event_id="e", converted=True, order_value=1.0))
            assert time.monotonic() - started < 5.0  # bounded by the bus timeout, no hang
            assert replica.degraded is not None and replica.decided_total == 1
            assert replica.policy.rng.bit_generator.state == rng_state
            with pytest.raises(BusUnavailableError):  # the trainer's step fails, retried later
                await s.trainer.step(block_ms=None)
            server.start()
            d = await group.decide(api.DecideRequest("v2", CTX))
            assert replica.degraded is None
            # a hung Redis (connections open, no answers): 503 within the bus timeout too
            server.pause()
            started = time.monotonic()
            with pytest.raises(BusUnavailableError):
                await group.decide(api.DecideRequest("v3", CTX))
            hung = time.monotonic() - started
            server.resume()
            assert hung < 2.5, hung  # 0.5 s socket timeout, a bounded wait above it
            d4 = await group.decide(api.DecideRequest("v4", CTX))
            await s.drain()
            stored = {r[0] for r in s.engine.store.db.execute("SELECT event_id FROM decisions")}
            acked = {first.event_id, d.event_id, d4.event_id}
            # every acknowledged one; and the hung append may have reached Redis's socket
            # buffer and been applied on resume although it was answered 503 (the only
            # decision that can be stored without an answer)
            assert acked <= stored and len(stored - acked) <= 1
    try:
        run(main())
    finally:
        server.stop()


async def _one_process(engine, world, **traffic):
    async def expire():
        engine.expire()

    return await drive_groups([RequestGroup(engine)], world, after_batch=expire, **traffic)


async def _replicas(shop_, world, **traffic):
    async def after_batch():
        await shop_.drain()
        for replica in shop_.replicas:
            await refresh(replica, shop_.bus)

    return await drive_groups(shop_.groups, world, after_batch=after_batch, **traffic)


@pytest.mark.slow
def test_two_replicas_and_a_trainer_capture_what_one_process_does(tmp_path, redis_server):
    # The same simulated traffic (60,000 visitors at 1/s, the world's order delays, a 1-hour
    # window, 100 visitors per mini-batch) through one process's request group and through
    # two replicas' groups + a trainer that publishes at most every 250 simulated seconds, so
    # replicas decide with a model up to 300 visitors older than one process would, and learn
    # each order at least one mini-batch later.
    # Seeded (seed 0): one process 0.251, replicas 0.321 (seed 1: 0.304, 0.465). Measured at
    # 100,000 visitors (seeds 0-3, publication every mini-batch): one process 0.348 / 0.348 /
    # 0.311 / 0.319, replicas 0.431 / 0.464 / 0.423 / 0.458: the delay never cost gain; the
    # replicas came out 8-14 points *ahead*, which no single cause explained (outcome timing,
    # reseeded draws and decided-by-a-copy each moved a run by a few points either way:
    # linucb's early over-reaction to the first conversions makes a run sensitive to when
    # each is learned). So the bound is one-sided: scale-out may not lose more than 3 points.
    world = simulator.make_world()
    config = shop(holdout={"fraction": 0.0}, attribution={"window_s": 3600})
    traffic = {"visitors": 60_000, "rate": 1.0, "seed": 0}
    engine = Engine.open(config, tmp_path / "one", seed=0, clock=Clock())
    one = run(_one_process(engine, world, **traffic))
    engine.close()

    async def main():
        async with Shop(redis_server.url, tmp_path / "trainer", config,
                        publish_every_s=250.0) as s:
            result = await _replicas(s, world, **traffic)
            versions = [r[0] for r in s.engine.store.db.execute(
                "SELECT DISTINCT model_version FROM decisions")]
            return result, versions

    scaled, versions = run(main())
    assert scaled.visitors == one.visitors == 60_000
    # the replicas decided with published models, a new one every third mini-batch of 600
    assert 150 <= len(versions) <= 250, len(versions)
    assert one.captured_gain > 0.1  # both learned (uniform is 0)
    assert scaled.captured_gain >= one.captured_gain - 0.03, (scaled.captured_gain,
                                                              one.captured_gain)


async def _pay_incentives(s: Shop, costed: set, n: int) -> None:
    """200 decisions through the first replica, then ``n`` of its incentives convert (orders
    of 100), all ingested by the trainer."""
    group = s.groups[0]
    ds = await asyncio.gather(*[group.decide(api.DecideRequest(f"v{i}", CTX))
                                for i in range(200)])
    for d in [d for d in ds if d.action in costed][:n]:
        await group.outcome(api.OutcomeRequest(
            event_id=d.event_id, converted=True, order_value=100.0))
    await s.drain()


def test_replicas_stop_incentives_once_the_trainer_publishes_the_budget_spent(
        tmp_path, redis_server):
    config = shop(holdout={"fraction": 0.0},
                  budget={"daily_incentive_spend": 20.0, "timezone": "UTC"})
    costed = {a.id for a in config.actions if a.costed}

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config, n=1) as s:
            group, replica = s.groups[0], s.replicas[0]
            await _pay_incentives(s, costed, 10)  # each costs a few units of the budget of 20
            spent = s.engine.guardrails.spend.spent(s.clock())
            assert spent >= 20.0
            shared = await s.bus.spend()
            assert shared[1] == pytest.approx(spent)
            before = await asyncio.gather(*[group.decide(api.DecideRequest(f"w{i}", CTX))
                                            for i in range(100)])
            assert any(d.action in costed for d in before)  # the replica has not read it yet
            replica.set_shared(*shared)  # what the replica's 1 s refresh does
            after = await asyncio.gather(*[group.decide(api.DecideRequest(f"x{i}", CTX))
                                           for i in range(100)])
            assert not any(d.action in costed for d in after)
            s.clock.t += 86400  # a new budget day: incentives again
            again = await asyncio.gather(*[group.decide(api.DecideRequest(f"y{i}", CTX))
                                           for i in range(100)])
            assert any(d.action in costed for d in again)

    run(main())


def test_the_trainer_publishes_the_pacing_price_and_replicas_take_it(tmp_path, redis_server):
    from bandit.core import pacing

    config = shop(holdout={"fraction": 0.0},
                  budget={"daily_incentive_spend": 20.0, "timezone": "UTC", "pacing": "even"})
    costed = {a.id for a in config.actions if a.costed}

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config, n=1) as s:
            group, replica = s.groups[0], s.replicas[0]
            await _pay_incentives(s, costed, 5)
            assert s.engine.pacing_price.price == 0.0  # no step has ended yet
            s.clock.t += pacing.STEP_S  # the next decisions fall in a later step
            await asyncio.gather(*[group.decide(api.DecideRequest(f"w{i}", CTX))
                                   for i in range(10)])
            await s.drain()
            price = s.engine.pacing_price
            assert price.price > 0  # the first step spent far more than 20 / 96
            shared = await s.bus.spend()
            assert pacing.decode(shared[2]) == price
            replica.set_shared(*shared)
            assert replica.pacing_price == price

    run(main())
