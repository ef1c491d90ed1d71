"""Crash tests: SIGKILL an engine process at a random point, reopen, check nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import Clock, shop
from relearn import assert_same_model, relearned

from bandit import Engine
from bandit.domain.privacy import hash_outcome_id

CHILD = Path(__file__).parents[1] / "helpers" / "crash_child.py"


@pytest.mark.crash
@pytest.mark.parametrize("seed, spec", [(1, "linucb"), (2, "linucb"), (3, "lints"),
                                        (4, "uniform"), (5, "profit"),
                                        # non-additive: learned in decision order, some held
                                        (6, "linucb:halflife=300"),
                                        (7, "profit:conversion=logistic,block=20")])
def test_sigkill_loses_no_acknowledged_outcome_and_learns_each_event_once(tmp_path, seed, spec):
    rng = np.random.default_rng(seed)
    kill_after = int(rng.integers(400, 1500))  # a random point, some after several snapshots
    proc = subprocess.Popen([sys.executable, str(CHILD), str(tmp_path), str(seed), spec],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    acked, lines = [], 0
    for line in proc.stdout:
        lines += 1
        if line.startswith("ack "):
            acked.append(line.split()[1])
        if lines >= kill_after:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert acked, "the child acknowledged nothing before the kill"

    # the kill came after snapshots were written, so recovery is snapshot + log
    if spec != "uniform":
        assert list(tmp_path.glob("snapshots/snapshot-*.json"))
    config = shop(holdout={"fraction": 0.1}, attribution={"window_s": 300},
                  storage={"snapshot_every_updates": 40}, policy={"spec": spec})
    engine = Engine.open(config, tmp_path, clock=Clock(2e9))
    db = engine.store.db
    stored = {r[0] for r in db.execute("SELECT outcome_id FROM outcomes")}
    assert {hash_outcome_id(oid, engine.salt) for oid in acked} <= stored
    # the model (snapshot + the log after it) equals one re-learned from the whole log
    assert_same_model(engine, relearned(tmp_path, config))
    # every closed event closed once (unique), and learned iff randomized treatment
    wrong = db.execute(
        "SELECT COUNT(*) FROM closed c JOIN decisions d ON d.event_id = c.event_id "
        "WHERE c.learned != (d.grp = 'treatment' AND d.randomized = 1)").fetchone()[0]
    assert wrong == 0
    treated = db.execute("SELECT COUNT(*) FROM decisions WHERE grp = 'treatment' AND "
                         "randomized = 1").fetchone()[0]
    learned = db.execute("SELECT COUNT(*) FROM closed WHERE learned = 1").fetchone()[0]
    if engine.provisional:  # learns each randomized treatment decision once, when it is made
        assert engine.update_count == treated
    else:  # learns each one once, when it and every decision before it has closed
        through = engine.joiner.closed_through
        ready = db.execute("SELECT COUNT(*) FROM closed c JOIN decisions d ON d.event_id = "
                           "c.event_id WHERE c.learned = 1 AND d.seq <= ?",
                           (through,)).fetchone()[0]
        assert engine.update_count == ready
        assert engine.learner.held == learned - ready
    # after expiring everything every such event is closed, learned once and counted once
    engine.expire()
    learned = db.execute("SELECT COUNT(*) FROM closed WHERE learned = 1").fetchone()[0]
    treated = db.execute("SELECT COUNT(*) FROM decisions WHERE grp = 'treatment' AND "
                         "randomized = 1").fetchone()[0]
    assert engine.update_count == learned == treated
    engine.close()
