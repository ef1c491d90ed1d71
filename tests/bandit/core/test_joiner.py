"""The joiner through the engine: the event lifecycle (conversion, expiry, duplicates, errors)
and the reward of each objective."""

from __future__ import annotations

import pytest
from engine_helpers import CTX, closed_row, open_engine

from bandit.domain.errors import (
    CartwheelError,
    ClosedEventError,
    UnknownEventError,
)


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


@pytest.mark.parametrize("kind, expected", [
    ("conversion", 1.0), ("revenue", 120.0), ("profit", 0.3 * 120.0 - 12.0)])
def test_reward_arithmetic_per_objective(tmp_path, clock, kind, expected):
    engine = open_engine(tmp_path, clock, objective={"kind": kind, "margin": 0.3})
    d = engine.decide("v1", CTX, eligible=["discount_10"])  # forced: cost 10% of 120
    engine.record_outcome(d.event_id, True, 120.0)
    reason, reward, _, cost = closed_row(engine, d.event_id)
    assert cost == pytest.approx(12.0) and reward == pytest.approx(expected)
