"""The shop's processes under Redis ACL users, one per role, granted exactly the commands
docs/scale-out.md lists, in the clear and over TLS (``rediss://``, the server's certificate
checked against the shop's CA): the replicas decide and log, the trainer ingests and
publishes, and each user is refused what its role does not need (so the list is enough, and
no wider than it says). The bus URL, password included, reaches the processes through the
environment (``CARTWHEEL_BUS_URL``), never their command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from redis_helpers import RedisServer
from scaleout_helpers import ENV
from server_helpers import Server, config_file

from bandit.config.shop import load_config

#: docs/scale-out.md, "Redis itself": each role's commands. Taking any one of these away
#: fails this test, but SUBSCRIBE (a replica then polls for models), TIME (a degraded
#: replica's health probe) and nothing else the roles need is left untried
REPLICA = ("multi", "exec", "xadd", "hget", "hmget", "hsetnx", "zadd", "zcount",
           "zremrangebyscore", "expire", "subscribe", "time")
TRAINER = ("multi", "exec", "hget", "hmget", "hsetnx", "hset", "time", "xread", "xrange",
           "xlen", "xtrim", "xadd", "publish")
INCENTIVES = {"discount_5", "discount_10", "free_shipping"}  # the default shop's


def _rules(password: str, shop: str, commands) -> list[str]:
    # an ACL pattern cannot hold a space: the shop's name ("cartwheel demo shop") writes
    # each as ? (any one character), as docs/scale-out.md says
    pattern = f"cartwheel:{shop.replace(' ', '?')}:*"
    return ["on", f">{password}", f"~{pattern}", f"&{pattern}", *(f"+{c}" for c in commands)]


@pytest.mark.parametrize("tls", [False, True], ids=["redis", "rediss"])
def test_replicas_and_a_trainer_work_with_only_their_roles_commands(tmp_path, tls):
    cfg = config_file(tmp_path, caps={"incentives_per_visitor": 1,
                                      "incentives_window_s": 3600})
    shop = load_config(cfg).name
    redis = RedisServer(tmp_path / "redis", users={
        "cartwheel-replica": _rules("replica-password", shop, REPLICA),
        "cartwheel-trainer": _rules("trainer-password", shop, TRAINER)}, tls=tls).start()
    as_trainer = {"CARTWHEEL_BUS_URL": redis.url_of("cartwheel-trainer", "trainer-password")}
    as_replica = {"CARTWHEEL_BUS_URL": redis.url_of("cartwheel-replica", "replica-password")}
    trainer = Server(tmp_path / "trainer", cfg, command="train", env=as_trainer,
                     args=("--publish-every", "0.2"))
    replica = Server(tmp_path / "replica", cfg, env=as_replica, args=("--role", "decide"))
    try:
        decided, incentives = [], {}
        for i in range(90):  # 30 visitors, 3 times each: the cap lets one incentive through
            visitor = f"v{i % 30}"
            status, d = replica.post("/v1/decide", {"visitor_id": visitor,
                                                    "context": {"device": "mobile"}})
            assert status == 200, d
            decided.append(d["event_id"])
            incentives[visitor] = incentives.get(visitor, 0) + (d["action"] in INCENTIVES)
        assert max(incentives.values()) == 1 and sum(incentives.values()) >= 5, incentives
        for event_id in decided[:20]:
            status, body = replica.post("/v1/outcome", {"event_id": event_id, "converted": True,
                                                        "order_value": 40.0,
                                                        "outcome_id": f"o-{event_id}"})
            assert status == 200, body
        asyncio.run(_forge_an_entry(redis, shop))  # the trainer dead-letters it
        deadline = time.monotonic() + 60
        while True:  # the trainer ingests every entry, the forged one to the dead letters
            status, health = trainer.request("GET", "/healthz")
            assert status == 200, health
            if (health["lag_entries"], health["dead_letters"]) == (0, 1) and \
                    health["update_count"] > 0:
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.2)
        while replica.request("GET", "/healthz")[1]["model_version"] == 0:
            assert time.monotonic() < deadline, "the replica never loaded a published model"
            time.sleep(0.2)
        for server in (trainer, replica):
            assert "NOPERM" not in server.log_text() and "Traceback" not in server.log_text()
            for secret in ("replica-password", "trainer-password"):  # redacted in every line
                assert secret not in server.log_text()
        # each user is refused what its role does not need
        refused = asyncio.run(_refused(redis, shop))
        assert refused == {"replica xread": True, "replica publish": True,
                           "replica xtrim": True, "trainer flushall": True,
                           "replica another shop's keys": True}, refused
    finally:
        assert replica.stop() == 0
        assert trainer.stop() == 0
        redis.stop()


async def _forge_an_entry(redis, shop: str) -> None:
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(redis.url_of("admin", "admin-password"))
    await admin.xadd(f"cartwheel:{shop}:log", {"e": b"forged", "mac": b"0" * 64})
    await admin.aclose()


async def _refused(redis, shop: str) -> dict[str, bool]:
    import redis.asyncio as aioredis
    from redis.exceptions import NoPermissionError

    replica = aioredis.Redis.from_url(redis.url_of("cartwheel-replica", "replica-password"))
    trainer = aioredis.Redis.from_url(redis.url_of("cartwheel-trainer", "trainer-password"))
    log = f"cartwheel:{shop}:log"
    attempts = {
        "replica xread": replica.xread({log: "0"}, count=1),
        "replica publish": replica.publish(f"cartwheel:{shop}:snapshots", "1"),
        "replica xtrim": replica.xtrim(log, maxlen=0),
        "trainer flushall": trainer.flushall(),
        "replica another shop's keys": replica.hget("cartwheel:another-shop:shared", "x"),
    }
    out = {}
    for name, attempt in attempts.items():
        try:
            await attempt
            out[name] = False
        except NoPermissionError:
            out[name] = True
    await replica.aclose()
    await trainer.aclose()
    return out


def test_a_bus_whose_certificate_is_not_trusted_is_refused_at_start(tmp_path):
    """Without the shop's CA (the system's trust store does not know it) a process stops at
    start with an error naming the certificate, not the password; plain redis:// to a TLS
    port is refused the same way rather than hanging."""
    redis = RedisServer(tmp_path / "redis", tls=True).start()
    try:
        cfg = config_file(tmp_path)
        trusted = redis.url_of("default", "the-password")
        for url, says in ((trusted.split("?")[0], "CERTIFICATE_VERIFY_FAILED"),
                          (trusted.replace("rediss://", "redis://").split("?")[0],
                           "did not answer")):
            proc = subprocess.run(
                [sys.executable, "-m", "bandit.cli", "serve", "--role", "decide", "--config",
                 str(cfg), "--port", "0", "--bus-timeout", "2"],
                capture_output=True, text=True, timeout=120,
                env={**os.environ, **ENV, "CARTWHEEL_BUS_URL": url})
            assert proc.returncode == 2, proc.stderr
            assert says in proc.stderr and "the-password" not in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
    finally:
        redis.stop()
