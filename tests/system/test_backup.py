"""`cartwheel backup` against a real server taking traffic over a socket: the copy holds every
decision acknowledged before it started, is one consistent state, private, and a server
started on it (the restore) serves and learns on; the original goes on serving."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading

import pytest
from server_helpers import Server, config_file

from bandit import Engine, load_config

pytestmark = pytest.mark.system


def test_a_backup_taken_while_serving_restores_to_a_serving_shop(tmp_path):
    # no token in the config: serve generates one into the data dir, which the copy carries
    cfg = config_file(tmp_path, holdout={"fraction": 0.2}, attribution={"window_s": 1.0},
                      hash_key_in_config=False)
    srv = Server(tmp_path / "data", cfg)
    acked: list[str] = []
    stop = threading.Event()

    def traffic():
        from server_helpers import Client

        client = Client(srv.port)
        i = 0
        while not stop.is_set():
            status, d = client.request("POST", "/v1/decide", {"visitor_id": f"v{i}",
                                                              "context": {"cart_value": 20.0}},
                                       {"Content-Type": "application/json"})
            assert status == 200
            acked.append(d["event_id"])
            i += 1

    worker = threading.Thread(target=traffic)
    try:
        for i in range(300):
            assert srv.post("/v1/decide", {"visitor_id": f"w{i}", "context": {}})[0] == 200
        worker.start()
        while len(acked) < 200:
            pass
        before = set(acked)
        done = subprocess.run([sys.executable, "-m", "bandit.cli", "backup",
                               str(tmp_path / "copy"), "--data-dir", str(tmp_path / "data"),
                               "--with-secrets"], capture_output=True, text=True, timeout=120)
        plain = subprocess.run([sys.executable, "-m", "bandit.cli", "backup",
                                str(tmp_path / "plain"), "--data-dir", str(tmp_path / "data")],
                               capture_output=True, text=True, timeout=120)
        after = len(acked)
        stop.set()
        worker.join(timeout=30)
        assert done.returncode == 0, done.stderr
        assert "restore: cartwheel serve --data-dir" in done.stdout
        # by default the secrets stay apart, and it says so
        assert plain.returncode == 0 and "not copied: token, hash_key" in plain.stdout
        assert not (tmp_path / "plain" / "token").exists()
        assert not (tmp_path / "plain" / "hash_key").exists()
        # still serving, and refused into a directory that holds anything
        assert srv.post("/v1/decide", {"visitor_id": "later", "context": {}})[0] == 200
        again = subprocess.run([sys.executable, "-m", "bandit.cli", "backup",
                                str(tmp_path / "copy"), "--data-dir", str(tmp_path / "data")],
                               capture_output=True, text=True, timeout=120)
        assert again.returncode != 0 and "not empty" in again.stderr
    finally:
        stop.set()
        srv.stop()
    copy = tmp_path / "copy"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o700
    files = [p for p in copy.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"events.sqlite3", "token", "hash_key"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert not (copy / "lock").exists()
    engine = Engine.open(load_config(cfg), copy, seed=0)
    stored = {r[0] for r in engine.store.db.execute("SELECT event_id FROM decisions")}
    assert before <= stored  # every acknowledged decision before the backup began
    assert 300 + len(before) <= len(stored) <= 300 + after + 1
    (check,) = engine.store.db.execute("PRAGMA integrity_check").fetchone()
    assert check == "ok"
    engine.close()
    # the restore: a server on the copy serves and reports
    restored = Server(copy, cfg)
    try:
        assert restored.token == srv.token  # the copied token file
        assert restored.post("/v1/decide", {"visitor_id": "after-restore",
                                            "context": {}})[0] == 200
        status, report = restored.request("GET", "/v1/report")
        assert status == 200 and sum(g["decisions"] for g in report["groups"].values()) \
            == len(stored) + 1
    finally:
        assert restored.stop() == 0
