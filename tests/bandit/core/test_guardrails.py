"""Rules, frequency caps and the incentive budget (pytest marker ``guardrails``)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop_doc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit import Engine
from bandit.config.shop import parse_config
from bandit.domain.errors import ConfigError

pytestmark = pytest.mark.guardrails

IDS = ["none", "banner_brand", "banner_urgency", "free_shipping", "discount_5", "discount_10",
       "upsell_bundle", "cross_sell"]
COSTED = {"free_shipping", "discount_5", "discount_10"}
KIND = {"none": "none", "banner_brand": "banner", "banner_urgency": "banner",
        "free_shipping": "incentive", "discount_5": "incentive", "discount_10": "incentive",
        "upsell_bundle": "upsell", "cross_sell": "cross_sell"}

conditions = st.one_of(
    st.builds(lambda op, v: ("cart_value", {op: v}), st.sampled_from(["lt", "le", "gt", "ge"]),
              st.floats(0, 300)),
    st.builds(lambda v: ("device", v), st.sampled_from(["mobile", "desktop", "tablet"])),
    st.builds(lambda v: ("page_type", {"in": v}),
              st.lists(st.sampled_from(["home", "product", "cart", "checkout"]), min_size=1)),
    st.builds(lambda v: ("returning", v), st.booleans()))
effects = st.one_of(
    st.builds(lambda a: {"only": a}, st.lists(st.sampled_from(IDS), min_size=1, max_size=4)),
    st.builds(lambda a: {"exclude": a}, st.lists(st.sampled_from(IDS), min_size=1, max_size=3)),
    st.builds(lambda a: {"force": a}, st.sampled_from(IDS)))
rules = st.lists(st.builds(lambda c, e: {"when": dict(c), "then": e},
                           st.lists(conditions, min_size=1, max_size=2), effects), max_size=4)
caps = st.fixed_dictionaries({}, optional={
    "incentives_per_visitor": st.integers(0, 3),
    "limits": st.lists(st.one_of(
        st.builds(lambda a, m: {"action": a, "max_per_visitor": m, "window_s": 3600.0},
                  st.sampled_from(IDS), st.integers(0, 2)),
        st.builds(lambda k, m: {"kind": k, "max_per_visitor": m, "window_s": 3600.0},
                  st.sampled_from(["banner", "incentive", "upsell"]), st.integers(0, 2))),
        max_size=3)})
contexts = st.fixed_dictionaries({
    "device": st.sampled_from(["mobile", "desktop", "tablet"]),
    "cart_value": st.floats(0, 300), "returning": st.booleans(),
    "page_type": st.sampled_from(["home", "category", "product", "cart", "checkout"])})


def expected_allowed(doc, requested, history, context, budget_exhausted):
    """Independent statement of the semantics: (allowed set or None, forced action or None)."""
    allowed = set(requested)
    cap_doc = doc.get("caps", {})
    cap_list = [{"covers": lambda a: a in COSTED, "max": cap_doc["incentives_per_visitor"]}] \
        if "incentives_per_visitor" in cap_doc else []
    for lim in cap_doc.get("limits", []):
        covers = ((lambda a, x=lim["action"]: a == x) if "action" in lim
                  else (lambda a, k=lim["kind"]: KIND[a] == k))
        cap_list.append({"covers": covers, "max": lim["max_per_visitor"]})
    for cap in cap_list:
        if sum(cap["covers"](a) for a in history) >= cap["max"]:
            allowed = {a for a in allowed if not cap["covers"](a)}
    if budget_exhausted:
        allowed -= COSTED
    for rule in doc.get("rules", []):
        ok = True
        for key, cond in rule["when"].items():
            v = context.get(key)
            if isinstance(cond, dict):
                (op, ref), = cond.items()
                ok &= {"lt": lambda: v < ref, "le": lambda: v <= ref, "gt": lambda: v > ref,
                       "ge": lambda: v >= ref, "in": lambda: v in ref}[op]()
            else:
                ok &= v == cond
        if not ok:
            continue
        then = rule["then"]
        if "force" in then:
            if then["force"] in allowed:
                return {then["force"]}, then["force"]
            continue
        allowed = allowed & set(then["only"]) if "only" in then else allowed - set(then["exclude"])
    if not allowed:
        return {"none"}, "none"
    return allowed, None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(rule_docs=rules, cap_doc=caps, history_contexts=st.lists(contexts, max_size=4),
       context=contexts, requested=st.lists(st.sampled_from(IDS), min_size=1, unique=True),
       exhausted=st.booleans())
def test_no_decision_violates_rules_caps_or_budget(tmp_path_factory, rule_docs, cap_doc,
                                                   history_contexts, context, requested,
                                                   exhausted):
    doc = shop_doc(holdout={"fraction": 0.0})
    doc["rules"], doc["caps"] = rule_docs, cap_doc
    doc["budget"] = {"daily_incentive_spend": 0.0 if exhausted else 1e9}
    try:
        config = parse_config(doc)
    except ConfigError as exc:  # a rule set that statically leaves nothing is refused at load
        assert "no action is left" in str(exc)
        return
    engine = Engine.open(config, tmp_path_factory.mktemp("g"), seed=0, clock=Clock())
    history = [engine.decide("visitor", c).action for c in history_contexts]
    d = engine.decide("visitor", context, requested)
    allowed, forced = expected_allowed(doc, requested, history, context, exhausted)
    assert d.action in allowed, (d, allowed)
    if forced is not None or len(allowed) == 1:
        assert d.probability == 1.0 and not d.randomized
    else:
        # the logged propensity is over the eligible set the learner saw
        stored = engine.store.decision(d.event_id)
        assert set(stored.eligible) == allowed
        mask = np.array([[a in allowed for a in engine.learner.action_ids]])
        x = engine.space.transform([context])
        p = engine.policy.probabilities(x, mask)[0, engine.learner.action_ids.index(d.action)]
        assert d.probability == pytest.approx(p, abs=1e-12)
    engine.close()


def guarded_shop(**extra):
    doc = shop_doc(holdout={"fraction": 0.0})
    doc.update(extra)
    return parse_config(doc)


def test_caps_survive_a_restart_and_expire(tmp_path):
    clock = Clock()
    config = guarded_shop(caps={"limits": [{"kind": "incentive", "max_per_visitor": 1,
                                            "window_s": 3600.0}]})
    engine = Engine.open(config, tmp_path, seed=0, clock=clock)
    first = engine.decide("v", {}, ["discount_10", "none"])
    while first.action != "discount_10":
        first = engine.decide("v2", {}, ["discount_10"])
        engine.close()
        engine = Engine.open(config, tmp_path, seed=0, clock=clock)
        first = engine.decide("v", {}, ["discount_10"])
    engine.close()
    engine = Engine.open(config, tmp_path, seed=0, clock=clock)
    for _ in range(20):
        assert engine.decide("v", {}, ["discount_10", "discount_5", "none"]).action == "none"
    clock.t += 3601  # the window passed: incentives are allowed again
    seen = {engine.decide("v", {}, ["discount_10", "discount_5"]).action for _ in range(1)}
    assert seen <= {"discount_10", "discount_5"}


def test_cap_counts_read_a_bounded_index_range_whatever_the_history(tmp_path):
    """A crawler reusing one id must not make decisions slower as its history grows: each
    cap's count is a search of the (visitor_hash, action, ts) index stopped at the cap's max."""
    config = guarded_shop(caps={"incentives_per_visitor": 2, "incentives_window_s": 604800.0,
                                "limits": [{"action": "discount_10", "max_per_visitor": 1,
                                            "window_s": 86400.0}]})
    engine = Engine.open(config, tmp_path, seed=0)
    query = engine.guardrails.caps.query
    params = query.params(["h1", "h2", "h3"], [0.0] * len(query.covered))
    plan = [row[3] for row in engine.store.db.execute("EXPLAIN QUERY PLAN " + query.sql(3),
                                                      params)]
    searches = [step for step in plan if "decisions_caps" in step]
    assert len(searches) == 2
    assert all("COVERING INDEX decisions_caps (visitor_hash=? AND action=? AND ts>?)"
               in step for step in searches), plan
    # a holdout visitor's would-have draws are counted from the partial index, the same way
    would_have = [step for step in plan if "decisions_would_have_caps" in step]
    assert len(would_have) == 2
    assert all("COVERING INDEX decisions_would_have_caps (visitor_hash=? AND "
               "would_have_action=? AND ts>?)" in step for step in would_have), plan
    assert len([step for step in plan if "decisions" in step]) == 4, plan
    # activated deferred decisions are counted from their own index, the same way
    shown = [step for step in plan if "activations" in step]
    assert len(shown) == 2
    assert all("COVERING INDEX activations_caps (visitor_hash=? AND action=? AND ts>?)"
               in step for step in shown), plan
    assert "LIMIT 2" in query.sql(1) and "LIMIT 1" in query.sql(1)
    # and the caps still hold over a long history of one id
    shown = [engine.decide("crawler", {}, ["none", "discount_10", "discount_5"]).action
             for _ in range(300)]
    # the weekly incentive cap is reached for sure: each incentive keeps a probability of at
    # least the floor (0.5% with 3 eligible) per draw while eligible, so 300 draws show two
    # of them
    assert shown.count("discount_10") <= 1 and sum(a in COSTED for a in shown) == 2
    engine.close()


def test_caps_in_one_batch_apply_to_each_visitor_alone(tmp_path):
    config = guarded_shop(caps={"limits": [{"action": "discount_10", "max_per_visitor": 1,
                                            "window_s": 3600.0}]})
    engine = Engine.open(config, tmp_path, seed=0)
    capped = [f"capped-{i}" for i in range(5)]
    for visitor in capped:  # only one action eligible: shown for sure
        assert engine.decide(visitor, {}, ["discount_10"]).action == "discount_10"
    fresh = [f"fresh-{i}" for i in range(5)]
    order = [v for pair in zip(capped, fresh) for v in pair]  # interleaved in the batch
    results = engine.decide_batch([(v, {}, ["discount_10"]) for v in order])
    actions = {v: r.action for v, r in zip(order, results)}
    assert all(actions[v] == "none" for v in capped)  # nothing left: the control, forced
    assert all(actions[v] == "discount_10" for v in fresh)
    engine.close()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Santiago", "Australia/Lord_Howe",
                                  "UTC"])
def test_budget_day_boundaries_follow_the_wall_clock(zone):
    """The cached [start, end) of the budget day agrees with a direct computation across two
    years of DST changes (including Lord Howe's half-hour shift)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bandit.core.guardrails import SpendTracker
    from bandit.domain.rules import Budget

    tz = ZoneInfo(zone)
    tracker = SpendTracker(None, Budget(100.0, zone))
    rng = np.random.default_rng(3)
    now = datetime(2026, 1, 1, tzinfo=tz).timestamp()
    for step in rng.uniform(0, 5400, 20_000):  # ~2 years in steps of up to 1.5 hours
        now += step
        midnight = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
        assert tracker.day_start(now) == midnight.timestamp()


def test_budget_survives_a_restart_and_resets_next_day(tmp_path):
    clock = Clock(1_700_000_000.0)  # 2023-11-14 22:13 UTC
    config = guarded_shop(budget={"daily_incentive_spend": 15.0, "timezone": "UTC"})
    engine = Engine.open(config, tmp_path, seed=0, clock=clock)
    d = engine.decide("v", {}, ["discount_10"])  # forced: one eligible action
    engine.record_outcome(d.event_id, True, 200.0)  # costs 20 >= 15
    assert engine.guardrails.spend.spent(clock.t) == pytest.approx(20.0)
    engine.close()
    engine = Engine.open(config, tmp_path, seed=0, clock=clock)
    for _ in range(30):
        assert engine.decide("x", {}).action not in COSTED
    clock.t += 2 * 3600  # past midnight UTC: a new budget day
    actions = {engine.decide(f"y{i}", {}).action for i in range(300)}
    assert actions & COSTED


@pytest.mark.parametrize("rules, message", [
    ([{"when": {}, "then": {"only": []}}], "no action is left"),
    ([{"when": {}, "then": {"exclude": IDS}}], "no action is left"),
    ([{"when": {"cart_value": {"gt": 1}}, "then": {"only": ["teleport"]}}], "unknown action"),
    ([{"when": {"shoe_size": 3}, "then": {"only": ["none"]}}], "not a declared context"),
    ([{"when": {"cart_value": {"about": 3}}, "then": {"only": ["none"]}}], "unknown operator"),
    ([{"when": {}, "then": {"only": ["none"], "force": "none"}}], "exactly one of"),
])
def test_bad_rules_are_refused_at_load(rules, message):
    with pytest.raises(ConfigError, match=message):
        guarded_shop(rules=rules)


def test_forced_decisions_are_logged_not_randomized_and_not_learned(tmp_path):
    config = guarded_shop(rules=[{"name": "checkout gets free shipping",
                                  "when": {"page_type": "checkout"},
                                  "then": {"force": "free_shipping"}}])
    engine = Engine.open(config, tmp_path, seed=0, clock=Clock())
    d = engine.decide("v", {"page_type": "checkout"})
    assert (d.action, d.probability, d.randomized) == ("free_shipping", 1.0, False)
    engine.record_outcome(d.event_id, True, 50.0)
    engine.flush()
    assert engine.update_count == 0


def test_cli_report_with_budget_and_plot(tmp_path):
    import subprocess
    import sys

    from server_helpers import config_file

    cfg = config_file(tmp_path, holdout={"fraction": 0.5},
                      budget={"daily_incentive_spend": 100.0, "timezone": "Europe/Berlin"})
    clock = Clock()
    engine = Engine.open(cfg, tmp_path / "data", seed=0, clock=clock)
    for i in range(200):
        d = engine.decide(f"v{i}", {"cart_value": 30.0})
        if i % 5 == 0:
            engine.record_outcome(d.event_id, True, 40.0)
        clock.t += 60
    engine.close()
    proc = subprocess.run([sys.executable, "-m", "bandit.cli", "report", "--config", str(cfg),
                           "--data-dir", str(tmp_path / "data"), "--plot",
                           str(tmp_path / "r.png")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "uplift of treatment over holdout" in proc.stdout
    assert "incentive spend today" in proc.stdout
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_example_shop_serves_decisions_within_its_rules(tmp_path):
    from pathlib import Path

    from bandit import load_config

    config = load_config(Path(__file__).parents[3] / "examples" / "shop.toml")
    engine = Engine.open(config, tmp_path, seed=0, clock=Clock())
    for i in range(50):
        d = engine.decide(f"v{i}", {"cart_value": 150.0, "region": "abroad"})
        assert d.action in ("free_shipping", "none")
        d = engine.decide(f"w{i}", {"page_type": "checkout"})
        assert d.action != "banner_urgency"
    engine.close()
