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


def test_the_report_shows_the_gate_as_of_its_snapshot_without_the_lock(tmp_path, capsys):
    from bandit.store.datadir import DataDirLock

    shop = gated_dir(tmp_path)
    assert main(["policies", "--promote", "uniform", *shop]) == 0  # snapshotted at once
    capsys.readouterr()
    held = DataDirLock(tmp_path / "data")  # a server holds the data dir: both still read
    try:
        assert main(["report", *shop, "--json", str(tmp_path / "report.json")]) == 0
        out = capsys.readouterr().out
        assert main(["policies", "--status", *shop]) == 0
        assert "placement default: champion uniform" in capsys.readouterr().out
        assert main(["policies", "--promote", "linucb", *shop]) == 2  # a change needs it
        assert "another cartwheel process is using" in capsys.readouterr().err
    finally:
        held.release()
    assert "which policy decides (as of the newest model snapshot)" in out
    assert "placement default: champion uniform (manual mode" in out
    gate = json.loads((tmp_path / "report.json").read_text())["policy_gate"]["default"]
    assert gate["champion"] == "uniform" and gate["promotions"][0]["by"] == "person"


def test_a_shop_without_a_gate_reports_none(tmp_path, capsys):
    doc = shop_doc(storage={"path": str(tmp_path / "data")})
    path = tmp_path / "shop.toml"
    path.write_text(_toml(doc))
    Engine.open(load_config(path), tmp_path / "data", seed=0, clock=Clock()).close()
    assert main(["report", "--config", str(path), "--json", str(tmp_path / "r.json")]) == 0
    assert "which policy decides" not in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["policy_gate"] is None


def test_status_says_when_a_gated_shop_has_no_snapshot_yet(tmp_path, capsys):
    doc = shop_doc(policy={"spec": "linucb", "challengers": ["uniform"]},
                   storage={"path": str(tmp_path / "data")})
    path = tmp_path / "shop.toml"
    path.write_text(_toml(doc))
    assert main(["policies", "--status", "--config", str(path)]) == 0
    assert "no model snapshot in" in capsys.readouterr().out
