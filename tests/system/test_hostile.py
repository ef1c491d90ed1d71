"""Hostile input over a real socket: hundreds of bad bodies and header variants, alone and
inside request groups with valid requests. Never a 5xx, exactly one stored decision per 200,
exactly one stored outcome per "recorded", and no probe of personal data anywhere on disk."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import sqlite3

import aiohttp
import pytest
from server_helpers import Server, config_file

CTX = {"device": "mobile", "cart_value": 40.0, "page_type": "cart", "hour": 13}
# personal data a shop might leak into a context by mistake (the probes): none of it
# may reach the disk, whether refused (400) or stored as the unknown marker
PII = ["Jane Doe", "12 Baker Street", "DE89370400440532013000", "card:4111111111111111",
       "tel:+491701234567", "ip=203.0.113.7", "jane\uff20example.com", "jane%40example.com",
       "2001:db8::1", "GB82 WEST 1234 5698 7654 32", "4111 1111 1111 1111", "+44 20 7946 0958",
       "jane.doe@example.com", "JANE@EXAMPLE.ORG"]
HEADERS = [  # (headers, whether a valid body can succeed with them)
    ({"Content-Type": "application/json"}, True),
    ({"Content-Type": "application/json; charset=utf-8"}, True),
    ({"Content-Type": "text/plain"}, False),
    ({}, False),
    ({"Content-Type": "application/x-www-form-urlencoded"}, False),
    ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, False),
    ({"Content-Type": "application/json", "Content-Encoding": "br"}, False),
    ({"Content-Type": "application/json", "Content-Encoding": "identity"}, True),
]


def decide_bodies() -> list:
    bodies = [{"visitor_id": "h", "context": {**CTX, "hour": 1e308}},
              {"visitor_id": "h", "context": {**CTX, "hour": -1e308}},
              {"visitor_id": "h", "context": {**CTX, "cart_value": 4111111111111111}},
              {"visitor_id": "h", "context": {**CTX, "cart_value": -3}},
              {"visitor_id": "h", "context": {**CTX, "pages_viewed": 10**30}},
              b'{"visitor_id": "h", "context": {"hour": 1' + b"0" * 400 + b'}}',
              b'{"visitor_id": "h", "context": {"cart_value": 1e999}}',
              b'{"visitor_id": "h", "context": {"hour": NaN}}',
              b'{"visitor_id": "h", "context": ' + b"[" * 5000 + b"]" * 5000 + b"}",
              b"\xff\xfe\x00garbage", b"", b"null", b"[]", b'"visitor"', b"{}",
              {"visitor_id": "h" * 257, "context": CTX},
              {"visitor_id": "", "context": CTX},
              {"visitor_id": ["h"], "context": CTX},
              {"visitor_id": "h", "context": []},
              {"visitor_id": "h", "context": {**CTX, "returning": 2}},
              {"visitor_id": "h", "context": {**CTX, "device": 7}},
              {"visitor_id": "h", "context": {**CTX, "device": None}},
              {"visitor_id": "h", "context": CTX, "eligible": "none"},
              {"visitor_id": "h", "context": CTX, "eligible": [1, 2]},
              {"visitor_id": "h", "context": CTX, "eligible": ["none"] * 1000},
              {"visitor_id": "h", "context": CTX, "eligible": []},
              {"visitor_id": "h", "context": {"e\u0301mail": "x"}},
              {"visitor_id": "h", "context": {"customer_email": "x"}},
              {"visitor_id": "h", "context": {"jane@example.com": "x"}},
              {"visitor_id": "h", "context": {"\x00": 1}},
              {"visitor_id": "h\x00\ud7ff", "context": CTX}]
    for probe in PII:
        bodies.append({"visitor_id": "h", "context": {**CTX, "device": probe}})
        bodies.append({"visitor_id": "h", "context": {**CTX, "region": probe}})
    return bodies


def outcome_bodies(event_id: str) -> list:
    bodies = [{"event_id": event_id, "converted": True, "order_value": v}
              for v in (1e300, 1.7e308, 1e12, -1.0, 100_000.01)]
    bodies += [b'{"event_id": "%s", "converted": true, "order_value": Infinity}' % event_id.encode(),
               b'{"event_id": "%s", "converted": true, "order_value": 1e999}' % event_id.encode(),
               {"event_id": event_id, "converted": "yes"},
               {"event_id": event_id, "converted": True, "order_value": True},
               {"event_id": "x" * 10_000, "converted": True},
               {"event_id": event_id, "converted": True, "outcome_id": ""},
               {"event_id": event_id, "converted": True, "outcome_id": "o" * 300}]
    bodies += [{"event_id": event_id, "converted": True, "order_value": 10.0, "outcome_id": p}
               for p in PII if "Doe" not in p and "Baker" not in p]
    return bodies


def encode(body, headers) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if headers.get("Content-Encoding") == "gzip" and len(raw) % 2:
        return gzip.compress(raw)  # real gzip for some, a lie for the others
    return raw


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    srv = Server(tmp / "data", config_file(tmp, server={"token": "tok", "visitor_rate": 0.0}))
    srv.db_path = tmp / "data" / "events.sqlite3"
    yield srv
    assert srv.stop() == 0


def stored(db_path) -> tuple[int, int]:
    db = sqlite3.connect(db_path)
    counts = (db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0],
              db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0])
    db.close()
    return counts


def test_hostile_requests_alone_and_in_groups(hostile):
    decides_ok = recorded = sent = 0
    _, valid = hostile.post("/v1/decide", {"visitor_id": "base", "context": CTX})
    decides_ok += 1
    before = stored(hostile.db_path)
    # alone: every body with every header variant, one at a time
    for headers, _ in HEADERS:
        for body in decide_bodies():
            status, resp = hostile.request("POST", "/v1/decide", encode(body, headers), headers)
            sent += 1
            assert status < 500, (body, headers, resp)
            assert status == 200 or set(resp["error"]) == {"code", "message", "field"}
            decides_ok += status == 200
        for body in outcome_bodies(valid["event_id"]):
            status, resp = hostile.request("POST", "/v1/outcome", encode(body, headers),
                                           {**headers, "Authorization": "Bearer tok"})
            sent += 1
            assert status < 500, (body, headers, resp)
            recorded += status == 200 and resp["status"] == "recorded"
    assert sent >= 300

    # in groups: each hostile body among 24 valid decides sent at once
    async def groups() -> tuple[int, int]:
        ok = rec = 0
        async with aiohttp.ClientSession(f"http://127.0.0.1:{hostile.port}") as session:
            async def send(path, raw, headers):
                async with session.post(path, data=raw, headers=headers) as r:
                    return r.status, await r.json(content_type=None)

            for n, body in enumerate(decide_bodies() + outcome_bodies(valid["event_id"])):
                path = "/v1/decide" if "visitor_id" in str(body) else "/v1/outcome"
                jobs = [send("/v1/decide", json.dumps({"visitor_id": f"g{n}-{i}",
                                                       "context": CTX}).encode(),
                             {"Content-Type": "application/json"}) for i in range(24)]
                jobs.insert(12, send(path, encode(body, {}), {
                    "Content-Type": "application/json", "Authorization": "Bearer tok"}))
                answers = await asyncio.gather(*jobs)
                bad_status, bad = answers.pop(12)
                assert bad_status < 500, (body, bad)
                assert [s for s, _ in answers] == [200] * 24, (body, answers)
                ok += 24 + (path == "/v1/decide" and bad_status == 200)
                rec += path == "/v1/outcome" and bad_status == 200 and bad["status"] == "recorded"
        return ok, rec

    ok, rec = asyncio.run(groups())
    decides_ok += ok
    recorded += rec
    after = stored(hostile.db_path)
    # exactly one row per acknowledged request: no more, no fewer
    assert after[0] - before[0] == decides_ok - 1
    assert after[1] - before[1] == recorded
    groups_seen = hostile.request("GET", "/metrics")[1]
    assert "cartwheel_group_size_bucket" in groups_seen


def test_no_probe_of_personal_data_reaches_the_disk(hostile):
    # after the hostile run (module order): the raw bytes of the log and its WAL
    hostile.request("GET", "/healthz")
    raw = b"".join(p.read_bytes() for p in hostile.db_path.parent.glob("events.sqlite3*"))
    for probe in PII + ["4111111111111111", "Baker", "Jane", "203.0.113.7", "491701234567"]:
        for form in {probe, probe.lower(), probe.replace(" ", "")}:
            assert form.encode() not in raw, probe


# requests aiohttp's parser refuses before any handler runs (each on its own connection)
NOT_HTTP = [b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n",
            b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n{}",
            b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"]


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        reply = b""  # the server closes the connection after refusing it
        while chunk := s.recv(65536):
            reply += chunk
    return reply


def test_requests_that_are_not_http_leave_one_line_and_a_count(hostile):
    # aiohttp's own record of each is an ERROR with a traceback and the client's address
    # (~1 KB of log per request): the log gets one line naming neither, the metric the count
    before = hostile.log_text()
    for _ in range(5):
        for data in NOT_HTTP:
            assert raw_exchange(hostile.port, data).startswith(b"HTTP/1.0 400 ")
    status, _ = hostile.request("GET", "/healthz")
    assert status == 200
    added = hostile.log_text()[len(before):]
    assert "Traceback" not in added and "127.0.0.1" not in added, added
    lines = [line for line in added.splitlines() if "not valid HTTP" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], added
    metrics = hostile.request("GET", "/metrics")[1]
    count = re.search(r'cartwheel_request_errors_total\{code="malformed_http",'
                      r'endpoint="unparsed"\} (\S+)', metrics)
    assert count and float(count.group(1)) == 5 * len(NOT_HTTP), metrics
