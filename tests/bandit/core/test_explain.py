"""A reason per decision (``"explain": true``): closed-form checks for the linear policies,
the unavailable cases, and the HTTP shape (off by default, never stored)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop
from server_helpers import Server, config_file

from bandit import Engine
from bandit.config.shop import load_config
from bandit.core.explain import source_of

CTX = {"device": "mobile", "traffic_source": "paid_search", "cart_value": 120.0, "hour": 21,
       "page_type": "cart"}


def trained(tmp_path, spec: str, holdout: float = 0.0) -> Engine:
    engine = Engine.open(shop(policy={"spec": spec}, holdout={"fraction": holdout}), tmp_path,
                         seed=0, clock=Clock())
    rng = np.random.default_rng(1)
    for i in range(400):
        ctx = {"device": str(rng.choice(["mobile", "desktop"])),
               "cart_value": float(rng.uniform(0, 200)), "hour": int(rng.integers(24))}
        d = engine.decide(f"v{i}", ctx)
        if rng.random() < 0.3:  # bigger carts buy more
            engine.record_outcome(d.event_id, True, float(ctx["cart_value"]))
    engine.flush()
    return engine


@pytest.mark.parametrize("spec", ["linucb", "egreedy", "lints"])
def test_contributions_add_up_to_the_lead_over_the_runner_up(tmp_path, spec):
    engine = trained(tmp_path, spec)
    policy, space = engine.policy, engine.space
    rng = np.random.default_rng(2)
    for k in range(20):
        ctx = {**CTX, "cart_value": float(rng.uniform(0, 200)), "hour": int(rng.integers(24))}
        d = engine.decide(f"w{k}", ctx, explain=True)
        assert d.reasons is not None and len(d.reasons) <= 5
        x = np.array(space.normalize_row(ctx)[0])
        a, b = engine.learner.index[d.action], engine.learner.index[d.reasons_versus]
        theta = policy.ridge.theta
        # the score each policy ranks by: UCB for linucb, the ridge mean for the others
        score = policy.scores(x[None])[0] if spec == "linucb" else x @ theta.T
        total = sum(r.contribution for r in d.reasons)
        assert total == pytest.approx(score[a] - score[b], rel=1e-9, abs=1e-9)
        # the runner-up is the best other eligible action
        assert score[b] == max(score[i] for i in range(len(score)) if i != a)
        # each named feature's share is x_j (theta_a - theta_b) over its own columns
        for r in d.reasons:
            if r.feature.startswith("(") and r.feature != "(baseline)":
                continue
            source = "bias" if r.feature == "(baseline)" else r.feature
            cols = [j for j, name in enumerate(space.names) if source_of(name) == source]
            assert r.contribution == pytest.approx(float(x[cols] @ (theta[a] - theta[b])[cols]),
                                                   rel=1e-9, abs=1e-12)
        exploration = [r for r in d.reasons if r.feature == "(exploration)"]
        assert bool(exploration) == (spec == "linucb")
        named = [r for r in d.reasons if not r.feature.startswith("(")]
        assert [abs(r.contribution) for r in named] == sorted(
            (abs(r.contribution) for r in named), reverse=True)
    by_name = {r.feature: r.value for r in d.reasons}
    if "device" in by_name:  # the value is what the model saw
        assert by_name["device"] == "mobile"
    engine.close()


def test_without_an_additive_score_or_a_runner_up_reasons_say_why(tmp_path):
    engine = trained(tmp_path / "u", "uniform")
    d = engine.decide("x", CTX, explain=True)
    assert d.reasons is None and "uniform" in d.reasons_unavailable
    engine.close()
    engine = trained(tmp_path / "l", "linucb")
    d = engine.decide("y", CTX, ["none"], explain=True)
    assert d.reasons is None and "only one action" in d.reasons_unavailable
    plain = engine.decide("z", CTX)
    assert (plain.reasons, plain.reasons_unavailable) == (None, None)  # not asked: nothing
    engine.close()
    fresh = Engine.open(shop(holdout={"fraction": 0.0}), tmp_path / "f", seed=0)
    d = fresh.decide("n", CTX, explain=True)  # linucb tries every action first
    assert d.reasons is None and "warm-up" in d.reasons_unavailable
    fresh.close()
    fresh = Engine.open(shop(holdout={"fraction": 0.0}, policy={"spec": "linucb:warmup=0"}),
                        tmp_path / "g", seed=0)
    d = fresh.decide("n", CTX, explain=True)  # nothing learned: every score ties
    assert d.reasons is None and "tie" in d.reasons_unavailable
    fresh.close()


def test_over_http_reasons_only_when_asked_and_never_stored(tmp_path):
    cfg = config_file(tmp_path, holdout={"fraction": 0.3})
    actions = set(load_config(cfg).action_ids)
    srv = Server(tmp_path / "data", cfg)
    try:
        for i in range(200):  # some conversions, so that the model tells actions apart
            _, d = srv.post("/v1/decide", {"visitor_id": f"v{i}", "context": {
                **CTX, "cart_value": float(i)}})
            if i % 4 == 0:
                srv.post("/v1/outcome", {"event_id": d["event_id"], "converted": True,
                                         "order_value": 20.0 + i})
        status, plain = srv.post("/v1/decide", {"visitor_id": "p", "context": CTX})
        assert status == 200 and sorted(plain) == ["action", "event_id", "group",
                                                   "model_version", "placement",
                                                   "probability"]
        # the model's scores are for callers with a secret: a page asking gets 403
        status, body = srv.post("/v1/decide", {"visitor_id": "page", "context": CTX,
                                               "explain": True})
        assert status == 403 and body["error"]["field"] == "explain"
        read = {"Authorization": f"Bearer {srv.read_token}"}  # an analyst's read secret
        seen = {"treatment": 0, "holdout": 0}
        for i in range(60):
            status, d = srv.post("/v1/decide", {"visitor_id": f"e{i}", "context": CTX,
                                                "explain": True}, read)
            assert status == 200
            seen[d["group"]] += 1
            if d["group"] == "holdout":
                assert d["reasons"] is None and "holdout" in d["reasons_unavailable"]
            else:
                assert d["reasons_versus"] in actions and d["reasons_versus"] != d["action"]
                assert 1 <= len(d["reasons"]) <= 5
                assert all(set(r) == {"feature", "value", "contribution"} for r in d["reasons"])
        assert min(seen.values()) > 0
        status, bad = srv.post("/v1/decide", {"visitor_id": "b", "explain": "yes"})
        assert status == 400 and bad["error"]["field"] == "explain"
    finally:
        srv.stop()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("events.sqlite3*"))
    assert b"contribution" not in raw and b"(exploration)" not in raw
