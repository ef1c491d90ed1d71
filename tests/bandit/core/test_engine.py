"""Engine: event lifecycle, holdout, rewards, persistence and action changes."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop, shop_doc

from bandit import Engine
from bandit.config.shop import parse_config
from bandit.domain.errors import (
    CartwheelError,
    ClosedEventError,
    PersonalDataError,
    SnapshotMismatchError,
    UnknownEventError,
)
from bandit.domain.objective import RewardClip

CTX = {"device": "mobile", "traffic_source": "paid_search", "returning": False,
       "pages_viewed": 3, "cart_value": 40.0, "page_type": "cart", "hour": 20,
       "region": "north", "channel": "web"}


@pytest.fixture
def clock():
    return Clock()


def open_engine(tmp_path, clock, **sections):
    sections.setdefault("holdout", {"fraction": 0.0})
    return Engine.open(shop(**sections), tmp_path / "data", seed=0, clock=clock)


def closed_row(engine, event_id):
    return engine.store.db.execute(
        "SELECT reason, reward, learned, cost FROM closed WHERE event_id = ?", (event_id,)).fetchone()


def test_delayed_conversion_inside_the_window(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    d = engine.decide("v1", CTX)
    clock.t += 600
    assert engine.record_outcome(d.event_id, False, 0.0, "o1") == "recorded"
    assert closed_row(engine, d.event_id) is None  # a non-conversion leaves it open
    clock.t += 3600
    assert engine.record_outcome(d.event_id, True, 80.0, "o2") == "recorded"
    reason, reward, learned, cost = closed_row(engine, d.event_id)
    assert reason == "converted" and learned == int(d.randomized)
    assert engine.update_count == int(d.randomized)
    action = engine.actions[d.action]
    assert cost == pytest.approx(action.incentive_cost(80.0))
    assert reward == pytest.approx(0.35 * 80.0 - cost)
    # after the window nothing more happens to it
    assert engine.expire(clock.t + 10 * 86400) == 0


def test_no_outcome_gets_default_reward_at_expiry(tmp_path, clock):
    engine = open_engine(tmp_path, clock, attribution={"window_s": 3600, "default_reward": -0.5})
    events = [engine.decide(f"v{i}", CTX) for i in range(20)]
    clock.t += 1800
    assert engine.expire() == 0
    late = engine.decide("late", CTX)
    clock.t += 1801
    assert engine.expire() == 20
    for d in events:
        assert closed_row(engine, d.event_id)[:2] == ("expired", -0.5)
    assert closed_row(engine, late.event_id) is None
    # linucb is additive: every randomized decision is learned once, at decision time, with the
    # default reward; closing relabels it (here: to the same default)
    assert engine.update_count == sum(d.randomized for d in events + [late])
    with pytest.raises(ClosedEventError):
        engine.record_outcome(events[0].event_id, True, 10.0, "too-late")


def test_expiry_in_slices_closes_oldest_first_and_leaves_open_windows_alone(tmp_path, clock):
    engine = open_engine(tmp_path, clock, attribution={"window_s": 3600})
    old = []
    for i in range(25):
        old.append(engine.decide(f"v{i}", CTX))
        clock.t += 10
    converted = engine.decide("buyer", CTX)
    engine.record_outcome(converted.event_id, True, 30.0)
    clock.t += 3600  # the 25 (and the converted one) are past their window ...
    fresh = [engine.decide(f"w{i}", CTX) for i in range(5)]  # ... these are not
    slices = []
    while (n := engine.expire(limit=10)) == 10:
        slices.append(n)
    slices.append(n)
    assert slices == [10, 10, 5]
    closed_order = [r[0] for r in engine.store.db.execute(
        "SELECT event_id FROM closed WHERE reason = 'expired' ORDER BY seq")]
    assert closed_order == [d.event_id for d in old]
    assert all(closed_row(engine, d.event_id) is None for d in fresh)
    assert engine.expire() == 0
    clock.t += 3601
    assert engine.expire() == 5


def test_a_clock_stepped_back_keeps_the_log_in_time_order(tmp_path, clock):
    engine = open_engine(tmp_path, clock, attribution={"window_s": 600})
    first = engine.decide("a", CTX)
    clock.t -= 120  # the OS steps the clock back two minutes
    second = engine.decide("b", CTX)
    times = [r[0] for r in engine.store.db.execute("SELECT ts FROM decisions ORDER BY seq")]
    assert times[1] == times[0]  # held at the last logged time
    clock.t += 120 + 601
    assert engine.expire() == 2
    assert closed_row(engine, first.event_id)[0] == closed_row(engine, second.event_id)[0]
    engine.close()
    reopened = open_engine(tmp_path, clock)  # the hold survives a restart
    clock.t -= 5000
    reopened.decide("c", CTX)
    times = [r[0] for r in reopened.store.db.execute("SELECT ts FROM decisions ORDER BY seq")]
    assert times == sorted(times)


def test_duplicate_outcome_ids_are_idempotent_also_after_restart(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    d = engine.decide("v1", CTX)
    assert engine.record_outcome(d.event_id, True, 50.0, "order-9") == "recorded"
    assert engine.record_outcome(d.event_id, True, 50.0, "order-9") == "duplicate"
    updates = engine.update_count
    engine.close()
    engine = open_engine(tmp_path, clock)
    assert engine.record_outcome(d.event_id, True, 50.0, "order-9") == "duplicate"
    assert engine.update_count == updates
    assert engine.store.count("outcomes") == 1


def test_unknown_and_closed_events_are_distinct_errors(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    with pytest.raises(UnknownEventError, match="unknown event"):
        engine.record_outcome("nope", True, 1.0)
    d = engine.decide("v1", CTX)
    engine.record_outcome(d.event_id, True, 10.0)
    with pytest.raises(ClosedEventError, match="already closed"):
        engine.record_outcome(d.event_id, True, 10.0, "new-id")


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "12", True])
def test_bad_order_values_are_refused_and_nothing_is_stored(tmp_path, clock, value):
    engine = open_engine(tmp_path, clock)
    d = engine.decide("v1", CTX)
    with pytest.raises(CartwheelError) as err:
        engine.record_outcome(d.event_id, True, value, "x")
    assert err.value.field == "order_value"
    assert engine.store.count("outcomes") == 0 and engine.store.count("closed") == 0


def test_personal_data_is_refused_before_anything_is_stored(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    with pytest.raises(PersonalDataError):
        engine.decide("v1", {**CTX, "email": "a@b.example"})
    with pytest.raises(PersonalDataError):
        engine.decide("v1", {**CTX, "region": "jane@example.com"})
    assert engine.store.count("decisions") == 0


def test_visitor_id_is_stored_only_hashed(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    engine.decide("visitor-secret-123", CTX)
    engine.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("events.sqlite3*"))
    assert b"visitor-secret-123" not in raw


def test_holdout_fraction_and_stickiness(tmp_path, clock):
    engine = open_engine(tmp_path, clock, holdout={"fraction": 0.1, "control": "none"})
    n = 10_000
    groups = [engine.decide(f"visitor-{i}", CTX, commit=False) for i in range(n)]
    engine.commit()
    share = np.mean([d.group == "holdout" for d in groups])
    se = np.sqrt(0.1 * 0.9 / n)
    assert abs(share - 0.1) < 3 * se
    held = [i for i in range(n) if groups[i].group == "holdout"][:20]
    assert len(held) == 20  # the checks below always run, whatever the draw
    for i in [*range(0, 200), *held]:
        again = engine.decide(f"visitor-{i}", CTX)
        assert again.group == groups[i].group
        if again.group == "holdout":
            assert again.action == "none" and again.probability == 1.0 and not again.randomized


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


@pytest.mark.parametrize("kind, expected", [
    ("conversion", 1.0), ("revenue", 120.0), ("profit", 0.3 * 120.0 - 12.0)])
def test_reward_arithmetic_per_objective(tmp_path, clock, kind, expected):
    engine = open_engine(tmp_path, clock, objective={"kind": kind, "margin": 0.3})
    d = engine.decide("v1", CTX, eligible=["discount_10"])  # forced: cost 10% of 120
    engine.record_outcome(d.event_id, True, 120.0)
    reason, reward, _, cost = closed_row(engine, d.event_id)
    assert cost == pytest.approx(12.0) and reward == pytest.approx(expected)


def test_eligible_validation(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    for bad, msg in ((["free_lunch"], "unknown action 'free_lunch'"), ([], "eligible is empty"),
                     ("none", "must be a list")):
        with pytest.raises(CartwheelError, match=msg) as err:
            engine.decide("v", CTX, eligible=bad)
        assert err.value.field == "eligible"
    for _ in range(30):
        d = engine.decide("v", CTX, eligible=["none", "banner_brand"])
        assert d.action in ("none", "banner_brand")


def drive(engine, n, rng, clock):
    for i in range(n):
        d = engine.decide(f"v{rng.integers(1e9)}", CTX, commit=False)
        engine.record_outcome(d.event_id, bool(rng.random() < 0.3), float(rng.uniform(10, 90)),
                              commit=False)
        clock.t += 1
    engine.commit()


def test_restart_resumes_from_snapshot_plus_log(tmp_path, clock):
    rng = np.random.default_rng(0)
    engine = open_engine(tmp_path, clock, storage={"snapshot_every_updates": 50})
    drive(engine, 120, rng, clock)
    engine.flush()
    updates = engine.update_count
    state = engine.policy.get_state()
    # simulate a crash: drop the engine without close() (no final snapshot)
    engine.store.db.close()
    engine._lock.release()  # what the kernel does when the process dies
    engine = open_engine(tmp_path, clock, storage={"snapshot_every_updates": 50})
    assert engine.update_count == updates
    treated = engine.store.db.execute(
        "SELECT COUNT(*) FROM decisions WHERE grp = 'treatment' AND randomized = 1").fetchone()[0]
    assert treated == updates
    np.testing.assert_allclose(engine.policy.get_state()["policy.ridge.theta"],
                               state["policy.ridge.theta"], atol=1e-9)


def test_a_forgetting_policy_learns_at_close_and_restarts_exactly(tmp_path, clock):
    """linucb with a half-life is not additive: it learns each event when it closes, and a
    restart (snapshot + re-learning the log in other chunks) gives back the same model."""
    sections = {"storage": {"snapshot_every_updates": 40}, "attribution": {"window_s": 30},
                "policy": {"spec": "linucb:halflife=60"}}
    rng = np.random.default_rng(4)
    engine = open_engine(tmp_path, clock, **sections)
    assert not engine.provisional
    for _ in range(5):
        drive(engine, 40, rng, clock)
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
    direct = make_policy(engine.config, engine.space, engine.policy_actions, 0)
    X, actions, props, mask = engine.learner.batch([e.decision for e in closed])
    direct.update(X, actions, np.array([e.reward for e in closed]), props, mask,
                  **outcomes(closed))
    for key in ("policy.ridge.A", "policy.ridge.b"):
        np.testing.assert_allclose(engine.policy.get_state()[key], direct.get_state()[key],
                                   rtol=1e-12, err_msg=key)
    engine.close()


def test_second_engine_on_same_data_dir_is_refused(tmp_path, clock):
    first = open_engine(tmp_path, clock)  # held: a collected engine would release its lock
    with pytest.raises(CartwheelError, match="another cartwheel process"):
        open_engine(tmp_path, clock)
    first.close()
    open_engine(tmp_path, clock).close()  # closed: the directory is free again


def test_adding_an_action_keeps_what_was_learned(tmp_path, clock):
    rng = np.random.default_rng(1)
    engine = open_engine(tmp_path, clock)
    drive(engine, 100, rng, clock)
    before = engine.policy.get_state()["policy.ridge.theta"]
    engine.close()
    doc = shop_doc(holdout={"fraction": 0.0})
    doc["actions"].append({"id": "banner_summer", "kind": "banner"})
    engine = Engine.open(parse_config(doc), tmp_path / "data", clock=clock)
    theta = engine.policy.get_state()["policy.ridge.theta"]
    np.testing.assert_array_equal(theta[:len(before)], before)
    assert theta.shape[0] == len(before) + 1
    seen = {engine.decide(f"x{i}", CTX).action for i in range(400)}
    assert "banner_summer" in seen


def test_removing_an_action_stops_it_being_chosen(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    drive(engine, 20, np.random.default_rng(2), clock)
    engine.close()
    doc = shop_doc(holdout={"fraction": 0.0})
    doc["actions"] = [a for a in doc["actions"] if a["id"] != "discount_10"]
    engine = Engine.open(parse_config(doc), tmp_path / "data", clock=clock)
    assert all(engine.decide(f"x{i}", CTX).action != "discount_10" for i in range(300))


def test_schema_or_policy_change_refuses_the_snapshot_unless_fresh(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    drive(engine, 20, np.random.default_rng(3), clock)
    engine.close()
    doc = shop_doc(holdout={"fraction": 0.0})
    doc["features"]["device"]["categories"].append("tv")
    with pytest.raises(SnapshotMismatchError, match="feature schema changed"):
        Engine.open(parse_config(doc), tmp_path / "data", clock=clock)
    with pytest.raises(SnapshotMismatchError, match="policy changed"):
        Engine.open(shop(holdout={"fraction": 0.0}, policy={"spec": "lints"}),
                    tmp_path / "data", clock=clock)
    engine = Engine.open(parse_config(doc), tmp_path / "data", clock=clock, fresh=True)
    assert engine.update_count == 0
    engine.decide("v", {**CTX, "device": "tv"})


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
