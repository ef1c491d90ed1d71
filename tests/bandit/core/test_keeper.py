"""The model keeper through the engine: restarts from snapshot plus log, and action or schema
changes."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import CTX, open_engine, shop, shop_doc, traffic

from bandit import Engine
from bandit.config.shop import parse_config
from bandit.domain.errors import (
    SnapshotMismatchError,
)


def test_restart_resumes_from_snapshot_plus_log(tmp_path, clock):
    rng = np.random.default_rng(0)
    engine = open_engine(tmp_path, clock, storage={"snapshot_every_updates": 50})
    traffic(engine, 120, rng, clock)
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


def test_adding_an_action_keeps_what_was_learned(tmp_path, clock):
    rng = np.random.default_rng(1)
    engine = open_engine(tmp_path, clock)
    traffic(engine, 100, rng, clock)
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
    traffic(engine, 20, np.random.default_rng(2), clock)
    engine.close()
    doc = shop_doc(holdout={"fraction": 0.0})
    doc["actions"] = [a for a in doc["actions"] if a["id"] != "discount_10"]
    engine = Engine.open(parse_config(doc), tmp_path / "data", clock=clock)
    assert all(engine.decide(f"x{i}", CTX).action != "discount_10" for i in range(300))


def test_schema_or_policy_change_refuses_the_snapshot_unless_fresh(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    traffic(engine, 20, np.random.default_rng(3), clock)
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


def test_a_relearn_reads_only_the_closings_that_change_an_additive_model(tmp_path,
                                                                         monkeypatch):
    """Without a snapshot, an additive model re-learns every decision with the default
    reward and then only the closings that change it (conversions); the expired rest is not
    even read, and the model equals the one that learned online."""
    from engine_helpers import Clock, shop
    from relearn import assert_same_model

    import bandit.store.events as events
    import simulator
    from bandit import Engine
    from simulator.worlds.online import drive

    config = shop(holdout={"fraction": 0.0}, attribution={"window_s": 600})
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=Clock())
    drive(engine, simulator.make_world(), visitors=4000, rate=1.0, seed=0)
    engine.expire(engine.clock() + 3600)
    engine.flush()
    converted, closed = engine.store.db.execute(
        "SELECT SUM(converted), COUNT(*) FROM closed").fetchone()
    assert closed == 4000 and 0 < converted < 1000
    copy = tmp_path / "copy"
    copy.mkdir()
    engine.store.db.execute(f"VACUUM INTO '{copy / 'events.sqlite3'}'")
    read = []
    real = events.closed_of
    monkeypatch.setattr(events, "closed_of", lambda row: read.append(1) or real(row))
    relearned = Engine.open(config, copy, seed=0, clock=engine.clock)
    assert len(read) == converted
    assert relearned.last_learned_seq == engine.last_learned_seq
    assert_same_model(engine, relearned)
    engine.close()
