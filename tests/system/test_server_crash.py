"""SIGKILL the server mid-traffic, restart it on the same data dir, check nothing acknowledged
is lost and learning resumes from snapshot + log."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import pytest
from server_helpers import Client, Server, config_file

from bandit.domain.privacy import hash_outcome_id

CTX = {"device": "desktop", "cart_value": 80.0, "page_type": "product", "returning": True}


@pytest.mark.crash
def test_sigkill_mid_traffic_then_restart(tmp_path):
    config = config_file(tmp_path, storage={"snapshot_every_updates": 25},
                         holdout={"fraction": 0.1})
    srv = Server(tmp_path / "data", config)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int):
        conn = Client(srv.port)
        conn.token = srv.token
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, d = conn.post("/v1/decide", {"visitor_id": f"w{worker}-{i}",
                                                     "context": CTX})
                oid = f"o-{worker}-{i}"
                status, o = conn.post("/v1/outcome", {"event_id": d["event_id"],
                                                      "converted": i % 3 == 0,
                                                      "order_value": 42.0, "outcome_id": oid})
            except Exception:
                return  # the server died under us
            if status == 200:
                with lock:
                    acked.append(oid)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120  # bounded: a server that acknowledges nothing fails
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 600:
                break
        time.sleep(0.01)
    assert len(acked) >= 600, f"only {len(acked)} outcomes acknowledged in 120 s"
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert list((tmp_path / "data" / "snapshots").glob("snapshot-*.json"))

    restarted = Server(tmp_path / "data", config)
    db = sqlite3.connect(tmp_path / "data" / "events.sqlite3")
    stored = {r[0] for r in db.execute("SELECT outcome_id FROM outcomes")}
    salt = "test-salt".encode()  # the test shop's configured salt
    assert {hash_outcome_id(oid, salt) for oid in acked} <= stored
    treated = db.execute("SELECT COUNT(*) FROM decisions WHERE grp = 'treatment' AND "
                         "randomized = 1").fetchone()[0]
    relabeled = db.execute("SELECT COUNT(*) FROM closed WHERE learned = 1 AND reward != 0"
                           ).fetchone()[0]
    status, health = restarted.request("GET", "/healthz")
    # each decision learned once, each conversion relabeled once (the version counts both)
    assert status == 200 and health["update_count"] == treated
    assert health["model_version"] == treated + relabeled
    # it keeps serving and learning
    _, d = restarted.post("/v1/decide", {"visitor_id": "after", "context": CTX})
    assert restarted.stop() == 0
    db.close()
