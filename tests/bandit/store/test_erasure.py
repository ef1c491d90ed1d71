"""Erasure on request: after ``forget`` no byte of the database or its write-ahead log links a
row to the visitor (their keyed hash, their contexts, their order ids), while the log's
counts, the report and the model stay as they were (bandit.store.erasure)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from engine_helpers import Clock, shop

from bandit import Engine
from bandit.domain.errors import CartwheelError
from bandit.domain.privacy import hash_outcome_id, hash_visitor
from bandit.insight.report import build_report
from bandit.store.erasure import erasures

T0 = 1_700_000_000.0
MARK = 313.1337  # a cart value only the erased visitor's contexts hold


def _raw(data_dir) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("events.sqlite3*")))


def _shop_with_history(tmp_path):
    config = shop(holdout={"fraction": 0.3}, attribution={"window_s": 3600},
                  caps={"incentives_per_visitor": 3, "incentives_window_s": 86400.0})
    clock = Clock(T0)
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    for round_ in range(6):  # the visitor's rows sit among everyone else's
        engine.decide_batch([(f"other-{round_}-{i}", {"cart_value": 20.0 + i}, None)
                             for i in range(40)])
        mine = engine.decide("jane-42", {"cart_value": MARK, "device": "mobile"})
        if round_ == 2:
            engine.record_outcome(mine.event_id, True, 88.0, outcome_id="order-7001")
        clock.t += 900
    others = engine.decide_batch([(f"after-{i}", {"cart_value": 10.0}, None)
                                  for i in range(30)])
    engine.record_outcome(others[0].event_id, True, 50.0, outcome_id="order-7002")
    return engine, config, clock


def test_forget_leaves_no_byte_that_links_a_row_to_the_visitor(tmp_path):
    engine, config, clock = _shop_with_history(tmp_path)
    data_dir = tmp_path / "data"
    salt = engine.salt
    jane = hash_visitor("jane-42", salt).encode()
    order = hash_outcome_id("order-7001", salt).encode()
    other = hash_visitor("other-3-5", salt).encode()
    engine.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert jane in _raw(data_dir) and order in _raw(data_dir) and b"313.1337" in _raw(data_dir)
    before = build_report(engine.store, config.objective.margin).to_dict()
    decisions, model = engine.store.count("decisions"), engine.update_count

    erased = engine.forget("jane-42", now=clock.t)
    assert (erased.decisions, erased.outcomes, erased.activations) == (6, 1, 0)
    raw = _raw(data_dir)
    assert jane not in raw and order not in raw and b"313.1337" not in raw
    assert other in raw and hash_outcome_id("order-7002", salt).encode() in raw  # sees bytes
    # the log keeps its place and counts; the report and the model are as they were
    assert engine.store.count("decisions") == decisions and engine.update_count == model
    after = build_report(engine.store, config.objective.margin).to_dict()
    for key in ("groups", "actions", "uplift", "pending_events"):
        assert after[key] == before[key], key
    # only the time and the count are recorded
    assert erasures(engine.store.db) == [(clock.t, 6)]
    # the visitor comes back: a new visitor to the shop, their old rows not theirs any more
    engine.decide("jane-42", {"cart_value": 5.0})
    assert engine.store.db.execute("SELECT COUNT(*) FROM decisions WHERE visitor_hash = ?",
                                   (jane.decode(),)).fetchone()[0] == 1
    # and an order sent by visitor id finds none of the erased decisions
    assert engine.record_order("jane-42", True, 30.0)[1] == 1
    engine.close()
    assert b"313.1337" not in _raw(data_dir)


def test_forget_refuses_what_no_visitor_id_could_be(tmp_path):
    engine = Engine.open(shop(), tmp_path / "data", seed=0, clock=Clock(T0))
    with pytest.raises(CartwheelError):
        engine.forget("jane@example.com")  # decide refuses it too: never stored
    assert engine.forget("never-seen").decisions == 0
    engine.close()


def test_the_forget_command_says_what_it_cannot_reach(tmp_path):
    engine, config, _ = _shop_with_history(tmp_path)
    engine.close()
    from server_helpers import config_file

    cfg = config_file(tmp_path, holdout={"fraction": 0.3}, attribution={"window_s": 3600},
                      caps={"incentives_per_visitor": 3, "incentives_window_s": 86400.0})
    done = subprocess.run([sys.executable, "-m", "bandit.cli", "forget", "--visitor", "jane-42",
                           "--config", str(cfg), "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "forgotten: 6 decisions, 1 order ids" in done.stdout
    assert "backups and exports made before this erasure still hold the visitor" in done.stdout
    assert b"313.1337" not in _raw(tmp_path / "data")
