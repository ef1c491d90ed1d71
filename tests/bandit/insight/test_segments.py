"""Segments: conditions read as the tree splits, a segment's rows are exactly what its rule
selects, the uplift intervals cover the simulator's true segment uplift at their stated
rate, and rules written from segments load back and change decisions as the segments say."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from engine_helpers import Clock, shop_doc

import policies
import simulator
from bandit import Engine
from bandit.config.shop import parse_config
from bandit.domain.rules import Condition
from bandit.insight.segments import (
    describe,
    find,
    members,
    readable,
    rules_toml,
    simplify,
)
from simulator.worlds.runner import streams
from simulator.worlds.simulated_log import simulate_log

pytest.importorskip("sklearn", reason="segments need scikit-learn ([segments])")
WORLD = simulator.make_world("default")
CONTROL = "none"


def _log(n: int, seed: int):
    """A uniformly logged conversion log of ``n`` visitors and the same visitors' batch (one
    batch, so that the world draws them alike)."""
    data = simulate_log(WORLD, policies.make("uniform", n_actions=WORLD.n_actions,
                                             n_features=WORLD.space.dim, seed=seed), n,
                        seed=seed, objective="conversion", keep_contexts=True, batch_size=n)
    batch = WORLD.visitors(n, streams(seed)[0])
    assert batch.contexts == data.contexts
    return data, batch


def _oracle(world, batch, objective="conversion"):
    """The greedy choice of the true expected reward (a policy whose segments are real)."""
    q = np.where(batch.mask, world.expected_rewards(batch, objective), -np.inf)
    return np.eye(world.n_actions)[q.argmax(axis=1)]


def test_conditions_merge_per_key_and_read_plainly():
    conds = simplify([Condition("cart_value", "gt", 10.0), Condition("cart_value", "gt", 25.0),
                      Condition("cart_value", "le", 80.0), Condition("device", "ne", "mobile"),
                      Condition("device", "ne", "tablet"), Condition("region", "in",
                                                                     ("north", "south")),
                      Condition("region", "ne", "north"), Condition("returning", "eq", False)])
    assert conds == (Condition("cart_value", "gt", 25.0), Condition("cart_value", "le", 80.0),
                     Condition("device", "not_in", ("mobile", "tablet")),
                     Condition("region", "in", ("south",)), Condition("returning", "eq", False))
    assert describe(conds) == ("25 < cart_value ≤ 80 · device not in {mobile, tablet} · "
                               "region in {south} · not returning")
    assert describe([]) == "all visitors"


def test_a_segment_is_exactly_what_its_rule_selects():
    data, batch = _log(6000, 1)
    P = _oracle(WORLD, batch)
    result = find(data, P, WORLD.space, CONTROL, depth=3)
    assert result.status == "ok" and 2 <= len(result.segments) <= 8
    Z, columns = readable(WORLD.space, data.contexts)
    covered = np.zeros(len(data), dtype=int)
    for seg in result.segments:
        rows = members(seg.conditions, Z, columns)
        covered += rows
        # the rule engine, on the context dicts, selects the same visitors
        by_rule = np.array([all(c.holds(ctx) for c in seg.conditions) for ctx in data.contexts])
        assert (by_rule == rows).all(), seg.condition
        assert seg.share == pytest.approx(rows.mean())
    assert (covered == 1).all()  # the leaves partition the visitors


@pytest.mark.slow
def test_uplift_intervals_cover_the_true_segment_uplift():
    """30 seeded logs of 20,000 uniformly logged visitors (conversion, eligibility varies per
    visitor, so propensities differ), segments of the oracle policy; the truth per segment is
    the mean true uplift over 200,000 fresh visitors of that segment on whom both actions are
    eligible. 95% intervals: coverage must lie in [0.90, 0.99] over all segments (~240;
    binomial sd ~1.4 points)."""
    truth_batch = WORLD.visitors(200_000, np.random.default_rng(12345))
    Zt, columns = readable(WORLD.space, truth_batch.contexts)
    q = WORLD.expected_rewards(truth_batch, "conversion")
    ids = list(WORLD.actions)
    hits = total = 0
    for seed in range(30):
        data, batch = _log(20_000, seed)
        result = find(data, _oracle(WORLD, batch), WORLD.space, CONTROL, depth=3)
        for seg in result.segments:
            u = seg.uplift
            if u.lower is None:
                continue
            a, b = ids.index(seg.action), ids.index(seg.versus)
            rows = members(seg.conditions, Zt, columns) & truth_batch.mask[:, a] & \
                truth_batch.mask[:, b]
            true = float((q[rows, a] - q[rows, b]).mean())
            hits += u.lower <= true <= u.upper
            total += 1
    assert total >= 150
    print(f"coverage {hits}/{total} = {hits / total:.3f}")
    assert 0.90 <= hits / total <= 0.99, (hits, total)


def test_written_rules_load_back_and_force_the_segments_actions(tmp_path):
    clock = Clock()
    doc = shop_doc(holdout={"fraction": 0.0})
    engine = Engine.open(parse_config(doc, source="shop.toml"), tmp_path / "a", seed=0,
                         clock=clock)
    data, batch = _log(4000, 3)
    result = find(data, _oracle(WORLD, batch), WORLD.space, CONTROL, depth=2)
    chosen = [i for i, s in enumerate(result.segments, 1) if s.action != CONTROL][:2]
    assert chosen
    text = rules_toml(result, chosen, force=True)  # what they force, safe or not
    import tomllib

    rules = tomllib.loads(text)["rules"]
    config = parse_config({**doc, "rules": rules}, source="shop.toml")  # valid config
    assert len(config.rules) == len(chosen)
    learned = Engine.open(config, tmp_path / "b", seed=0, clock=clock)
    Z, columns = readable(WORLD.space, data.contexts)
    forced = {i: result.segments[i - 1] for i in chosen}
    checked = 0
    for row, ctx in enumerate(data.contexts[:400]):
        inside = [s for s in forced.values() if members(s.conditions, Z[row:row + 1],
                                                        columns)[0]]
        d = learned.decide(f"v{row}", ctx, commit=False)
        if inside:  # the first matching rule forces its segment's action
            assert (d.action, d.randomized) == (inside[0].action, False)
            checked += 1
        else:
            assert d.randomized
        free = engine.decide(f"v{row}", ctx, commit=False)
        assert free.randomized  # without the rules nothing is forced
    assert checked >= 20
    engine.close()
    learned.close()


def test_the_segments_command_on_a_data_dir_and_on_an_exported_log(tmp_path, capsys):
    import json
    import tomllib

    from bandit.cli.main import main
    from simulator.worlds.online import drive

    clock = Clock()
    engine = Engine.open(parse_config(shop_doc(attribution={"window_s": 600}),
                                      source="shop.toml"), tmp_path / "data", seed=0,
                         clock=clock)
    drive(engine, WORLD, visitors=3000, rate=1.0, seed=0)
    clock.t += 3600
    engine.expire()
    engine.close()  # writes the snapshot `segments --data-dir` reads
    config = tmp_path / "shop.toml"
    from server_helpers import _toml

    config.write_text(_toml(shop_doc(attribution={"window_s": 600})))
    base = ["--config", str(config)]
    assert main(["segments", "--data-dir", str(tmp_path / "data"), *base,
                 "--json", str(tmp_path / "live.json")]) == 0
    live = json.loads((tmp_path / "live.json").read_text())
    assert live["status"] == "ok" and live["rows"] == 3000
    assert sum(s["share"] for s in live["segments"]) == pytest.approx(1.0)
    assert "snapshot, model version" in capsys.readouterr().out
    log = tmp_path / "log.jsonl"
    assert main(["export", "--data-dir", str(tmp_path / "data"), *base, "--out", str(log)]) == 0
    assert main(["segments", "--log", str(log), *base, "--depth", "2",
                 "--json", str(tmp_path / "replayed.json")]) == 0
    assert "trained by replay" in capsys.readouterr().out
    replayed = json.loads((tmp_path / "replayed.json").read_text())
    assert replayed["depth"] == 2 and len(replayed["segments"]) <= 4
    # a segment whose interval is not above zero (or with few data) is refused in one line,
    # and written only with --force
    first = replayed["segments"][0]["uplift"]
    safe = (first["lower"] is not None and first["lower"] > 0 and first["reliable"]
            and replayed["segments"][0]["action"] != replayed["control"])
    write = ["segments", "--log", str(log), *base, "--depth", "2", "--segment", "1",
             "--write-rules", str(tmp_path / "rules.toml")]
    if not safe:
        assert main(write) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]  # after the log's summary
        assert err.startswith("cartwheel segments: error: segment 1 is not written")
        assert err.endswith("add --force to write it anyway")
        assert not (tmp_path / "rules.toml").exists()
        write.append("--force")
    assert main(write) == 0
    assert "wrote 1 rule to" in capsys.readouterr().out
    rules = tomllib.loads((tmp_path / "rules.toml").read_text())["rules"]
    parse_config({**shop_doc(), "rules": rules}, source="shop.toml")
    assert rules[0]["then"]["force"] == replayed["segments"][0]["action"]
    # a data dir without a snapshot says what to do
    assert main(["segments", "--data-dir", str(tmp_path / "empty"), *base]) == 2
    assert "no event log" in capsys.readouterr().err


def test_without_scikit_learn_segments_say_how_to_enable_them(monkeypatch):
    data, batch = _log(500, 4)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what an install without it sees
    monkeypatch.setitem(sys.modules, "sklearn.tree", None)
    result = find(data, _oracle(WORLD, batch), WORLD.space, CONTROL)
    assert result.status == "unavailable"
    assert "pip install 'cartwheel[segments]'" in result.reason


def _odd_shop(rng, n_actions: int, kinds: list[str]) -> dict:
    """A shop document with ``n_actions`` actions and one feature of each kind in ``kinds``
    (names with dashes and non-ASCII letters: rules must quote them)."""
    features = {}
    for j, kind in enumerate(kinds):
        name = ["größe", "page-kind", "vip", "x_1", "hour of day"][j % 5] + str(j)
        features[name] = ({"type": "categorical", "categories": [f"c{i}" for i in range(3)]}
                          if kind == "categorical" else {"type": "numeric", "min": 0, "max": 100}
                          if kind == "numeric" else {"type": "cyclic", "period": 24}
                          if kind == "cyclic" else {"type": "boolean"})
    actions = [{"id": "none", "kind": "none"}] + [
        {"id": f"offer-{i}", "kind": "banner"} for i in range(1, n_actions)]
    doc = {**shop_doc(), "actions": actions, "features": features}
    doc.pop("rules", None)
    return doc


@pytest.mark.parametrize("n_actions, kinds", [
    (1, ["numeric"]), (2, ["boolean"]), (3, ["categorical", "cyclic"]),
    (4, ["numeric", "categorical", "boolean", "cyclic", "categorical"])])
def test_segments_and_their_rules_work_for_any_shop_schema(n_actions, kinds, tmp_path):
    """Any number of actions (one included), any mix of feature kinds, keys that need
    quoting: segments partition the visitors and every written rule loads back."""
    import tomllib

    from bandit.domain.logged import LoggedData

    rng = np.random.default_rng(n_actions)
    doc = _odd_shop(rng, n_actions, kinds)
    config = parse_config(doc, source="odd.toml")
    space = config.feature_space()
    n = 3000
    contexts = []
    for _ in range(n):
        ctx = {}
        for f in space.features:
            kind = doc["features"][f.name]["type"]
            if rng.random() < 0.1:
                continue  # a missing key
            ctx[f.name] = (str(rng.choice(["c0", "c1", "c2", "other"])) if kind == "categorical"
                           else float(rng.uniform(0, 100)) if kind == "numeric"
                           else float(rng.uniform(0, 24)) if kind == "cyclic"
                           else bool(rng.random() < 0.5))
        contexts.append(space.normalize_stored(ctx))
    X = space.transform(contexts)
    mask = np.ones((n, n_actions), dtype=bool)
    actions = rng.integers(0, n_actions, n)
    # a policy that prefers an action by the first feature's column
    score = X[:, 1:2] * np.arange(1, n_actions + 1) - np.arange(n_actions)
    P = np.eye(n_actions)[score.argmax(axis=1)] * 0.9 + 0.1 / n_actions
    data = LoggedData(config.action_ids, X, mask, actions, np.full(n, 1 / n_actions),
                      rng.normal(1.0, 1.0, n) + (actions == 0), np.ones(n, dtype=bool),
                      np.arange(n, dtype=float), contexts)
    result = find(data, P, space, "none", depth=3)
    assert result.status == "ok"
    assert sum(s.share for s in result.segments) == pytest.approx(1.0)
    Z, columns = readable(space, contexts)
    covered = sum(members(s.conditions, Z, columns).astype(int) for s in result.segments)
    assert (covered == 1).all()
    chosen = list(range(1, len(result.segments) + 1))
    rules = tomllib.loads(rules_toml(result, chosen, force=True))["rules"]
    assert len(parse_config({**doc, "rules": rules}, source="odd.toml").rules) == len(chosen)


def test_rules_are_written_only_for_segments_that_win_on_enough_data():
    from dataclasses import replace

    data, batch = _log(4000, 5)
    result = find(data, _oracle(WORLD, batch), WORLD.space, CONTROL, depth=2)
    seg = next(s for s in result.segments if s.action != CONTROL)
    win = replace(seg, uplift=replace(seg.uplift, lower=0.5, upper=1.5, reliable=True))
    lose = replace(seg, uplift=replace(seg.uplift, lower=-2.0, upper=-0.5, reliable=True))
    few = replace(win, uplift=replace(win.uplift, reliable=False))
    control = replace(win, action=CONTROL)
    shop = replace(result, segments=(win, lose, few, control))
    assert rules_toml(shop).count("[[rules]]") == 1  # by default: the winner only
    assert rules_toml(shop, [1]).count("[[rules]]") == 1
    for i, why in ((2, "is not above zero"), (3, "too few data"), (4, "prefers the control")):
        with pytest.raises(ValueError, match=f"segment {i} is not written: .*{why}"):
            rules_toml(shop, [i])
        assert rules_toml(shop, [i], force=True).count("[[rules]]") == 1
