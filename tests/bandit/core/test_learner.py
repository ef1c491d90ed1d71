"""The learner through the engine: what is learned, when, and in which order."""

from __future__ import annotations

import numpy as np
from engine_helpers import CTX, open_engine, traffic

from bandit.domain.objective import RewardClip


def test_holdout_and_forced_decisions_are_not_learned(tmp_path, clock):
    engine = open_engine(tmp_path, clock, holdout={"fraction": 0.5})
    decisions = [engine.decide(f"v{i}", CTX) for i in range(200)]
    forced = engine.decide("forced", CTX, eligible=["discount_5"])
    if forced.group == "treatment":  # one eligible action: forced, p = 1, not randomized
        assert forced.probability == 1.0 and not forced.randomized
    for d in decisions + [forced]:
        engine.record_outcome(d.event_id, True, 30.0)
    expected = sum(d.group == "treatment" and d.randomized for d in decisions)
    assert engine.update_count == expected
    learned = engine.store.db.execute("SELECT SUM(learned) FROM closed").fetchone()[0]
    assert learned == expected


def test_a_forgetting_policy_learns_at_close_and_restarts_exactly(tmp_path, clock):
    """linucb with a half-life is not additive: it learns each event when it closes, and a
    restart (snapshot + re-learning the log in other chunks) gives back the same model."""
    sections = {"storage": {"snapshot_every_updates": 40}, "attribution": {"window_s": 30},
                "policy": {"spec": "linucb:halflife=60"}}
    rng = np.random.default_rng(4)
    engine = open_engine(tmp_path, clock, **sections)
    assert not engine.provisional
    for _ in range(5):
        traffic(engine, 40, rng, clock)
        clock.t += 31
        engine.expire()
    engine.flush()
    learned = engine.store.db.execute("SELECT COUNT(*) FROM closed WHERE learned = 1").fetchone()[0]
    assert engine.update_count == learned > 0
    engine.keeper.writer.wait()
    state = engine.policy.get_state()
    engine.store.db.close()  # a crash: no final snapshot
    engine._lock.release()  # what the kernel does when the process dies
    engine = open_engine(tmp_path, clock, **sections)
    assert engine.update_count == learned
    for key in ("policy.ridge.A", "policy.ridge.b", "policy.ridge.theta"):
        np.testing.assert_allclose(engine.policy.get_state()[key], state[key], rtol=1e-9,
                                   atol=1e-9, err_msg=key)
    engine.close()


def test_a_non_additive_policy_learns_in_decision_order_once_earlier_decisions_closed(
        tmp_path, clock):
    """A conversion closes minutes after its decision, a non-conversion a window later: a
    policy learned at close would see the conversion first. Held until every earlier decision
    has closed, then learned in decision order (what a direct fit in that order gives)."""
    from bandit.core.learner import outcomes
    from bandit.core.model import make_policy

    engine = open_engine(tmp_path, clock, attribution={"window_s": 100},
                         policy={"spec": "linucb:halflife=50"})
    ids = []
    for _ in range(3):
        ids.append(engine.decide("v", CTX).event_id)
        clock.t += 1
    engine.record_outcome(ids[2], True, 80.0)   # the newest converts first
    engine.expire()
    assert engine.update_count == 0 and engine.learner.held == 1  # ids[0], ids[1] still open
    engine.record_outcome(ids[0], True, 20.0)
    engine.expire()  # ids[0] and everything before it has closed: learned; ids[2] waits
    assert engine.update_count == 1 and engine.learner.held == 1
    clock.t += 100
    engine.expire()  # ids[1] expires: ids[1], then ids[2]
    assert engine.update_count == 3 and engine.learner.held == 0
    closed = sorted(engine.store.closed_events(learned_only=True), key=lambda e: e.decision.seq)
    assert [e.decision.event_id for e in closed] == ids
    direct = make_policy(engine.config, engine.space, engine.learner.action_ids, 0)
    X, actions, props, mask = engine.learner.batch([e.decision for e in closed])
    direct.update(X, actions, np.array([e.reward for e in closed]), props, mask,
                  **outcomes(closed))
    for key in ("policy.ridge.A", "policy.ridge.b"):
        np.testing.assert_allclose(engine.policy.get_state()[key], direct.get_state()[key],
                                   rtol=1e-12, err_msg=key)
    engine.close()


def test_provisional_learning_ends_equal_to_learning_final_rewards_once(tmp_path, clock):
    import policies

    engine = open_engine(tmp_path, clock, attribution={"window_s": 100})
    rng = np.random.default_rng(5)
    decisions = [engine.decide(f"v{i}", CTX) for i in range(150)]
    for d in decisions[::3]:
        engine.record_outcome(d.event_id, True, float(rng.uniform(10, 200)))
    clock.t += 1000
    engine.expire()
    engine.flush()
    replay = policies.make("linucb", n_actions=8, n_features=engine.space.dim)
    clip = RewardClip(engine.config.objective.reward_clip)  # learning's bound, in log order
    for event in engine.store.closed_events(learned_only=True):
        X, a, p, m = engine.learner.batch([event.decision])
        replay.update(X, a, clip(np.array([event.reward]), np.array([event.converted])), p, m)
    assert replay.n_updates == engine.update_count
    for key in ("A", "b", "rr", "counts"):
        np.testing.assert_allclose(engine.policy.ridge.__dict__[key], replay.ridge.__dict__[key],
                                   rtol=0, atol=1e-8)
