"""The promotion gate over the real server: its standing in the report and /metrics, a
person's promotion through ``POST /v1/policies`` (the write token only), kept over a
restart."""

from __future__ import annotations

import re

from engine_helpers import CTX
from server_helpers import Server, config_file

GATED = {"spec": "linucb", "challengers": ["uniform"], "promote": {"share": 0.25}}


def metric(srv, name: str, **labels) -> float:
    text = srv.request("GET", "/metrics")[1]
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == inner:
            return float(m.group(2))
    raise AssertionError(f"{name}{{{inner}}} not in /metrics")


def test_gate_standing_and_a_persons_promotion_over_http(tmp_path):
    config = config_file(tmp_path, holdout={"fraction": 0.0}, policy=GATED)
    srv = Server(tmp_path / "data", config)
    try:
        for i in range(40):
            assert srv.post("/v1/decide", {"visitor_id": f"v{i}", "context": CTX})[0] == 200
        status, report = srv.request("GET", "/v1/report")
        gate = report["policy_gate"]["default"]
        assert gate["champion"] == "linucb" and gate["share"] == 0.25
        assert [p["role"] for p in gate["policies"]] == ["champion", "challenger"]
        assert metric(srv, "cartwheel_gate_share", placement="default", policy="uniform",
                      role="challenger") == 0.25
        assert metric(srv, "cartwheel_gate_changes_total", placement="default",
                      kind="promotions") == 0.0
        # a page (no token) may not promote; a typo is refused with the gate's policies
        body = {"change": "promote", "spec": "uniform"}
        assert srv.post("/v1/policies", body)[0] == 401
        auth = {"Authorization": f"Bearer {srv.token}"}
        status, answer = srv.post("/v1/policies", {"change": "promote", "spec": "unifrom"},
                                  auth)
        assert status == 400 and "linucb" in answer["error"]["message"]
        status, answer = srv.post("/v1/policies", {"change": "promote", "spec": ""}, auth)
        assert status == 400 and answer["error"]["field"] == "spec", answer
        status, view = srv.post("/v1/policies", body, auth)
        assert status == 200 and view["champion"] == "uniform"
        assert view["promotions"][0]["by"] == "person"
        assert metric(srv, "cartwheel_gate_changes_total", placement="default",
                      kind="promotions") == 1.0
        assert "uniform promoted over linucb" in srv.log_text()
    finally:
        assert srv.stop() == 0
    srv = Server(tmp_path / "data", config)
    try:  # the promotion was snapshotted: the restarted server serves the new champion
        assert srv.request("GET", "/v1/report")[1]["policy_gate"]["default"][
            "champion"] == "uniform"
    finally:
        assert srv.stop() == 0
