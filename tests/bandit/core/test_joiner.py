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
    with pytest.raises(ClosedEventError, match="already closed") as err:
        engine.record_outcome(d.event_id, True, 10.0, "new-id")
    assert err.value.field == "event_id"


def test_an_outcome_counts_up_to_the_end_of_its_window_inclusive(tmp_path, clock):
    # the same test as expiry's: at exactly decided + window_s the window is still open
    from bandit.domain.errors import WindowClosedError

    engine = open_engine(tmp_path, clock)
    window = engine.config.attribution.window_s
    on_time, late = engine.decide("v1", CTX, now=1000.0), engine.decide("v2", CTX, now=1000.0)
    assert engine.record_outcome(on_time.event_id, True, 10.0, now=1000.0 + window) == "recorded"
    with pytest.raises(WindowClosedError, match="attribution window of 86400 s has closed; "
                                                "the outcome was not recorded") as err:
        engine.record_outcome(late.event_id, True, 10.0, now=1000.0 + window + 0.001)
    assert err.value.field == "event_id"


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


@pytest.mark.parametrize("group, randomized, learned", [
    ("treatment", True, True), ("treatment", False, False), ("holdout", True, False),
    ("holdout", False, False)])
def test_only_randomized_treatment_decisions_are_learnable(group, randomized, learned):
    from bandit.core.joiner import learnable
    from bandit.store.rows import StoredDecision

    decision = StoredDecision(1, "e", 0.0, "h", {}, ("none",), "none", 0.5, group, 0, randomized)
    assert learnable(decision) is learned


def test_conflicts_and_unknown_events_name_the_field(tmp_path, clock):
    from bandit.domain.errors import OutcomeConflictError

    engine = open_engine(tmp_path, clock)
    a, b = engine.decide("va", CTX), engine.decide("vb", CTX)
    engine.record_outcome(a.event_id, False, 0.0, "order-1")
    with pytest.raises(OutcomeConflictError, match="this outcome_id was already used for "
                                                   "another event; each order needs its own "
                                                   "id") as err:
        engine.record_outcome(b.event_id, False, 0.0, "order-1")
    assert err.value.field == "outcome_id"
    with pytest.raises(UnknownEventError, match="unknown event") as err:
        engine.record_outcome("f" * 32, True, 1.0)
    assert err.value.field == "event_id"


def test_an_expired_event_closes_with_nothing_bought_and_its_closing_carries_the_cost(
        tmp_path, clock):
    from bandit.core.joiner import Joiner

    engine = open_engine(tmp_path, clock)
    expired = engine.decide("v1", CTX, eligible=["discount_10"])
    sold = engine.decide("v2", CTX, eligible=["discount_5", "discount_10"])  # randomized
    cost = engine.actions[sold.action].cost_pct / 100 * 120.0
    closings = []
    joiner = Joiner(engine.store, engine.config.attribution, engine.config.objective,
                    engine.actions, closings.extend)
    joiner.outcome(sold.event_id, True, 120.0, None, clock.t)
    joiner.expire(clock.t + 86400 + 1)
    row = engine.store.db.execute("SELECT converted, order_value, cost, reason FROM closed "
                                  "WHERE event_id = ?", (expired.event_id,)).fetchone()
    assert row == (0, 0.0, 0.0, "expired")
    # the sale teaches with its parts; the forced decision that expired teaches nothing
    assert [(c.decision.event_id, c.converted, c.order_value, c.cost) for c in closings] == [
        (sold.event_id, True, 120.0, pytest.approx(cost))]
    engine.store.rollback()


def test_a_rolled_back_closing_is_not_counted(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    d = engine.decide("v1", CTX)
    before = (engine.joiner.closed_total, engine.joiner.closed_through, engine.open_events)
    engine.begin_group()
    engine.record_outcome(d.event_id, True, 50.0, commit=False)
    assert engine.joiner.closed_total == before[0] + 1 and engine.open_events == before[2] - 1
    engine.rollback()
    assert (engine.joiner.closed_total, engine.joiner.closed_through,
            engine.open_events) == before
    engine.record_outcome(d.event_id, True, 50.0)
    assert engine.open_events == before[2] - 1 and engine.joiner.closed_total == before[0] + 1


def test_expiry_of_more_than_one_chunk_closes_them_all(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    n = 10_050  # the joiner reads open events 10,000 at a time
    results = engine.decide_batch([(f"v{i}", CTX, None) for i in range(n)])
    assert not any(isinstance(r, Exception) for r in results)
    clock.t += 86400 + 1
    assert engine.expire() == n
    assert engine.open_events == 0 and engine.store.count("closed") == n


def test_an_order_for_an_action_no_longer_configured_costs_nothing(tmp_path, clock):
    # the action's cost is not known any more: the sale is recorded at its order value alone
    from engine_helpers import shop_doc

    from bandit import Engine
    from bandit.config.shop import parse_config

    engine = open_engine(tmp_path, clock)
    d = engine.decide("v1", CTX, eligible=["discount_10"])
    engine.close()
    doc = shop_doc(holdout={"fraction": 0.0})
    doc["actions"] = [a for a in doc["actions"] if a["id"] != "discount_10"]
    engine = Engine.open(parse_config(doc), tmp_path / "data", clock=clock)
    assert engine.record_outcome(d.event_id, True, 100.0) == "recorded"
    reason, reward, _, cost = closed_row(engine, d.event_id)
    assert (reason, cost) == ("converted", 0.0)
    assert reward == pytest.approx(engine.config.objective.margin * 100.0)
    engine.close()


def test_expirys_watermark_survives_a_restart_and_start_up_begins_there(tmp_path, clock):
    """Start-up does not walk the closed part of the log: the watermark (every decision up
    to it is closed) is committed with expiry's writes and read back at open; a store
    without the key starts from the beginning."""
    from bandit import Engine
    from bandit.core.joiner import CLOSED_THROUGH_KEY

    engine = open_engine(tmp_path, clock, attribution={"window_s": 3600})
    first = [engine.decide(f"v{i}", CTX) for i in range(30)]
    clock.t += 600
    younger = [engine.decide(f"w{i}", CTX) for i in range(10)]
    clock.t += 3001  # the first 30 are past their window, the 10 younger ones are not
    assert engine.expire() == 30
    assert engine.store.get_meta(CLOSED_THROUGH_KEY) == "30"
    config = engine.config
    engine.close()
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    assert engine.joiner.closed_through == 30
    # the young ones close after the restart as they would have: none lost, none twice
    clock.t += 601
    assert engine.expire() == 10
    assert engine.store.get_meta(CLOSED_THROUGH_KEY) == "40"
    assert engine.store.count("closed") == 40 == len(first) + len(younger)
    # an older store has no key: the watermark is found from the log's start
    engine.store.db.execute("DELETE FROM meta WHERE key = ?", (CLOSED_THROUGH_KEY,))
    engine.close()
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    assert engine.joiner.closed_through == 40
    engine.close()
