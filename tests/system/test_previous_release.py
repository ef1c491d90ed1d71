"""A data dir and config of the release before placements (tests/data/release-0.1) work
unchanged: the store is upgraded in place, the snapshot loads as the default placement's
model, old requests, open events and outcome ids go on as before, and a read-only export of
the untouched dir works."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bandit import Engine, load_config
from bandit.store.logread import read_log
from bandit.store.schema import SCHEMA_VERSION

FIXTURE = Path(__file__).parents[1] / "data" / "release-0.1"


@pytest.fixture
def old_dir(tmp_path) -> Path:
    data = tmp_path / "data"
    (data / "snapshots").mkdir(parents=True)
    db = sqlite3.connect(data / "events.sqlite3")
    db.executescript((FIXTURE / "events.sql").read_text())
    db.close()
    for f in (FIXTURE / "snapshots").iterdir():
        shutil.copy(f, data / "snapshots" / f.name)
    return data


def _counts(path: Path) -> dict:
    db = sqlite3.connect(path / "events.sqlite3")
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("decisions", "outcomes", "closed")}
    finally:
        db.close()


def test_an_old_data_dir_and_config_work_unchanged(old_dir):
    config = load_config(FIXTURE / "shop.toml")
    assert config.placement_ids == ("default",) and not config.declares_placements
    before = _counts(old_dir)
    marker = next((old_dir / "snapshots").glob("*.json"))
    meta = json.loads(marker.read_text())
    with np.load(marker.with_suffix(".npz")) as f:
        saved = {k: f[k] for k in f.files}
    t_last = sqlite3.connect(old_dir / "events.sqlite3").execute(
        "SELECT MAX(ts) FROM decisions").fetchone()[0]
    engine = Engine.open(config, old_dir, seed=0, clock=lambda: t_last + 60)
    assert engine.store.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert _counts(old_dir) == before  # no row gained or lost
    # the snapshot is the default placement's model, as it was saved (it was the final one)
    state = engine.policy.get_state()
    for key, value in saved.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    assert engine.model_version == meta["model_version"]
    # every old row reads as a decision at the default placement, active
    assert set(engine.store.db.execute("SELECT DISTINCT placement, deferred FROM decisions")) \
        == {("default", 0)}
    # old requests: no placement named; an open event of before the upgrade takes its outcome
    d = engine.decide("visitor-1", {"device": "mobile"})
    assert d.placement == "default"
    open_ids = [r[0] for r in engine.store.db.execute(
        "SELECT d.event_id FROM decisions d WHERE NOT EXISTS (SELECT 1 FROM closed c WHERE "
        "c.event_id = d.event_id) AND d.event_id != ? ORDER BY d.seq DESC", (d.event_id,))]
    assert open_ids
    assert engine.record_outcome(open_ids[0], True, 42.0, outcome_id="after-upgrade") \
        == "recorded"
    # an outcome id recorded before the upgrade is still a duplicate when retried
    from bandit.domain.privacy import hash_outcome_id

    retried = [(i, row[0]) for i in range(60) for row in engine.store.db.execute(
        "SELECT event_id FROM outcomes WHERE outcome_id = ?",
        (hash_outcome_id(f"order-{i}", engine.salt),))]
    assert len(retried) == 16
    i, event = retried[0]
    assert engine.record_outcome(event, True, 1.0, outcome_id=f"order-{i}") == "duplicate"
    # and the order of an old visitor can come by visitor id now
    assert engine.record_order("visitor-1", True, 30.0)[0] == "recorded"
    from bandit.insight.report import build_report

    report = build_report(engine.store, config.objective.margin, placements=("default",))
    assert list(report.placements) == ["default"]
    assert sum(g["decisions"] for g in report.groups.values()) == before["decisions"] + 1
    engine.close()
    # the model restarts from its new snapshot, which names its placement
    again = Engine.open(config, old_dir, seed=0, clock=lambda: t_last + 120)
    assert again.keeper.contents()[1]["placement"] == "default"
    again.close()


def test_an_untouched_old_store_reads_read_only(old_dir):
    """An export (or replay) of a data dir before any new process opened it for writing."""
    config = load_config(FIXTURE / "shop.toml")
    db = sqlite3.connect(old_dir / "events.sqlite3")
    stopped = db.execute("SELECT MAX(ts) FROM closed").fetchone()[0]  # its last expiry
    young = db.execute("SELECT COUNT(*) FROM decisions WHERE ts >= ?",
                       (stopped - config.attribution.window_s,)).fetchone()[0]
    db.close()
    data, report = read_log(old_dir, config, "sqlite", now=stopped)
    assert report.read == 60 and report.pending == young > 0 and len(data) == 60 - young
    assert set(data.placements) == {"default"}
    assert _counts(old_dir)["decisions"] == 60
    version = sqlite3.connect(old_dir / "events.sqlite3").execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == "2"  # read-only: not upgraded
