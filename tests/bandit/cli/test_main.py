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
    (["report", "--data-dir", "nowhere"], ["no event log", "cartwheel serve --data-dir"]),
    (["export", "--out", "log.txt"], [".jsonl, .parquet or .dsjson"]),
    (["export", "--out", "log.parquet", "--format", "jsonl"], ["--format jsonl", "parquet"]),
    (["serve", "--config", "missing.toml"], ["missing.toml"]),
    (["serve", "--role", "decide"], ["--role decide needs --bus", "cartwheel train --bus"]),
    (["serve", "--bus", "redis://127.0.0.1:1/0"], ["--bus is for --role decide"]),
    (["serve", "--role", "decide", "--bus", "redis://127.0.0.1:1/0", "--fresh-model"],
     ["cartwheel train --fresh-model"]),
    # nothing listens on port 1: one line, no traceback, within the bus timeout
    (["serve", "--role", "decide", "--bus", "redis://127.0.0.1:1/0"],
     ["redis://127.0.0.1:1/0", "did not answer"]),
    (["train", "--bus", "redis://127.0.0.1:1/0", "--data-dir", "t"],
     ["redis://127.0.0.1:1/0", "did not answer"]),
])
def test_common_mistakes_get_one_line(capsys, tmp_path, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)
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
                        str(tmp_path / "a.parquet"))[::2], "1 still open")
    engine = Engine.open(shop(), tmp_path / "data", seed=0)
    d = engine.decide("w", {"device": "mobile"})
    engine.record_outcome(d.event_id, True, 30.0)
    engine.close()
    code, out, _ = run(capsys, "export", "--data-dir", str(tmp_path / "data"), "--out",
                       str(tmp_path / "a.parquet"))
    assert code == 0 and "(parquet)" in out
    assert (tmp_path / "a.parquet").read_bytes()[:4] == b"PAR1"


def test_help_shows_each_default_once():
    out = subprocess.run([sys.executable, "-m", "bandit.cli", "replay", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "(default: None)" not in out and out.count("(default: the") <= 1
    for command in ("export", "report"):
        text = subprocess.run([sys.executable, "-m", "bandit.cli", command, "--help"],
                              capture_output=True, text=True, check=True).stdout
        assert text.split("\n\n")[1].strip(), f"{command} has no description"
