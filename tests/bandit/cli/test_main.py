"""The first hour with the CLI: every common mistake gets one line that says what to do, and
exit code 2; never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from engine_helpers import shop_doc
from server_helpers import _toml

from bandit.cli.main import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cartwheel "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("argv, needles", [
    (["simulate", "--policies", "lincub", "--quiet"], ["unknown policy 'lincub'", "linucb"]),
    (["simulate", "--policies", "fixed", "--quiet"], ["fixed needs action="]),
    (["simulate", "--policies", "linucb:alpha=abc", "--quiet"], ["alpha", "expected a number"]),
    (["simulate", "--policies", "linucb:alpha=nan", "--quiet"], ["alpha", "a finite number"]),
    (["simulate", "--policies", "lints:v=inf", "--quiet"], ["v=inf", "a finite number"]),
    (["simulate", "--policies", ",", "--quiet"], ["no policy spec given"]),
    (["simulate", "--policies", "linucb,linucb", "--quiet"], ["given twice", "linucb"]),
    (["simulate", "--seeds", "0", "--quiet"], ["seeds >= 1"]),
    (["simulate", "--policies", "linucb alpha=0.5", "--quiet"], ["linucb:alpha=0.5"]),
    (["simulate", "--policies", "linucb:alpah=1", "--quiet"], ["did you mean 'alpha'"]),
    (["replay", "nowhere.jsonl", "--policies", "linucb"], ["nowhere.jsonl"]),
    (["simulate", "--policies", "gated(linucb)", "--quiet"],
     ["a champion and at least one challenger", "gated(CHAMPION | CHALLENGER)"]),
    (["simulate", "--policies", "linucb,gated(linucb | egreedy", "--quiet"],
     ["a '(' without its ')'"]),
    (["simulate", "--policies", "gated(linucb | lincub)", "--quiet"],
     ["unknown policy 'lincub'"]),
    (["replay", "nowhere.jsonl", "--policies", "linucb,gated(linucb | egreedy)"],
     ["a gate cannot be replayed from a log", "cartwheel simulate --policies"]),
    (["report", "--data-dir", "nowhere"], ["no event log", "cartwheel serve --data-dir"]),
    (["export", "--out", "log.txt"], [".jsonl, .parquet or .dsjson"]),
    (["export", "--out", "log.parquet", "--format", "jsonl"], ["--format jsonl", "parquet"]),
    (["serve", "--config", "missing.toml"], ["missing.toml"]),
    (["serve", "--role", "decide"], ["no bus", "--bus URL", "CARTWHEEL_BUS_URL"]),
    (["serve", "--bus", "redis://127.0.0.1:1/0"], ["--bus is for --role decide"]),
    (["serve", "--role", "decide", "--bus", "redis://127.0.0.1:1/0", "--fresh-model"],
     ["cartwheel train --fresh-model"]),
    # nothing listens on port 1: one line, no traceback, within the bus timeout
    (["serve", "--role", "decide", "--bus", "redis://127.0.0.1:1/0"],
     ["redis://127.0.0.1:1/0", "did not answer"]),
    (["train", "--bus", "redis://127.0.0.1:1/0", "--data-dir", "t"],
     ["redis://127.0.0.1:1/0", "did not answer"]),
    # a password in the bus URL never shows
    (["train", "--bus", "redis://u:hunter2@127.0.0.1:1/0", "--data-dir", "t"],
     ["redis://u:***@127.0.0.1:1/0", "did not answer"]),
])
def test_common_mistakes_get_one_line(capsys, tmp_path, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)
    from scaleout_helpers import ENV  # a replica or trainer holds the shop's secrets

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    one_line_error(*run(capsys, *argv)[::2], *needles)


@pytest.mark.parametrize("change, needles", [
    (lambda d: d.update(policy={"spec": "lincub"}), ["policy.spec", "did you mean 'linucb'"]),
    (lambda d: d.update(policy={"spec": "fixed"}), ["policy.spec", "fixed:action="]),
    (lambda d: d.update(rules=[{"when": {"page_type": "chekout"},
                                "then": {"exclude": ["none"]}}]),
     ["rules[0].when.page_type", "did you mean 'checkout'"]),
    (lambda d: d["objective"].update(margn=0.3), ["objective.margn", "did you mean 'margin'"]),
    (lambda d: d["objective"].update(max_order_value=-1), ["objective.max_order_value"]),
])
def test_config_errors_name_the_file_and_key(capsys, tmp_path, change, needles):
    doc = shop_doc()
    change(doc)
    path = tmp_path / "shop.toml"
    path.write_text(_toml(doc))
    code, _, err = run(capsys, "report", "--config", str(path), "--data-dir", str(tmp_path))
    one_line_error(code, err, str(path), *needles)


def test_missing_extras_are_named_before_any_work(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vowpalwabbit", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    one_line_error(*run(capsys, "simulate", "--policies", "vw", "--quiet")[::2],
                   'pip install "cartwheel[vw]"')
    one_line_error(*run(capsys, "simulate", "--policies", "uniform", "--visitors", "10",
                        "--plot", str(tmp_path / "p.png"), "--quiet")[::2],
                   'pip install "cartwheel[plot]"')


def test_init_writes_a_config_that_loads_and_never_overwrites(capsys, tmp_path, monkeypatch):
    from bandit import load_config

    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init")
    assert code == 0 and "cartwheel serve --config cartwheel.toml" in out
    config = load_config(tmp_path / "cartwheel.toml")
    assert config.rules and config.caps and config.budget  # the example shop, whole
    before = (tmp_path / "cartwheel.toml").read_text()
    one_line_error(*run(capsys, "init")[::2], "exists", "--force")
    assert (tmp_path / "cartwheel.toml").read_text() == before
    assert run(capsys, "init", "--force")[0] == 0


def test_policies_lists_every_parameter_with_default_and_meaning(capsys):
    import policies

    code, out, _ = run(capsys, "policies")
    assert code == 0
    for name, cls in policies.REGISTRY.items():
        for param, default, meaning in policies.param_info(cls):
            assert meaning, f"{name}.{param} has no one-line meaning (PARAMS)"
            assert f"{param:14s} {'= ' + repr(default):14s} {meaning}" in out


def test_export_follows_the_extension_and_reports_open_events(capsys, tmp_path):
    from engine_helpers import shop

    from bandit import Engine

    engine = Engine.open(shop(), tmp_path / "data", seed=0)
    engine.decide("v", {"device": "mobile"})
    engine.close()
    one_line_error(*run(capsys, "export", "--data-dir", str(tmp_path / "data"), "--out",
                        str(tmp_path / "a.parquet"))[::2],
                   "1 still inside their attribution window")
    engine = Engine.open(shop(), tmp_path / "data", seed=0)
    d = engine.decide("w", {"device": "mobile"})
    engine.record_outcome(d.event_id, True, 30.0)
    engine.close()
    # converted at once, but inside its window: not final (its neighbours may still convert)
    one_line_error(*run(capsys, "export", "--data-dir", str(tmp_path / "data"), "--out",
                        str(tmp_path / "a.parquet"))[::2],
                   "2 still inside their attribution window")
    code, out, _ = run(capsys, "export", "--data-dir", str(tmp_path / "data"), "--out",
                       str(tmp_path / "a.parquet"), "--include-open")
    assert code == 0 and "(parquet): 0 final, 2 still inside their window (marked open)" in out
    assert (tmp_path / "a.parquet").read_bytes()[:4] == b"PAR1"


def test_help_shows_each_default_once():
    out = subprocess.run([sys.executable, "-m", "bandit.cli", "replay", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "(default: None)" not in out and out.count("(default: the") <= 1
    for command in ("export", "report"):
        text = subprocess.run([sys.executable, "-m", "bandit.cli", command, "--help"],
                              capture_output=True, text=True, check=True).stdout
        assert text.split("\n\n")[1].strip(), f"{command} has no description"


@pytest.fixture
def placements_dir(tmp_path):
    """A data dir of a shop with placements: 120 visits with orders by visitor id."""
    import copy

    import numpy as np
    from engine_helpers import PLACEMENTS, Clock

    from bandit import Engine
    from bandit.config.shop import parse_config

    doc = shop_doc(placements=copy.deepcopy(PLACEMENTS), attribution={"window_s": 60.0})
    (tmp_path / "shop.toml").write_text(_toml(doc))
    clock = Clock(1_700_000_000.0)
    engine = Engine.open(parse_config(doc), tmp_path / "data", seed=0, clock=clock)
    rng = np.random.default_rng(0)
    for i in range(120):
        for p in ("product", "cart", "exit"):
            d = engine.decide(f"v{i}", {"device": "mobile", "cart_value": 40.0}, placement=p)
            if p == "exit" and i % 2:
                engine.activate(d.event_id)
        if rng.random() < 0.3:
            engine.record_order(f"v{i}", True, 50.0)
        clock.t += 1
    clock.t += 120
    engine.expire()
    engine.close()
    return tmp_path


def test_export_and_replay_by_placement(capsys, placements_dir):
    import json

    cfg, data = str(placements_dir / "shop.toml"), str(placements_dir / "data")
    out = placements_dir / "all.jsonl"
    code, text, err = run(capsys, "export", "--config", cfg, "--data-dir", data, "--out",
                          str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # every decision but the 60 pop-ups never shown (closed unlearned, not evaluable)
    assert code == 0 and len(rows) == 300 and "60 deferred and never shown" in err
    assert {r["placement"] for r in rows} == {"product", "cart", "exit"}
    code, text, err = run(capsys, "export", "--config", cfg, "--data-dir", data, "--out",
                          str(placements_dir / "cart.jsonl"), "--placement", "cart")
    cart = [json.loads(line) for line in (placements_dir / "cart.jsonl").read_text().splitlines()]
    assert code == 0 and len(cart) == 120 and {r["placement"] for r in cart} == {"cart"}
    assert "240 at other placements" in err
    assert {r["action"] for r in cart} <= {"none", "free_shipping", "discount_5", "discount_10"}
    one_line_error(*run(capsys, "export", "--config", cfg, "--data-dir", data, "--out",
                        str(placements_dir / "x.dsjson"))[::2], "--placement")
    # replay is per placement: its actions, its decisions
    one_line_error(*run(capsys, "replay", str(out), "--config", cfg)[::2],
                   "placement is required", "['product', 'cart', 'exit']")
    code, text, err = run(capsys, "replay", str(out), "--config", cfg, "--placement", "exit",
                          "--policies", "uniform")
    assert code == 0 and "log: 60 decisions" in text, (text, err)
    one_line_error(*run(capsys, "segments", "--config", cfg, "--data-dir", data)[::2],
                   "placement is required")


def test_a_bus_password_never_shows(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from scaleout_helpers import ENV

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "train", "--bus", "redis://u:hunter2@127.0.0.1:1/0",
                         "--data-dir", "t")
    assert code != 0 and "hunter2" not in out + err and "u:***@" in err


def test_a_gate_runs_beside_single_policies_on_a_simulated_shop(capsys):
    code, out, err = run(capsys, "simulate", "--policies",
                         "linucb,gated(linucb | profit:conversion=logistic,bonus=ridge)",
                         "--visitors", "3000", "--seeds", "1")
    assert code == 0, err
    table = out.splitlines()[out.splitlines().index(next(
        line for line in out.splitlines() if line.startswith("policy "))) + 1:][:2]
    assert table[0].startswith("linucb ")  # and the gate's row, named by its spec
    assert table[1].startswith("gated(linucb | profit:conversion=logistic,bonus=ridge) ")
    assert "%" in table[1] and "nan" not in table[1]


@pytest.mark.parametrize("command", [["segments", "--log"], ["replay"]])
def test_a_log_with_nothing_usable_says_why_row_by_row(capsys, tmp_path, command):
    log = tmp_path / "garbage.jsonl"
    log.write_text("{not json\n[1, 2]\n")
    code, _, err = run(capsys, *command, str(log))
    assert code == 2
    assert "error: no usable rows in the log" in err and "read 2 rows: 0 usable, 2 refused" in err
    assert "line 1: not valid JSON" in err and "Traceback" not in err
