"""A promotion the holdout says is losing comes back to the previous champion
(bandit.insight.probation through the server's pass, bandit.http.engine_role.probation_pass);
one that is not losing stays."""

from __future__ import annotations

from engine_helpers import Clock, shop

import simulator
from bandit import Engine
from bandit.core import gate
from bandit.http.engine_role import probation_pass
from simulator.worlds.online import drive


def promoted_engine(tmp_path, challenger: str):
    # a thin margin: a discount given to every visitor costs most of what the order earns
    config = shop(holdout={"fraction": 0.3}, attribution={"window_s": 600},
                  objective={"margin": 0.12},
                  policy={"spec": "linucb", "challengers": [challenger]})
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=Clock())
    world = simulator.make_world()
    drive(engine, world, visitors=2000, rate=1.0, seed=1)
    gate.change(engine, "promote", challenger)  # a person promotes it
    return engine, world


def test_a_promotion_the_holdout_says_is_losing_is_rolled_back(tmp_path):
    # the challenger gives every visitor 10% off: the holdout (shown nothing) earns more
    engine, world = promoted_engine(tmp_path, "fixed:action=discount_10")
    try:
        since: dict = {}
        assert probation_pass(engine, since) == []  # first seen: from here on
        drive(engine, world, visitors=12000, rate=1.0, seed=2)
        engine.expire(engine.clock() + 3600)
        assert probation_pass(engine, since) == ["default"]
        view = engine.models.gates()["default"]
        assert view["champion"] == "linucb" and view["previous"] is None
        assert "the holdout says the shop earns less" in view["rollbacks"][0]["reason"]
    finally:
        engine.close()


def test_a_promotion_that_is_not_losing_stays(tmp_path):
    # the promoted policy shows the control's action: treated and holdout earn alike
    engine, world = promoted_engine(tmp_path, "fixed:action=none")
    try:
        since: dict = {}
        probation_pass(engine, since)
        drive(engine, world, visitors=12000, rate=1.0, seed=2)
        engine.expire(engine.clock() + 3600)
        assert probation_pass(engine, since) == []
        assert engine.models.gates()["default"]["champion"] == "fixed:action=none"
    finally:
        engine.close()
