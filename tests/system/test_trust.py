"""Trusted and untrusted callers over a real socket: the shop's token lifts a decide's limits,
pages are held to a per-address limit (X-Forwarded-For believed from trusted proxies only), and
a shop with signed requests takes the visitor id and its trusted context fields only from a
token its backend signed (docs/integration.md, "Trusted and untrusted callers")."""

from __future__ import annotations

import json
import sqlite3

import pytest
from server_helpers import Server, config_file

from bandit.http.trust import sign_visitor

TOKEN = "a-shop-token-of-32-characters-xx"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CTX = {"device": "mobile", "cart_value": 30.0}


def test_pages_are_held_to_a_per_address_limit_and_the_backend_is_not(tmp_path):
    srv = Server(tmp_path / "data", config_file(tmp_path, server={
        "token": TOKEN, "address_rate": 0.5, "address_burst": 5,
        "trusted_proxies": ["10.0.0.7"]}))
    try:
        answers = [srv.post("/v1/decide", {"visitor_id": f"v{i}", "context": CTX})[0]
                   for i in range(8)]
        assert answers[:5] == [200] * 5 and set(answers[5:]) == {429}
        status, headers, body = srv.exchange("POST", "/v1/decide", {
            "visitor_id": "w", "context": CTX}, {"Content-Type": "application/json"})
        assert status == 429 and body["error"]["field"] == "address"
        assert int(headers["Retry-After"]) >= 1
        # another address claimed by the page itself is not believed (the peer is no proxy)
        status, _ = srv.post("/v1/decide", {"visitor_id": "x", "context": CTX},
                             {"X-Forwarded-For": "203.0.113.9"})
        assert status == 429
        # activations from pages count against the same bucket
        status, _ = srv.post("/v1/activate", {"event_id": "f" * 32})
        assert status == 429
        # the shop's backend (the token) is not limited per address
        for i in range(10):
            assert srv.post("/v1/decide", {"visitor_id": f"b{i}", "context": CTX}, AUTH)[0] \
                == 200
    finally:
        assert srv.stop() == 0


def test_an_optional_global_limit_holds_a_crowd_of_addresses(tmp_path):
    """Pages from ever new addresses pass each address's limit; the global one (off by
    default) holds them all together, and never the shop's backend."""
    srv = Server(tmp_path / "data", config_file(tmp_path, server={
        "token": TOKEN, "address_rate": 50.0, "address_burst": 200, "global_rate": 0.5,
        "global_burst": 4, "trusted_proxies": ["127.0.0.1"]}))
    try:
        answers = [srv.post("/v1/decide", {"visitor_id": f"v{i}", "context": CTX},
                            {"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(7)]
        assert [a[0] for a in answers] == [200] * 4 + [429] * 3
        assert "pages overall" in answers[-1][1]["error"]["message"]
        assert srv.post("/v1/decide", {"visitor_id": "b", "context": CTX}, AUTH)[0] == 200
    finally:
        assert srv.stop() == 0


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("signed")
    features = {"traffic_source": {"type": "categorical", "trusted": True, "categories": [
        "direct", "organic", "paid_search", "social", "email", "affiliate"]}}
    from engine_helpers import shop_doc

    doc_features = {**shop_doc()["features"], **features}
    srv = Server(tmp / "data", config_file(tmp, server={"token": TOKEN, "signed_requests": True},
                                           features=doc_features, holdout={"fraction": 0.0},
                                           placements=[{"id": "exit", "actions": [
                                               "none", "discount_5"],
                                               "activation": "deferred"}]))
    yield srv, tmp
    assert srv.stop() == 0


def _stored_context(tmp, event_id: str) -> dict:
    db = sqlite3.connect(f"{(tmp / 'data' / 'events.sqlite3').as_uri()}?mode=ro", uri=True)
    try:
        return json.loads(db.execute("SELECT context FROM decisions WHERE event_id = ?",
                                     (event_id,)).fetchone()[0])
    finally:
        db.close()


def test_signed_requests_take_the_visitor_and_trusted_fields_from_the_token(signed):
    srv, tmp = signed
    token = sign_visitor(TOKEN, "c0ffee", {"traffic_source": "email"})
    ask = {"visitor_id": "c0ffee", "placement": "exit", "context": CTX}
    status, d = srv.post("/v1/decide", {**ask, "token": token})
    assert status == 200
    assert _stored_context(tmp, d["event_id"])["traffic_source"] == "email"  # the token's
    refusals = [
        ({**ask}, "token"),  # no token
        ({**ask, "token": token[:-4] + "AAAA"}, "token"),  # forged
        ({**ask, "token": sign_visitor(TOKEN, "c0ffee", {}, ttl_s=-1)}, "token"),  # expired
        ({**ask, "token": sign_visitor("another-shops-token-32-chars-xxx", "c0ffee", {})},
         "token"),
        ({**ask, "visitor_id": "someone-else", "token": token}, "visitor_id"),
        ({**ask, "context": {**CTX, "traffic_source": "direct"}, "token": token},
         "context.traffic_source"),
    ]
    for body, field in refusals:
        status, err = srv.post("/v1/decide", body)
        assert status == 401 and err["error"]["field"] == field, (body, err)
        assert err["error"]["code"] == "unsigned"
    # a trusted field the token does not vouch for cannot be claimed either
    plain = sign_visitor(TOKEN, "c0ffee", {})
    status, err = srv.post("/v1/decide", {**ask, "context": {**CTX, "traffic_source": "email"},
                                          "token": plain})
    assert status == 401 and err["error"]["field"] == "context.traffic_source"
    # the shop's backend is trusted: no signed token needed
    status, _ = srv.post("/v1/decide", ask, AUTH)
    assert status == 200
    # activations from pages need a valid token too
    status, err = srv.post("/v1/activate", {"event_id": d["event_id"]})
    assert status == 401 and err["error"]["field"] == "token"
    status, answer = srv.post("/v1/activate", {"event_id": d["event_id"], "token": token})
    assert (status, answer) == (200, {"status": "activated"})


def test_the_guides_signing_snippet_makes_tokens_cartwheel_accepts():
    import re
    from pathlib import Path

    from bandit.http.trust import signing_key, verify

    guide = (Path(__file__).parents[2] / "docs" / "integration.md").read_text()
    section = guide[guide.index("## Signed requests"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the guide's own snippet
    token = scope["sign_visitor"](TOKEN, "c0ffee", {"traffic_source": "email"})
    assert verify(signing_key(TOKEN), token) == ("c0ffee", {"traffic_source": "email"})
    assert token.count(".") == 1


def test_a_token_rotates_without_downtime(tmp_path):
    """New and old tokens are both accepted while CARTWHEEL_TOKEN_PREVIOUS names the old one
    (clients move over meanwhile); once a restart drops it, the old token is refused."""
    old, new = "old-token-" + "o" * 30, "new-token-" + "n" * 30
    read_old, read_new = "old-read-" + "r" * 30, "new-read-" + "s" * 30
    cfg = config_file(tmp_path)
    rotating = Server(tmp_path / "data", cfg, env={
        "CARTWHEEL_TOKEN": new, "CARTWHEEL_TOKEN_PREVIOUS": old,
        "CARTWHEEL_READ_TOKEN": read_new, "CARTWHEEL_READ_TOKEN_PREVIOUS": read_old})
    try:
        for token, expected in ((old, 200), (new, 200), ("another-" + "x" * 30, 401)):
            _, d = rotating.post("/v1/decide", {"visitor_id": "v", "context": CTX})
            status, _ = rotating.post("/v1/outcome", {"event_id": d["event_id"],
                                                      "converted": False},
                                      {"Authorization": f"Bearer {token}"})
            assert status == expected, token
        for secret in (read_old, read_new):
            assert rotating.request("GET", "/v1/report",
                                    headers={"Authorization": f"Bearer {secret}"})[0] == 200
    finally:
        assert rotating.stop() == 0
    done = Server(tmp_path / "data", cfg, env={"CARTWHEEL_TOKEN": new,
                                               "CARTWHEEL_READ_TOKEN": read_new})
    try:
        _, d = done.post("/v1/decide", {"visitor_id": "w", "context": CTX})
        assert done.post("/v1/outcome", {"event_id": d["event_id"], "converted": False},
                         {"Authorization": f"Bearer {old}"})[0] == 401
        assert done.request("GET", "/v1/report",
                            headers={"Authorization": f"Bearer {read_old}"})[0] == 401
    finally:
        assert done.stop() == 0
