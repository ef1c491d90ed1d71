"""``cartwheel policies``: the registry, and a shop's promotion gates (``--status``, a
person's ``--promote``, ``--pin``, ``--unpin``, ``--roll-back``) on its data dir."""

from __future__ import annotations

import json

from engine_helpers import Clock, shop_doc
from server_helpers import _toml

import simulator
from bandit import Engine
from bandit.cli.main import main
from bandit.config.shop import load_config
from simulator.worlds.online import drive


def gated_dir(tmp_path):
    doc = shop_doc(holdout={"fraction": 0.0}, attribution={"window_s": 600},
                   policy={"spec": "linucb", "challengers": ["uniform"],
                           "promote": {"mode": "manual"}},
                   storage={"path": str(tmp_path / "data")})
    path = tmp_path / "shop.toml"
    path.write_text(_toml(doc))
    engine = Engine.open(load_config(path), tmp_path / "data", seed=0, clock=Clock())
    drive(engine, simulator.make_world(), visitors=3000, rate=1.0, seed=0)
    engine.expire(engine.clock() + 3600)
    engine.close()
    return ["--config", str(path)]


def test_status_promote_pin_and_roll_back(tmp_path, capsys):
    shop = gated_dir(tmp_path)
    assert main(["policies", "--status", *shop]) == 0
    out = capsys.readouterr().out
    assert "champion linucb (manual mode, challengers share 20% of traffic" in out
    assert "challenger uniform: 20% of traffic" in out and "advantage" in out
    assert main(["policies", "--promote", "uniform", *shop]) == 0
    assert "promoted uniform over linucb" in capsys.readouterr().out
    assert main(["policies", "--pin", *shop]) == 0
    assert "(pinned)" in capsys.readouterr().out
    assert main(["policies", "--roll-back", "--json", *shop]) == 0
    view = json.loads(capsys.readouterr().out)["default"]
    assert view["champion"] == "linucb" and len(view["rollbacks"]) == 1
    assert main(["policies", "--status", "--json", *shop]) == 0  # kept on disk
    assert json.loads(capsys.readouterr().out)["default"]["champion"] == "linucb"


def test_a_typo_names_the_gates_policies(tmp_path, capsys):
    shop = gated_dir(tmp_path)
    assert main(["policies", "--promote", "unifrom", *shop]) != 0
    err = capsys.readouterr().err
    assert "'unifrom' is not one of this gate's policies: ['linucb', 'uniform']" in err


def test_without_options_the_registry_and_how_to_add_challengers(capsys):
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    assert "linucb:" in out and "[policy] challengers" in out
