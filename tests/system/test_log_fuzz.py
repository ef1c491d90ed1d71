"""Hypothesis fuzz of logs for replay: any line of a JSON Lines or DSJSON file is either read
into a usable row or refused with its line number, never raised; known-good rows between the
fuzzed ones are kept exactly (no extra row, none lost); every usable row is one the engine
could have logged; and replaying linucb and profit over what was read finishes with finite
estimates (a reward of 1e300 once stopped replay, a line nested too deep aborted the file)."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit import load_config
from bandit.store.logread import read_log
from simulator.evaluation.replay import evaluate

CONFIG = load_config()
IDS = CONFIG.action_ids
LIMIT = CONFIG.objective.max_order_value + max(a.cost_fixed for a in CONFIG.actions)
GOOD = {"context": {"device": "mobile", "cart_value": 40.0}, "action": "discount_5",
        "eligible": ["none", "discount_5"], "probability": 0.5, "reward": 12.5}
ANCHOR_TS = 1_700_000_000.25  # fuzzed rows draw other times (with probability ~1)
LEAD = 100
ANCHOR_SET = {ANCHOR_TS + i for i in range(LEAD + 20)}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)
numbers = st.one_of(st.floats(), st.integers(-2**70, 2**70), st.sampled_from(
    [0, 1, -1, 0.5, 1e300, -1e300, 100_000, 100_000.01, LIMIT, LIMIT + 1]))
fields = {
    "action": st.one_of(st.sampled_from(IDS + ("bogus", "")), json_values),
    "probability": st.one_of(numbers, json_values),
    "reward": st.one_of(numbers, json_values),
    "converted": st.one_of(st.booleans(), json_values),
    "order_value": st.one_of(numbers, json_values),
    "randomized": st.one_of(st.booleans(), json_values),
    "ts": st.one_of(numbers, st.text(max_size=30), json_values),
    "eligible": st.one_of(st.lists(st.sampled_from(IDS + ("bogus",)), max_size=4), json_values),
    "context": st.one_of(st.dictionaries(st.sampled_from(
        ["device", "cart_value", "returning", "hour", "email", "x"]), json_values, max_size=3),
        json_values),
}


def mutated(draw, good: dict, fields: dict, **sizes) -> str:
    """``good`` with some of ``fields`` replaced by drawn values or dropped."""
    row = dict(good)
    for key in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, **sizes)):
        if draw(st.booleans()):
            row.pop(key, None)
        else:
            row[key] = draw(fields[key])
    return json.dumps(row)


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def fuzzed_row(draw) -> str:
    """A good row with some fields replaced or dropped, or a line that is not a row at all."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "value", "text", "deep"]))
    if kind == "value":
        return json.dumps(draw(json_values))
    if kind == "text":
        return draw(st.text(st.characters(blacklist_categories=("Cs",),
                                          blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e"
                                                               "\x85\u2028\u2029"),
                            min_size=1, max_size=40)).strip() or "x"
    if kind == "deep":
        return "[" * 20_000 + "]" * 20_000
    return mutated(draw, GOOD, fields, max_size=3)


@FUZZ
@given(st.lists(fuzzed_row(), min_size=1, max_size=12))
def test_every_line_is_read_or_refused_and_replay_finishes(tmp_path, lines):
    # known-good rows before, between and after the fuzzed ones, told apart by their ts
    # (a run of them first, so that replay has rows to learn from)
    text, anchors = [], []
    for i, line in enumerate([None] * LEAD + lines + [None]):
        anchors.append((len(text) + 1, ANCHOR_TS + i))
        text.append(json.dumps({**GOOD, "ts": ANCHOR_TS + i, "reward": 12.5 * (i % 3 == 0),
                                "context": {"device": "mobile", "cart_value": 10.0 + i}}))
        if line is not None:
            text.append(line)
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(text) + "\n")
    data, report = read_log(path, CONFIG)
    refused = [n for n, _ in report.problems]
    assert report.read == len(text) and len(data) == report.read - report.bad
    assert len(set(refused)) == len(refused) and not set(refused) & {n for n, _ in anchors}
    assert [t for t in data.ts.tolist() if t in ANCHOR_SET] == [t for _, t in anchors]
    assert all(math.isfinite(r) and abs(r) <= LIMIT for r in data.rewards)
    assert ((data.propensities > 0) & (data.propensities <= 1)).all()
    assert data.mask[range(len(data)), data.actions].all()
    assert data.randomized.dtype == bool
    for result in evaluate(data, ["uniform", "linucb", "profit"], seed=0):
        assert math.isfinite(result.value), result


DSJSON = {"c": {"device": "mobile", "_multi": [{"id": "none"}, {"id": "discount_5"}]},
          "_labelIndex": 1, "_label_probability": 0.5, "_label_cost": -3.0}
ds_fields = {
    "_labelIndex": st.one_of(st.integers(-3, 3), json_values),
    "_label_probability": st.one_of(numbers, json_values),
    "_label_cost": st.one_of(numbers, json_values),
    "Timestamp": st.one_of(st.text(max_size=30), numbers, json_values),
    "c": st.one_of(json_values, st.fixed_dictionaries({"_multi": st.one_of(
        json_values, st.lists(st.one_of(json_values, st.fixed_dictionaries(
            {"id": st.one_of(st.sampled_from(IDS), json_values)})), max_size=3))})),
}


@st.composite
def fuzzed_dsjson(draw) -> str:
    return mutated(draw, DSJSON, ds_fields, min_size=1, max_size=2)


@FUZZ
@given(st.lists(fuzzed_dsjson(), min_size=1, max_size=8))
def test_every_dsjson_line_is_read_or_refused(tmp_path, lines):
    """The same for VW's decision-service JSON (a string _labelIndex once raised out of the
    reader): the good lines around the fuzzed ones are read, each line is counted once."""
    good = json.dumps(DSJSON)
    text = [good] + [x for line in lines for x in (line, good)]
    path = tmp_path / "log.dsjson"
    path.write_text("\n".join(text) + "\n")
    data, report = read_log(path, CONFIG)
    refused = {n for n, _ in report.problems}
    assert report.read == len(text) and len(data) == report.read - report.bad
    assert not refused & set(range(1, len(text) + 1, 2))  # the good lines: 1, 3, 5, ...
    assert all(math.isfinite(r) and abs(r) <= LIMIT for r in data.rewards)
