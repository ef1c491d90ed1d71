"""The promotion gate in the engine: configured in the shop's TOML, its decision notes kept in
the decision record and passed back when a row is learned, resumed exactly after a restart
(with or without a snapshot), and a person's promotion written at once."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop

import simulator
from bandit import Engine
from bandit.core import gate
from bandit.domain.errors import ConfigError, SnapshotMismatchError
from bandit.store.snapshots import snapshots
from simulator.worlds.online import drive

GATED = {"spec": "linucb", "challengers": ["egreedy"], "promote": {"share": 0.3}}


def gated_shop(policy=GATED, **sections):
    return shop(holdout={"fraction": 0.1}, attribution={"window_s": 1800}, policy=policy,
                **sections)


def run(tmp_path, visitors, name="data", config=None, clock=None, seed=0):
    clock = clock or Clock()
    engine = Engine.open(config or gated_shop(), tmp_path / name, seed=0, clock=clock)
    drive(engine, simulator.make_world(), visitors=visitors, rate=1.0, seed=seed)
    return engine, clock


def test_config_builds_the_gate_and_refuses_what_cannot_be_one():
    config = gated_shop()
    assert config.placements[0].model_spec == "gated(linucb | egreedy)"
    assert config.promote.share == 0.3 and config.promote.mode == "auto"
    with pytest.raises(ConfigError, match=r"policy.challengers: 'linucb' is both"):
        gated_shop({"spec": "linucb", "challengers": ["linucb"]})
    with pytest.raises(ConfigError, match=r"policy.challengers\[0\]: unknown policy 'lintz'"):
        gated_shop({"spec": "linucb", "challengers": ["lintz"]})
    with pytest.raises(ConfigError, match="policy.promote.share"):
        gated_shop({"spec": "linucb", "challengers": ["uniform"], "promote": {"share": 1.5}})
    with pytest.raises(ConfigError, match="policy.promote.mode"):
        gated_shop({"spec": "linucb", "challengers": ["uniform"], "promote": {"mode": "x"}})


def test_decision_record_keeps_the_notes_and_learning_passes_them_back(tmp_path):
    engine, _ = run(tmp_path, 6000)
    try:
        rows = engine.store.db.execute(
            "SELECT grp, randomized, decision_notes FROM decisions").fetchall()
        treated = [n for g, r, n in rows if g == "treatment"]
        assert all(n is not None and len(n) == 8 * 6 for n in treated)
        assert all(n is None for g, _, n in rows if g == "holdout")
        learned = engine.store.db.execute(
            "SELECT COUNT(*) FROM closed WHERE learned = 1").fetchone()[0]
        policy = engine.policy
        # every learned row was compared, none twice (a held closing waits for its turn)
        assert policy.evidence.rows == learned - engine.models.held > 1000
        notes = np.frombuffer(treated[0], dtype="<f8")
        assert notes[0] in (0, 1) and 0 < notes[2] <= 1 and 0 < notes[3] <= 1
    finally:
        engine.close()


def test_restart_resumes_the_gate_exactly_with_and_without_a_snapshot(tmp_path):
    straight, _ = run(tmp_path, 6000, "straight")
    expected = straight.policy.get_state()
    straight.close()
    # the same traffic, stopped half way and restarted: from its snapshot, then from the log
    clock = Clock()
    first, _ = run(tmp_path, 3000, "restarted", clock=clock)
    first.close()
    for drop_snapshots in (False, True):
        if drop_snapshots:
            for f in (tmp_path / "restarted" / "snapshots").glob("snapshot-*"):
                f.unlink()
        engine = Engine.open(gated_shop(), tmp_path / "restarted", seed=0, clock=clock)
        assert engine.policy.evidence.rows > 0
        engine.close()
    engine = Engine.open(gated_shop(), tmp_path / "restarted", seed=0, clock=clock)
    drive(engine, simulator.make_world(), visitors=3000, rate=1.0, seed=0)
    # the second half's visitors differ from the straight run's (the drive's seed restarts),
    # so compare what a restart must keep: every row learned is compared once
    learned = engine.store.db.execute(
        "SELECT COUNT(*) FROM closed WHERE learned = 1").fetchone()[0]
    assert engine.policy.evidence.rows == learned - engine.models.held
    engine.close()
    assert "policy.evidence.sums" in expected


def test_a_snapshot_restored_without_its_log_tail_relearns_the_same_evidence(tmp_path):
    engine, clock = run(tmp_path, 5000)
    engine.flush()
    engine.snapshot()
    rows, sums = engine.policy.evidence.rows, engine.policy.evidence.sums.copy()
    engine.close()
    for f in (tmp_path / "data" / "snapshots").glob("snapshot-*"):
        f.unlink()
    again = Engine.open(gated_shop(), tmp_path / "data", seed=0, clock=clock)
    try:  # re-learned from the log alone, with the notes the decision records kept
        assert again.policy.evidence.rows == rows
        np.testing.assert_allclose(again.policy.evidence.sums, sums, rtol=1e-9)
    finally:
        again.close()


def test_a_persons_promotion_is_snapshotted_at_once_and_survives_a_restart(tmp_path):
    engine, clock = run(tmp_path, 2000)
    view = gate.change(engine, "promote", "egreedy")
    assert view["champion"] == "egreedy"
    assert view["promotions"][-1]["by"] == "person"
    _, state, meta = next(snapshots(tmp_path / "data" / "snapshots"))
    assert '"egreedy"' in str(state["policy.history"]) and "person" in str(
        state["policy.history"])
    engine.close()
    again = Engine.open(gated_shop(), tmp_path / "data", seed=0, clock=clock)
    try:
        assert again.models.gates()["default"]["champion"] == "egreedy"
        gate.change(again, "roll_back")
        assert again.models.gates()["default"]["champion"] == "linucb"
    finally:
        again.close()


def test_a_new_challenger_list_is_a_new_model(tmp_path):
    engine, clock = run(tmp_path, 1000)
    engine.close()
    other = gated_shop({"spec": "linucb", "challengers": ["lints"]})
    with pytest.raises(SnapshotMismatchError, match=r"gated\(linucb \| lints\)"):
        Engine.open(other, tmp_path / "data", seed=0, clock=clock)


def test_a_single_policy_refuses_a_gate_change(tmp_path):
    engine = Engine.open(shop(), tmp_path / "data", seed=0, clock=Clock())
    try:
        with pytest.raises(Exception, match="runs one policy"):
            gate.change(engine, "promote", "uniform")
    finally:
        engine.close()


def test_placements_run_the_shops_challengers_unless_they_name_their_own(tmp_path):
    from engine_helpers import PLACEMENTS, placement_shop

    placements = [dict(p) for p in PLACEMENTS]
    placements[1]["challengers"] = ["lints"]
    placements[2]["challengers"] = []
    config = placement_shop(policy=GATED, placements=placements)
    specs = {p.id: p.model_spec for p in config.placements}
    assert specs[placements[0]["id"]] == "gated(linucb | egreedy)"
    assert specs[placements[1]["id"]] == "gated(linucb | lints)"
    assert specs[placements[2]["id"]] == "linucb"
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=Clock())
    try:  # each gated placement has a gate of its own, promoted on its own
        assert sorted(engine.models.gates()) == sorted(p["id"] for p in placements[:2])
        gate.change(engine, "promote", "lints", placements[1]["id"])
        gates = engine.models.gates()
        assert gates[placements[1]["id"]]["champion"] == "lints"
        assert gates[placements[0]["id"]]["champion"] == "linucb"
    finally:
        engine.close()
