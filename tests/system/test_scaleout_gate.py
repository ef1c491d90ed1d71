"""The promotion gate through decide replicas and a trainer on a real redis-server: replicas
decide with the published gate (the same assignment rule), their decisions carry the gate's
notes over the bus, the trainer learns and compares with them (its gate equals a re-learn of
its log) and publishes the gate, history included; notes that do not fit are refused."""

from __future__ import annotations

import numpy as np
from engine_helpers import CTX, Clock, shop
from relearn import assert_same_model, assert_same_policy, relearned
from scaleout_helpers import Shop, run

from bandit import Engine
from bandit.http import api
from bandit.scaleout.checks import decision_problem
from bandit.scaleout.records import BusDecision
from bandit.scaleout.replica import refresh

GATED = {"spec": "linucb", "challengers": ["egreedy"], "promote": {"share": 0.3}}


def test_replicas_decide_with_the_gate_and_the_trainer_compares_with_their_notes(
        tmp_path, redis_server):
    config = shop(holdout={"fraction": 0.1}, attribution={"window_s": 60}, policy=GATED)
    rng = np.random.default_rng(3)

    async def main():
        async with Shop(redis_server.url, tmp_path / "trainer", config) as s:
            for round_ in range(6):
                for g, group in enumerate(s.groups):
                    for i in range(40):
                        d = await group.decide(api.DecideRequest(
                            f"v{round_}-{g}-{i}", {**CTX, "pages_viewed": int(i % 7)}))
                        if rng.random() < 0.2:
                            await group.outcome(api.OutcomeRequest(
                                event_id=d.event_id, converted=True,
                                order_value=float(rng.uniform(20, 90))))
                s.clock.t += 120.0  # every window passes: the rest expire
                await s.drain()
                s.engine.expire()
                await s.trainer.publish(force=True)
                for replica in s.replicas:
                    await refresh(replica, s.bus)
            db = s.engine.store.db
            rows = db.execute("SELECT grp, decision_notes FROM decisions").fetchall()
            assert len(rows) == 480
            assert all((n is None) == (g == "holdout") for g, n in rows)
            learned = db.execute("SELECT COUNT(*) FROM closed WHERE learned = 1").fetchone()[0]
            gate = s.engine.policy
            assert gate.evidence.rows == learned - s.engine.models.held > 300
            # both policies acted at the replicas, by the published gate's assignment rule
            assert (gate.evidence.acted > 40).all()
            published = s.replicas[0].models["default"].policy
            assert published.spec == "gated(linucb | egreedy)"
            assert_same_policy(published, gate, "default")

    run(main())
    engine = Engine.open(config, tmp_path / "trainer", clock=Clock(2e9))
    assert_same_model(engine, relearned(tmp_path / "trainer", config))
    engine.close()


def test_the_bus_refuses_notes_that_do_not_fit_the_placements_gate():
    gated = shop(policy=GATED)
    single = shop()
    space = gated.feature_space()
    base = BusDecision("e1", 1.7e9, "ab" * 32, {}, list(gated.action_ids), "none", 0.5,
                       "treatment", 1, True)
    good = [1.0, 0.3, 0.5, 0.5, 1.0, 1.2]
    assert decision_problem(_with(base, good), gated, space, 1.7e9) is None
    for notes, gated_shop, why in (
            (good, single, "no promotion gate"), (good[:4], gated, "hold 4 numbers"),
            ([2.0, *good[1:]], gated, "out of range"), ([1.0, 0.3, 1.5, *good[3:]], gated,
                                                         "out of range"),
            ([float("nan"), *good[1:]], gated, "not finite")):
        assert why in decision_problem(_with(base, notes), gated_shop, space, 1.7e9)
    holdout = _with(base, good, group="holdout", action="none", probability=1.0,
                    randomized=False)
    assert "no promotion gate" in decision_problem(holdout, gated, space, 1.7e9)


def _with(d: BusDecision, notes, **changes) -> BusDecision:
    import msgspec

    return msgspec.structs.replace(d, decision_notes=notes, **changes)
