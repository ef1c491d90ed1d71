"""Hostile bus entries through a real redis-server: every record that fails the checks a
request would fail goes to the dead-letter stream with its reason, the valid entries after it
are ingested, and the trainer restarts cleanly (bandit.scaleout.checks)."""

from __future__ import annotations

import asyncio
import math

import msgspec
from engine_helpers import Clock, placement_shop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relearn import assert_same_model, relearned
from scaleout_helpers import Shop

from bandit import Engine
from bandit.http import api
from bandit.scaleout.records import BusDecision, BusEntry, BusOutcome, encode_entry
from bandit.scaleout.trainer import Trainer

CTX = {"device": "mobile", "cart_value": 35.0}
EVENT = "18f0a1b2c3d4e5f6" * 2
VISITOR = "ab" * 16


def _decision(**change) -> BusDecision:
    base = dict(event_id=EVENT, ts=1_700_000_000.0, visitor_hash=VISITOR,
                context={"device": "mobile"}, eligible=["none", "free_shipping", "discount_5"],
                action="discount_5", probability=0.4, group="treatment", model_version=0,
                randomized=True, placement="cart", deferred=False)
    return BusDecision(**{**base, **change})


HOSTILE_DECISIONS = {
    "context holds NaN": _decision(context={"cart_value": math.nan}),
    "context holds an undeclared key": _decision(context={"colour": "red"}),
    "context holds an e-mail address": _decision(context={"device": "a@b.example"}),
    "ts far in the future": _decision(ts=1e12),
    "ts not finite": _decision(ts=math.inf),
    "model_version beyond 2^62": _decision(model_version=2**64 - 1),
    "probability 0": _decision(probability=0.0, randomized=True),
    "probability above 1": _decision(probability=1.5),
    "action outside eligible": _decision(action="discount_10"),
    "eligible of another placement": _decision(eligible=["none", "upsell_bundle"],
                                               action="upsell_bundle"),
    "unknown placement": _decision(placement="checkout"),
    "holdout showing an incentive": _decision(group="holdout", probability=1.0,
                                              randomized=False),
    "an unknown group": _decision(group="vip"),
    "a visitor id in the clear": _decision(visitor_hash="jane@example.com"),
    "an event id that is not one": _decision(event_id="../../etc/passwd"),
    "randomized that lies": _decision(probability=1.0, randomized=True),
    "a would-have draw on a treatment row": _decision(would_have_action="discount_5",
                                                      would_have_probability=0.4),
    "a would-have action of another placement": _decision(
        group="holdout", action="none", probability=1.0, randomized=False,
        would_have_action="upsell_bundle", would_have_probability=0.5),
    "a would-have probability of 0": _decision(
        group="holdout", action="none", probability=1.0, randomized=False,
        would_have_action="discount_5", would_have_probability=0.0),
    "a would-have action without its probability": _decision(
        group="holdout", action="none", probability=1.0, randomized=False,
        would_have_action="discount_5"),
}
HOSTILE_OUTCOMES = {
    "order value NaN": BusOutcome(EVENT, 1_700_000_100.0, True, math.nan),
    "order value beyond max": BusOutcome(EVENT, 1_700_000_100.0, True, 1e12),
    "neither event nor visitor": BusOutcome("", 1_700_000_100.0, True, 10.0),
    "both event and visitor": BusOutcome(EVENT, 1_700_000_100.0, True, 10.0, None, VISITOR),
    "an outcome key that is not a hash": BusOutcome(EVENT, 1_700_000_100.0, True, 10.0,
                                                    "order-1"),
}


async def _signed(bus, raw: bytes) -> None:
    await bus.redis.xadd(bus.log_key, {"e": raw, "mac": bus.mac(raw)})


def run(coro):
    return asyncio.run(coro)


async def _valid_round(s: Shop, n: int, tag: str) -> list[str]:
    ds = await asyncio.gather(*[s.groups[0].decide(api.DecideRequest(
        f"{tag}-{i}", CTX, placement="cart")) for i in range(n)])
    return [d.event_id for d in ds]


def test_hostile_records_go_to_the_dead_letter_stream_and_ingest_goes_on(tmp_path,
                                                                         redis_server):
    config = placement_shop(holdout={"fraction": 0.1})
    clock = Clock(1_700_000_000.0)

    async def main():
        async with Shop(redis_server.url, tmp_path / "trainer", config, n=1, clock=clock) as s:
            good = await _valid_round(s, 20, "before")
            # signed with the bus key (as if it had leaked): the checks still hold
            for record in HOSTILE_DECISIONS.values():
                await _signed(s.bus, encode_entry(BusEntry([record], [], "intruder")))
            for record in HOSTILE_OUTCOMES.values():
                await _signed(s.bus, encode_entry(BusEntry([], [record], "intruder")))
            for raw in (b"\xff\x00garbage", msgspec.msgpack.encode([1, 2, 3]), b""):
                await _signed(s.bus, raw)
            # a well-formed entry without the key's signature: a writer to Redis is not one
            # of the shop's processes
            forged = encode_entry(BusEntry([_decision(event_id="18f0a1b2c3d4e5f7" * 2)], [],
                                           "intruder"))
            await s.bus.redis.xadd(s.bus.log_key, {"e": forged})
            await s.bus.redis.xadd(s.bus.log_key, {"e": forged, "mac": b"0" * 64})
            good += await _valid_round(s, 20, "after")
            await s.drain()
            stored = {r[0] for r in s.engine.store.db.execute("SELECT event_id FROM decisions")}
            assert stored == set(good)  # every valid decision, nothing else
            # the replicas' holdout rows arrive with the draw a treated visitor would have got
            holdout = s.engine.store.db.execute(
                "SELECT would_have_action, would_have_probability FROM decisions "
                "WHERE grp = 'holdout'").fetchall()
            assert holdout and all(a in config.placement("cart").actions and 0 < p <= 1
                                   for a, p in holdout)
            letters = await s.bus.dead_letters(1000)
            hostile = len(HOSTILE_DECISIONS) + len(HOSTILE_OUTCOMES) + 3 + 2
            assert len(letters) == hostile
            assert s.trainer.totals.malformed == hostile
            reasons = [letter["reason"].decode() for letter in letters]
            assert any("probability 0.0 outside (0, 1]" in r for r in reasons)
            assert any("not a cartwheel entry" in r for r in reasons)
            assert sum("not signed with the shop's bus key" in r for r in reasons) == 2
            assert sum("is not a time within" in r for r in reasons) == 2
            # no secret travels with a dead letter: the records as they came, and the reason
            assert all(set(letter) == {"entry", "kind", "reason", "record"} for letter in letters)
            return good

    good = run(main())
    # a restart of the trainer starts cleanly, and its model is a re-learn of what it stored
    engine = Engine.open(config, tmp_path / "trainer", clock=Clock(2e9))
    assert engine.store.count("decisions") == len(good)
    assert_same_model(engine, relearned(tmp_path / "trainer", config))
    engine.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3), max_leaves=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(list(BusDecision.__struct_fields__)), value=json_values)
def test_any_value_in_any_field_never_stops_the_trainer(tmp_path_factory, redis_server, field,
                                                        value):
    """Each example: one decision with one field replaced by an arbitrary value, between two
    valid ones; the trainer refuses or takes it, never fails, and takes the valid ones."""
    config = placement_shop(holdout={"fraction": 0.0})
    tmp = tmp_path_factory.mktemp("fuzz")

    async def main():
        async with Shop(redis_server.url, tmp / "trainer", config, n=1,
                        clock=Clock(1_700_000_000.0)) as s:
            await s.bus.redis.delete(s.bus.log_key, s.bus.dead_key)
            s.trainer = Trainer(s.engine, s.bus)
            good = await _valid_round(s, 2, "a")
            row = list(msgspec.msgpack.decode(msgspec.msgpack.encode(_decision())))
            row[list(BusDecision.__struct_fields__).index(field)] = value
            await _signed(s.bus, msgspec.msgpack.encode([[row], [], "fuzz"]))
            good += await _valid_round(s, 2, "b")
            await s.drain()
            stored = {r[0] for r in s.engine.store.db.execute("SELECT event_id FROM decisions")}
            assert set(good) <= stored and len(stored - set(good)) <= 1
            assert len(stored) + s.trainer.totals.malformed == 5

    run(main())
