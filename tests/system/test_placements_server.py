"""Placements over a real socket: a shop with three decision points serves, learns and reports
per placement; orders by visitor id, activation and their errors answer as documented; a
SIGKILL loses none of it."""

from __future__ import annotations

import copy
import json
import signal
import time

import pytest
from engine_helpers import CTX, PLACEMENTS
from server_helpers import Server, config_file

ORIGIN = "https://shop.example"


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("placements")
    # a short window: the per-action KPIs count decisions once their outcome is final
    return config_file(tmp, placements=copy.deepcopy(PLACEMENTS), holdout={"fraction": 0.0},
                       server={"token": "s3cret", "allowed_origins": [ORIGIN]},
                       attribution={"window_s": 3.0})


def _visit(srv, visitor):
    """A page load: product and cart decided, the exit pop-up decided and shown."""
    out = {}
    for placement in ("product", "cart", "exit"):
        status, d = srv.post("/v1/decide", {"visitor_id": visitor, "context": CTX,
                                            "placement": placement})
        assert status == 200 and d["placement"] == placement, d
        assert d.get("deferred", False) == (placement == "exit")
        out[placement] = d
    status, a = srv.post("/v1/activate", {"event_id": out["exit"]["event_id"]})
    assert (status, a) == (200, {"status": "activated"})
    return out


def test_a_shop_with_three_placements_serves_learns_and_reports_per_placement(tmp_path,
                                                                             shop_file):
    srv = Server(tmp_path / "data", shop_file)
    try:
        allowed = {p["id"]: set(p["actions"]) for p in PLACEMENTS}
        for i in range(40):
            visit = _visit(srv, f"v{i}")
            assert all(d["action"] in allowed[p] for p, d in visit.items())
            if i % 2 == 0:
                status, o = srv.post("/v1/outcome", {"visitor_id": f"v{i}", "converted": True,
                                                     "order_value": 80.0,
                                                     "outcome_id": f"order-{i}"})
                assert (status, o) == (200, {"status": "recorded", "events": 3})
        status, o = srv.post("/v1/outcome", {"visitor_id": "v0", "converted": True,
                                             "order_value": 80.0, "outcome_id": "order-0"})
        assert (status, o) == (200, {"status": "duplicate"})
        status, o = srv.post("/v1/outcome", {"visitor_id": "nobody", "converted": True,
                                             "order_value": 10.0})
        assert (status, o) == (200, {"status": "unattributed", "events": 0})
        deadline = time.monotonic() + 30
        while srv.request("GET", "/healthz")[1]["pending_events"]:  # every window passes
            assert time.monotonic() < deadline, "events did not expire"
            time.sleep(0.3)
        time.sleep(1.0)  # the expiry pass after the last close moves the final watermark
        status, rep = srv.request("GET", "/v1/report")
        assert status == 200 and sorted(rep["placements"]) == ["cart", "exit", "product"]
        for pid, part in rep["placements"].items():
            assert sum(k["decisions"] for k in part["actions"].values()) == 40, pid
            assert sum(k["conversions"] for k in part["actions"].values()) == 20, pid
        assert rep["groups"]["treatment"]["conversions"] == 20  # once per visitor's order
        status, health = srv.request("GET", "/healthz")
        learned = health["update_count"]
        assert learned >= 80  # product and cart rows at once; exit ones as they close
        _, metrics = srv.request("GET", "/metrics")
        assert 'cartwheel_outcomes_total{status="unattributed"} 1.0' in metrics
        assert 'cartwheel_activations_total{status="activated"} 40.0' in metrics
        assert 'cartwheel_decisions_total{action="none",group="treatment",placement="exit"}' \
               in metrics
        # SIGKILL: everything acknowledged survives, and the models are rebuilt from it
        srv.stop(signal.SIGKILL)
        again = Server(tmp_path / "data", shop_file)
        try:
            status, rep2 = again.request("GET", "/v1/report")
            assert rep2["placements"] == rep["placements"]
            assert again.request("GET", "/healthz")[1]["update_count"] == learned
            status, o = again.post("/v1/outcome", {"visitor_id": "v2", "converted": True,
                                                   "order_value": 80.0,
                                                   "outcome_id": "order-2"})
            assert (status, o) == (200, {"status": "duplicate"})
        finally:
            assert again.stop() == 0
    finally:
        if srv.proc.poll() is None:
            srv.stop()


def test_placement_order_and_activation_errors(tmp_path, shop_file):
    srv = Server(tmp_path / "data", shop_file)
    try:
        status, body = srv.post("/v1/decide", {"visitor_id": "v", "context": CTX})
        assert status == 400 and body["error"]["field"] == "placement"
        assert "['product', 'cart', 'exit']" in body["error"]["message"]
        status, body = srv.post("/v1/decide", {"visitor_id": "v", "context": CTX,
                                               "placement": "home"})
        assert status == 400 and body["error"]["code"] == "unknown_placement"
        visit = _visit(srv, "anna")
        for bad, field in (({"converted": True}, "visitor_id"),
                           ({"converted": True, "event_id": visit["cart"]["event_id"],
                             "visitor_id": "anna"}, "event_id"),
                           ({"converted": True, "visitor_id": "anna",
                             "redeemed": ["coupon"]}, "redeemed"),
                           ({"converted": True, "visitor_id": "anna@example.com"},
                            "visitor_id"),
                           ({"converted": True, "visitor_id": "anna", "redeemed": "none"},
                            "redeemed")):
            status, body = srv.post("/v1/outcome", bad)
            assert status == 400 and body["error"]["field"] == field, (bad, body)
        status, body = srv.post("/v1/outcome", {"visitor_id": "anna", "converted": True},
                                {"Content-Type": "application/json"})  # no token
        assert status == 401
        status, body = srv.post("/v1/activate", {"event_id": "f" * 32})
        assert status == 404 and body["error"]["code"] == "unknown_event"
        status, body = srv.post("/v1/activate", {"event_id": visit["exit"]["event_id"],
                                                 "extra": 1})
        assert status == 400
        status, a = srv.post("/v1/activate", {"event_id": visit["exit"]["event_id"]})
        assert (status, a) == (200, {"status": "duplicate"})
        # activation is a page's call: CORS as decide
        srv.conn.request("OPTIONS", "/v1/activate", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        resp = srv.conn.getresponse()
        resp.read()
        assert resp.status == 204 and resp.getheader("Access-Control-Allow-Origin") == ORIGIN
        srv.conn.request("POST", "/v1/activate", body=json.dumps(
            {"event_id": visit["exit"]["event_id"]}), headers={
            "Origin": ORIGIN, "Content-Type": "application/json"})
        resp = srv.conn.getresponse()
        resp.read()
        assert resp.status == 200 and resp.getheader("Access-Control-Allow-Origin") == ORIGIN
        # nothing of the refused requests was stored
        status, rep = srv.request("GET", "/v1/report")
        assert sum(g["decisions"] for g in rep["groups"].values()) == 3
    finally:
        assert srv.stop() == 0
