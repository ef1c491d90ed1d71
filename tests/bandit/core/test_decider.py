"""The decider through the engine: time order, privacy checks, holdout and eligibility."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import CTX, closed_row, open_engine

from bandit.domain.errors import (
    CartwheelError,
    PersonalDataError,
)


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
