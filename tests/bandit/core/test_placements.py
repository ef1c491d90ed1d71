"""Placements: decision points with their own actions and models, orders by visitor id,
deferred activation, redeemed incentives, caps across placements (docs/architecture.md,
"Placements")."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import CTX, PLACEMENTS, Clock, placement_shop, shop

import policies
from bandit import Engine
from bandit.core.joiner import Closing
from bandit.domain.errors import (
    CartwheelError,
    InactiveEventError,
    UnknownPlacementError,
    WindowClosedError,
)
from bandit.domain.privacy import hash_visitor

T0 = 1_700_000_000.0


def _open(tmp_path, clock, config=None, **sections):
    sections.setdefault("holdout", {"fraction": 0.0})
    return Engine.open(config or placement_shop(**sections), tmp_path / "data", seed=0,
                       clock=clock)


def _closed(engine, event_id):
    return engine.store.db.execute("SELECT reason, learned, cost, share, order_value FROM "
                                   "closed WHERE event_id = ?", (event_id,)).fetchone()


def test_each_placement_decides_among_its_actions_with_its_own_model(tmp_path):
    clock = Clock(T0)
    engine = _open(tmp_path, clock)
    by_id = {p["id"]: set(p["actions"]) for p in PLACEMENTS}
    seen = {pid: set() for pid in by_id}
    for i in range(300):
        for pid in ("product", "cart"):
            d = engine.decide(f"v{i}", CTX, placement=pid)
            assert d.placement == pid and d.action in by_id[pid] and not d.deferred
            seen[pid].add(d.action)
        d = engine.decide(f"v{i}", CTX, placement="exit")
        assert d.placement == "exit" and d.action in by_id["exit"] and d.deferred
        seen["exit"].add(d.action)
        clock.t += 1
    assert seen == by_id  # every action of each placement was tried, none of another's
    engine.flush()
    # additive models learn each immediate decision at once; the deferred ones not yet
    counts = {pid: k.learner.policy.n_updates for pid, k in engine.keepers.items()}
    assert counts == {"product": 300, "cart": 300, "exit": 0}
    assert {pid: k.learner.action_ids for pid, k in engine.keepers.items()} == {
        p["id"]: p["actions"] for p in PLACEMENTS}
    stored = dict(engine.store.db.execute(
        "SELECT placement, COUNT(*) FROM decisions GROUP BY placement"))
    assert stored == {"product": 300, "cart": 300, "exit": 300}
    engine.close()


def test_a_request_names_one_of_the_shops_placements(tmp_path):
    engine = _open(tmp_path, Clock(T0))
    with pytest.raises(UnknownPlacementError, match=r"placement is required: this shop decides "
                       r"at \['product', 'cart', 'exit'\]") as err:
        engine.decide("v", CTX)
    assert err.value.field == "placement"
    with pytest.raises(UnknownPlacementError, match=r"unknown placement 'checkout'; this "
                       r"shop's placements: \['product', 'cart', 'exit'\]"):
        engine.decide("v", CTX, placement="checkout")
    with pytest.raises(CartwheelError, match="'discount_10' is not decided at placement "
                       "'product'") as err:
        engine.decide("v", CTX, ["none", "discount_10"], placement="product")
    assert err.value.field == "eligible"
    assert engine.store.count("decisions") == 0
    engine.close()
    # a shop without placements: one implicit placement, "default"
    plain = Engine.open(shop(holdout={"fraction": 0.0}), tmp_path / "plain", seed=0)
    assert plain.decide("v", CTX).placement == "default"
    assert plain.decide("v", CTX, placement="default").placement == "default"
    with pytest.raises(UnknownPlacementError, match=r"this shop's placements: \['default'\]"):
        plain.decide("v", CTX, placement="cart")
    plain.close()


def _visit(engine, visitor, clock, *, show_exit=True):
    """One visit: product page, cart, exit pop-up (activated when shown)."""
    out = [engine.decide(visitor, CTX, placement=p) for p in ("product", "cart", "exit")]
    if show_exit:
        assert engine.activate(out[2].event_id) == "activated"
    clock.t += 10
    return out


def test_an_order_by_visitor_closes_exactly_that_visitors_open_shown_decisions(tmp_path):
    clock = Clock(T0)
    engine = _open(tmp_path, clock)
    window = engine.config.attribution.window_s
    old = engine.decide("anna", CTX, placement="cart")  # will be past its window
    clock.t += window + 1
    early = engine.decide("anna", CTX, placement="product")
    engine.record_outcome(early.event_id, True, 20.0)  # closed before the order: not again
    visit = _visit(engine, "anna", clock)
    hidden = engine.decide("anna", CTX, placement="exit")  # never shown
    other = _visit(engine, "bert", clock)
    before = {e: _closed(engine, e) for e in (old.event_id, early.event_id)}
    assert engine.record_order("anna", True, 90.0, "order-1") == ("recorded", 3)
    for d in visit:
        reason, learned, _, share, value = _closed(engine, d.event_id)
        assert (reason, learned, value) == ("converted", 1, 90.0)
        assert share == pytest.approx(1 / 3)
    assert _closed(engine, hidden.event_id) is None  # deferred and never activated
    assert all(_closed(engine, d.event_id) is None for d in other)  # another visitor's
    assert {e: _closed(engine, e) for e in before} == before
    assert _closed(engine, old.event_id) is None  # open, but outside its window
    assert engine.store.count("closed") == 4  # early + the three: each closed once
    # the same order again, by visitor or by one of its events: a duplicate
    assert engine.record_order("anna", True, 90.0, "order-1") == ("duplicate", 0)
    assert engine.record_outcome(other[0].event_id, True, 90.0, "order-1") == "duplicate"
    # nothing open: unattributed, recorded (so a retry never attributes late)
    assert engine.record_order("carl", True, 30.0, "order-2") == ("unattributed", 0)
    _visit(engine, "carl", clock)
    assert engine.record_order("carl", True, 30.0, "order-2") == ("duplicate", 0)
    assert engine.store.count("orders") == 2
    # a deferred decision's outcome by event id needs its activation first
    with pytest.raises(InactiveEventError, match="never activated"):
        engine.record_outcome(hidden.event_id, True, 10.0)
    engine.close()


def test_each_decision_an_order_closes_is_learned_once_by_its_own_placements_model(tmp_path):
    clock = Clock(T0)
    engine = _open(tmp_path, clock)
    staged: list[Closing] = []
    original = engine.joiner.learn
    engine.joiner.learn = lambda closings: (staged.extend(closings), original(closings))
    visit = _visit(engine, "anna", clock)
    engine.record_order("anna", True, 90.0)
    assert sorted(c.decision.event_id for c in staged) == sorted(d.event_id for d in visit)
    engine.flush()
    # the deferred exit decision is learned by one update at close; the others were learned
    # provisionally at decision time and relabeled now
    exit_policy = engine.keepers["exit"].learner.policy
    assert (exit_policy.n_updates, exit_policy.n_relabels) == (1, 0)
    for pid in ("product", "cart"):
        policy = engine.keepers[pid].learner.policy
        assert (policy.n_updates, policy.n_relabels) == (1, 1), pid
    engine.close()


def test_the_report_counts_an_order_once_per_visitor(tmp_path):
    clock = Clock(T0)
    engine = _open(tmp_path, clock)
    for v in ("anna", "bert"):
        _visit(engine, v, clock)
    engine.record_order("anna", True, 90.0)
    clock.t += engine.config.attribution.window_s + 1
    engine.expire()  # per-action KPIs count decisions whose outcome is final
    totals = dict(engine.store.db.execute("SELECT visitor_hash, r FROM visitor_totals"))
    assert totals[hash_visitor("anna", engine.salt)] == pytest.approx(90.0)
    from bandit.insight.report import build_report

    report = build_report(engine.store, engine.config.objective.margin,
                          placements=engine.config.placement_ids)
    group = report.groups["treatment"]
    assert group["conversions"] == 1 and group["revenue_per_visitor"] == pytest.approx(45.0)
    # per placement, the action each visitor was shown converted once
    for pid in ("product", "cart", "exit"):
        kpis = report.placements[pid]["actions"]
        assert sum(k["conversions"] for k in kpis.values()) == 1, pid
        assert sum(k["decisions"] for k in kpis.values()) == 2, pid
    engine.close()


def test_every_configured_placement_is_in_the_report_before_any_data(tmp_path):
    engine = _open(tmp_path, Clock(T0))
    from bandit.insight.report import build_report

    report = build_report(engine.store, 0.35, placements=engine.config.placement_ids)
    assert report.placements == {"product": {"actions": {}}, "cart": {"actions": {}},
                                 "exit": {"actions": {}}}
    engine.close()


def test_caps_hold_across_placements_counting_deferred_decisions_once_shown(tmp_path):
    """Each visitor is decided at the cart (incentives only) and the exit pop-up (an
    incentive only), in a random order, and the pop-up is shown (activated) or not; at most
    one incentive per visitor is ever shown, whatever the order."""
    clock = Clock(T0)
    engine = _open(tmp_path, clock, caps={"incentives_per_visitor": 1,
                                          "incentives_window_s": 86400.0})
    rng = np.random.default_rng(7)
    shown: dict[str, int] = {}
    outcomes = {"activated": 0, "capped": 0}
    for i in range(200):
        v = f"v{i}"
        # the pop-up is decided before or after the cart, and shown (activated) right away,
        # later, or never
        steps = [["exit", "show", "cart"], ["exit", "cart", "show"], ["cart", "exit", "show"],
                 ["exit", "cart"]][int(rng.integers(4))]
        pending = None
        for step in steps:
            if step == "cart":
                d = engine.decide(v, CTX, ["free_shipping", "discount_5", "discount_10"],
                                  placement="cart")
                shown[v] = shown.get(v, 0) + (d.action != "none")
            elif step == "exit":
                pending = engine.decide(v, CTX, ["discount_5"], placement="exit")
                # the control when a cart incentive was shown already
                assert pending.action == ("none" if shown.get(v) else "discount_5")
                assert pending.deferred
            elif pending.action != "none":
                status = engine.activate(pending.event_id)
                outcomes[status] += 1
                shown[v] = shown.get(v, 0) + (status == "activated")
            clock.t += 1
    assert max(shown.values()) == 1
    # both ways happened: pop-ups shown before the cart (the cart then gets the control), and
    # pop-ups decided before a cart incentive but shown after it (refused: capped)
    assert outcomes["activated"] > 20 and outcomes["capped"] > 20
    # a pop-up decided but not shown (yet) did not stop the cart's incentive
    assert sum(shown.values()) == 200
    engine.close()


def test_only_redeemed_incentives_are_charged(tmp_path):
    clock = Clock(T0)
    engine = _open(tmp_path, clock, budget={"daily_incentive_spend": 1000.0})
    cart = engine.decide("anna", CTX, ["discount_10"], placement="cart")
    shipping = engine.decide("anna", CTX, ["discount_5"], placement="exit", activate=True)
    assert (cart.action, shipping.action, shipping.deferred) == ("discount_10", "discount_5",
                                                                 False)
    engine.record_order("anna", True, 200.0, redeemed=["discount_5"])
    assert _closed(engine, cart.event_id)[2] == 0.0  # shown, not used: not charged
    assert _closed(engine, shipping.event_id)[2] == pytest.approx(10.0)
    assert engine.guardrails.spend.spent(clock.t) == pytest.approx(10.0)
    # without redeemed, every attributed incentive is charged (as by event id)
    cart2 = engine.decide("bert", CTX, ["discount_10"], placement="cart")
    engine.record_order("bert", True, 100.0)
    assert _closed(engine, cart2.event_id)[2] == pytest.approx(10.0)
    assert engine.guardrails.spend.spent(clock.t) == pytest.approx(20.0)
    with pytest.raises(CartwheelError, match="redeemed: unknown action 'coupon'"):
        engine.record_order("carl", True, 10.0, redeemed=["coupon"])
    engine.close()


def test_a_deferred_decision_never_activated_is_never_learned(tmp_path):
    """The exit model equals a model that learned the activated decisions alone."""
    clock = Clock(T0)
    engine = _open(tmp_path, clock)
    rng = np.random.default_rng(3)
    learned = []
    for i in range(400):
        ctx = {**CTX, "cart_value": float(rng.uniform(0, 300)), "hour": int(rng.integers(24))}
        d = engine.decide(f"v{i}", ctx, placement="exit")
        if rng.random() < 0.4:
            engine.activate(d.event_id)
            bought = bool(rng.random() < 0.3)
            value = float(rng.uniform(20, 200)) if bought else 0.0
            if bought:
                engine.record_order(f"v{i}", True, value)
            learned.append((ctx, d, bought, value))
        elif rng.random() < 0.3:  # bought without seeing it: credited to nothing learned
            assert engine.record_order(f"v{i}", True, 50.0) == ("unattributed", 0)
        clock.t += 30
    clock.t += engine.config.attribution.window_s + 1
    engine.expire()
    engine.flush()
    reasons = dict(engine.store.db.execute("SELECT reason, COUNT(*) FROM closed GROUP BY reason"))
    assert reasons["inactive"] == 400 - len(learned)
    keeper = engine.keepers["exit"]
    expected = policies.make("linucb", n_actions=3, n_features=engine.space.dim, seed=0)
    objective = engine.config.objective
    costs = {a.id: a for a in engine.config.actions}
    X = engine.space.transform([c for c, *_ in learned])
    actions = np.array([keeper.learner.index[d.action] for _, d, *_ in learned])
    rewards = np.array([objective.reward(b, v, costs[d.action].incentive_cost(v) if b else 0.0)
                        for _, d, b, v in learned], dtype=float)
    expected.update(X, actions, rewards, np.array([d.probability for _, d, *_ in learned]),
                    np.ones((len(learned), 3), dtype=bool))
    got, want = keeper.learner.policy.get_state(), expected.get_state()
    assert len(learned) > 100 and got["policy.ridge.counts"].sum() == len(learned)
    for key in ("policy.ridge.A", "policy.ridge.b", "policy.ridge.counts"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-9)
    engine.close()


def test_activation_answers(tmp_path):
    clock = Clock(T0)
    engine = _open(tmp_path, clock)
    d = engine.decide("anna", CTX, placement="exit")
    assert engine.activate(d.event_id) == "activated"
    assert engine.activate(d.event_id) == "duplicate"
    now = engine.decide("anna", CTX, placement="cart")
    assert engine.activate(now.event_id) == "duplicate"  # immediate: active already
    late = engine.decide("bert", CTX, placement="exit")
    held = engine.decide("bert", CTX, placement="cart", activate=False)
    assert held.deferred  # a request can defer any placement's decision
    with pytest.raises(CartwheelError, match="unknown event"):
        engine.activate("f" * 32)
    clock.t += engine.config.attribution.window_s + 1
    with pytest.raises(WindowClosedError, match="closes unlearned"):
        engine.activate(late.event_id)
    engine.expire()
    assert _closed(engine, late.event_id)[:2] == ("inactive", 0)
    assert _closed(engine, held.event_id)[:2] == ("inactive", 0)
    assert _closed(engine, d.event_id)[:2] == ("expired", 1)
    engine.close()


def test_a_restart_keeps_every_placements_model_and_adding_one_keeps_the_others(tmp_path):
    clock = Clock(T0)
    engine = _open(tmp_path, clock)
    rng = np.random.default_rng(1)
    for i in range(120):
        _visit(engine, f"v{i}", clock, show_exit=bool(rng.random() < 0.5))
        if rng.random() < 0.3:
            engine.record_order(f"v{i}", True, float(rng.uniform(10, 100)))
    engine.flush()
    states = {pid: k.learner.policy.get_state() for pid, k in engine.keepers.items()}
    engine.close()
    assert sorted(p.name for p in (tmp_path / "data" / "snapshots").iterdir()
                  if p.is_dir()) == ["placement-cart", "placement-exit", "placement-product"]

    def same(engine, pids):
        for pid in pids:
            got = engine.keepers[pid].learner.policy.get_state()
            for key, value in states[pid].items():
                np.testing.assert_array_equal(got[key], value, err_msg=f"{pid} {key}")

    again = _open(tmp_path, clock)
    same(again, states)
    again.close()
    grown = placement_shop(holdout={"fraction": 0.0}, placements=[
        *PLACEMENTS[:2], {"id": "home", "actions": ["none", "banner_brand", "banner_urgency"]}])
    more = _open(tmp_path, clock, config=grown)  # exit removed, home added
    same(more, ["product", "cart"])
    assert more.keepers["home"].learner.policy.n_updates == 0
    assert more.decide("v1", CTX, placement="home").placement == "home"
    more.close()
