"""Two `cartwheel serve --role decide` replicas and a `cartwheel train` on a real redis-server,
under bounded load from two clients; a replica, the trainer and redis itself are SIGKILLed
and restarted. Every acknowledged decision and outcome is ingested exactly once, the model is
a re-learn of the trainer's log, and the spend the replicas read is the log's sum."""

from __future__ import annotations

import asyncio
import http.client
import os
import random
import signal
import sqlite3
import threading
import time

import pytest
from engine_helpers import Clock
from redis_helpers import RedisServer
from relearn import assert_same_model, relearned
from scaleout_helpers import ENV, HASH_KEY, bus_of
from server_helpers import Client, Server, config_file

from bandit import Engine
from bandit.config.shop import load_config
from bandit.domain.privacy import hash_outcome_id
from bandit.scaleout.bus import fingerprint

SALT = b"test-salt"  # engine_helpers.shop_doc's fixed salt


class Load:
    """Two client threads: each decides for a random visitor on a random live replica and
    reports an order for ~30% of its decisions; what answered 200 is acknowledged."""

    def __init__(self, replicas: list, seed: int):
        self.replicas, self.seed = replicas, seed
        self.decisions: list[str] = []  # acknowledged event ids
        self.outcomes: list[tuple[str, str]] = []  # acknowledged (event id, outcome id)
        self.failed = {"decide": 0, "outcome": 0}  # requests without a 200 (may be stored)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, args=(k,)) for k in range(2)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(30)

    def _send(self, client_of, kind, body):
        try:
            client = client_of()
            status, data = client.post(f"/v1/{kind}", body)
        except (OSError, http.client.HTTPException):
            status, data = None, None
        if status != 200:
            with self._lock:
                self.failed[kind] += 1
            time.sleep(0.01)
            return None
        return data

    def _work(self, k: int) -> None:
        rng = random.Random(self.seed * 10 + k)
        clients: dict[int, Client] = {}

        def client_of():
            server = rng.choice(self.replicas)
            if server.port not in clients:
                clients[server.port] = Client(server.port)
                clients[server.port].token = server.token
            return clients[server.port]

        n = 0
        while not self._stop.is_set():
            n += 1
            d = self._send(client_of, "decide", {
                "visitor_id": f"v{rng.randrange(500)}",
                "context": {"device": rng.choice(["mobile", "desktop"]),
                            "cart_value": round(rng.uniform(0, 200), 2)}})
            if d is None:
                continue
            with self._lock:
                self.decisions.append(d["event_id"])
            if rng.random() < 0.3:
                oid = f"order-{k}-{n}"
                body = {"event_id": d["event_id"], "converted": True,
                        "order_value": round(rng.uniform(5, 150), 2), "outcome_id": oid}
                if self._send(client_of, "outcome", body) is not None:
                    with self._lock:
                        self.outcomes.append((d["event_id"], oid))

    def wait_for(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        target = len(self.decisions) + n
        while len(self.decisions) < target:
            assert time.monotonic() < deadline, "load made no progress"
            time.sleep(0.05)


def _offset(data_dir) -> str | None:
    try:
        db = sqlite3.connect(f"file:{data_dir / 'events.sqlite3'}?mode=ro", uri=True)
        row = db.execute("SELECT value FROM meta WHERE key = 'bus_offset'").fetchone()
        db.close()
        return row and row[0]
    except sqlite3.Error:
        return None


async def _bus_state(url: str, shop: str):
    bus = bus_of(url, shop)
    try:
        info = await bus.redis.xinfo_stream(bus.log_key)
        return info["last-generated-id"].decode(), await bus.spend()
    finally:
        await bus.close()


@pytest.mark.crash
def test_sigkill_of_a_replica_the_trainer_and_redis_loses_no_acknowledged_event(tmp_path):
    redis = RedisServer(tmp_path / "redis", appendfsync="always").start()
    cfg = config_file(tmp_path, holdout={"fraction": 0.1},
                      budget={"daily_incentive_spend": 1e9, "timezone": "UTC"})
    config = load_config(cfg)
    bus = ("--bus", redis.url)
    trainer_dir = tmp_path / "trainer"

    def trainer():
        return Server(trainer_dir, cfg, command="train", args=(*bus, "--publish-every", "0.2"))

    def replica(i):
        return Server(tmp_path / f"replica{i}", cfg, args=("--role", "decide", *bus))

    procs = {"trainer": trainer()}
    replicas = [replica(0), replica(1)]
    load = Load(replicas, seed=1).start()
    try:
        load.wait_for(300)
        replicas[0].stop(signal.SIGKILL)
        load.wait_for(100)  # the other replica goes on alone
        replicas[0] = replica(0)
        load.wait_for(300)
        procs["trainer"].stop(signal.SIGKILL)
        load.wait_for(300)  # decisions go on while the trainer is down
        procs["trainer"] = trainer()
        load.wait_for(300)
        redis.kill()
        time.sleep(0.5)  # requests fail meanwhile (503 within the bus timeout)
        redis.start()
        load.wait_for(300)
        # what operators watch: bus latency and model version on replicas, lag on the trainer
        _, replica_metrics = replicas[1].request("GET", "/metrics")
        assert _metric(replica_metrics, "cartwheel_bus_append_seconds_count") > 0
        assert _metric(replica_metrics, "cartwheel_model_version") > 0
        assert _metric(replica_metrics, "cartwheel_model_age_seconds") < 60
    finally:
        load.stop()
        for r in replicas:
            r.stop()
    # the trainer catches up with the stream, publishes the day's spend, then stops cleanly
    deadline = time.monotonic() + 60
    while True:
        last, spend = asyncio.run(_bus_state(redis.url, config.name))
        if _offset(trainer_dir) == last:
            break
        assert time.monotonic() < deadline, "the trainer did not catch up"
        time.sleep(0.2)
    _, trainer_metrics = procs["trainer"].request("GET", "/metrics")
    assert _metric(trainer_metrics, "cartwheel_trainer_decisions_total") > 0
    assert _metric(trainer_metrics, "cartwheel_trainer_lag_entries") >= 0
    assert "cartwheel_trainer_duplicates_total" in trainer_metrics
    time.sleep(0.5)  # one more step publishes the spend of the last commit
    _, spend = asyncio.run(_bus_state(redis.url, config.name))
    assert procs["trainer"].stop() == 0
    redis.stop()

    engine = Engine.open(config, trainer_dir, clock=Clock(2e9))
    db = engine.store.db
    stored = {r[0] for r in db.execute("SELECT event_id FROM decisions")}
    assert engine.store.count("decisions") == len(stored)
    assert set(load.decisions) <= stored  # every acknowledged decision, once
    # the rest: requests that failed after Redis took them (their answer was lost)
    assert len(stored) - len(set(load.decisions)) <= load.failed["decide"]
    keys = {r[0] for r in db.execute("SELECT outcome_id FROM outcomes")}
    assert {hash_outcome_id(oid, SALT) for _, oid in load.outcomes} <= keys
    assert len(keys) - len(load.outcomes) <= load.failed["outcome"]
    assert engine.store.count("outcomes") == len(keys)  # each once
    converted = {r[0] for r in db.execute("SELECT event_id FROM closed WHERE reason='converted'")}
    assert {e for e, _ in load.outcomes} <= converted
    # the spend the replicas read is the log's
    day_spend = db.execute("SELECT COALESCE(SUM(cost), 0) FROM closed WHERE converted = 1 AND "
                           "ts >= ?", (spend[0],)).fetchone()[0]
    assert spend[1] == pytest.approx(day_spend, rel=1e-9, abs=1e-9) and day_spend > 0
    assert len(load.decisions) >= 1600 and load.failed["decide"] > 0  # the kills were felt
    assert_same_model(engine, relearned(trainer_dir, config))
    engine.close()


def test_a_replica_on_another_config_refuses_to_start(tmp_path, redis_server):
    import subprocess
    import sys

    first = config_file(tmp_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = config_file(other_dir, holdout={"fraction": 0.2})
    asyncio.run(_join(redis_server.url, load_config(first)))
    proc = subprocess.run([sys.executable, "-m", "bandit.cli", "serve", "--role", "decide",
                           "--bus", redis_server.url, "--config", str(other), "--port", "0"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV})
    assert proc.returncode == 2
    assert str(other) in proc.stderr and str(first) in proc.stderr
    assert "Traceback" not in proc.stderr


async def _join(url, config):
    bus = bus_of(url, config.name)
    await bus.join(config.config_hash(), config.source, fingerprint=fingerprint(HASH_KEY))
    await bus.close()


def _metric(text: str, name: str) -> float:
    import re

    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_the_trainer_reports_a_lost_bus_on_healthz_and_recovers(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    cfg = config_file(tmp_path)
    trainer = Server(tmp_path / "trainer", cfg, command="train", args=("--bus", redis.url))
    try:
        status, health = trainer.request("GET", "/healthz")
        assert status == 200 and health["role"] == "train" and health["lag_entries"] == 0
        redis.kill()
        health = _wait_health(trainer, 503)
        assert health["status"] == "degraded" and redis.url in health["reason"]
        redis.start()
        health = _wait_health(trainer, 200)  # it retried by itself
        assert health["status"] == "ok"
    finally:
        trainer.stop()
        redis.stop()


def _wait_health(server, status: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got, health = server.request("GET", "/healthz")
        if got == status:
            return health
        assert time.monotonic() < deadline, f"/healthz stayed {got}: {health}"
        time.sleep(0.1)


def test_a_replica_answers_unknown_paths_and_methods_in_the_error_shape(tmp_path, redis_server):
    replica = Server(tmp_path / "replica", config_file(tmp_path),
                     args=("--role", "decide", "--bus", redis_server.url))
    try:
        status, body = replica.request("GET", "/nowhere")
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body = replica.request("GET", "/v1/decide")
        assert status == 405 and set(body["error"]) == {"code", "message", "field"}
        status, body = replica.request("GET", "/v1/report")
        assert status == 404 and "trainer" in body["error"]["message"]
    finally:
        replica.stop()
