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
