"""Redis as a network service, not a trusted store (bandit.scaleout.bus, bandit.scaleout.secrets),
through a real redis-server: no secret is ever written to it, a forged model or spend record is
refused, the shop's secrets come from the environment or a private file, and Redis's password
never shows in an error."""

from __future__ import annotations

import asyncio
import logging

import pytest
from engine_helpers import Clock, shop
from scaleout_helpers import BUS_KEY, HASH_KEY, TOKEN, Shop, run

from bandit.domain.errors import BusUnavailableError, CartwheelError
from bandit.http import api
from bandit.scaleout import secrets as shop_secrets
from bandit.scaleout.bus import RedisBus
from bandit.scaleout.replica import refresh

pytestmark = pytest.mark.system
CTX = {"device": "mobile", "cart_value": 35.0}


async def _everything_in(bus) -> tuple[set[bytes], bytes]:
    """Every hash field name, and all the bytes of every key (names, fields, values)."""
    fields, blob = set(), b""
    async for key in bus.redis.scan_iter("*"):
        kind = (await bus.redis.type(key)).decode()
        blob += key
        if kind == "hash":
            got = await bus.redis.hgetall(key)
            fields |= set(got)
            blob += b"".join(k + v for k, v in got.items())
        elif kind == "stream":
            for _, entry in await bus.redis.xrange(key):
                blob += b"".join(k + v for k, v in entry.items())
        elif kind == "zset":
            blob += b"".join(m for m, _ in await bus.redis.zrange(key, 0, -1, withscores=True))
        elif kind == "string":
            blob += await bus.redis.get(key) or b""
    return fields, blob


def test_no_secret_ever_reaches_redis(tmp_path, redis_server):
    config = shop(holdout={"fraction": 0.1}, budget={"daily_incentive_spend": 100.0},
                  caps={"incentives_per_visitor": 2, "incentives_window_s": 3600.0})

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config, n=2, clock=Clock()) as s:
            ds = await asyncio.gather(*[s.groups[i % 2].decide(api.DecideRequest(f"v{i}", CTX))
                                        for i in range(40)])
            await s.groups[0].outcome(api.OutcomeRequest(
                event_id=ds[0].event_id, converted=True, order_value=50.0, outcome_id="o-1"))
            await s.drain()
            await s.trainer.publish(force=True)
            fields, blob = await _everything_in(s.bus)
        assert not {f for f in fields if any(word in f.decode().lower()
                                             for word in ("salt", "token", "secret", "key"))}
        for secret in (HASH_KEY.encode(), BUS_KEY, TOKEN.encode()):
            assert secret not in blob

    run(main())


def test_a_forged_model_or_spend_record_is_refused(tmp_path, redis_server, caplog):
    config = shop(holdout={"fraction": 0.1}, budget={"daily_incentive_spend": 100.0})

    async def main():
        async with Shop(redis_server.url, tmp_path / "t", config, n=1, clock=Clock()) as s:
            for round_ in range(2):  # conversions close and teach the trainer's model
                ds = await asyncio.gather(*[s.groups[0].decide(api.DecideRequest(
                    f"r{round_}v{i}", CTX)) for i in range(20)])
                for d in ds:
                    await s.groups[0].outcome(api.OutcomeRequest(
                        event_id=d.event_id, converted=True, order_value=30.0))
                s.clock.t += 2.0
                await s.drain()
            await s.trainer.publish(force=True)
            replica = s.replicas[0]
            assert await refresh(replica, s.bus) and replica.model_version > 0
            genuine = replica.model_version
            # an intruder rewrites the snapshot: a newer version, its own bytes, no valid MAC
            meta, state = await s.bus.redis.hmget(s.bus.snapshot_key, ["meta", "state"])
            await s.bus.redis.hset(s.bus.snapshot_key, mapping={
                "version": genuine + 100, "meta": meta, "state": state, "mac": b"0" * 64})
            with caplog.at_level(logging.ERROR, "cartwheel.bus"):
                assert not await refresh(replica, s.bus)
            assert replica.model_version == genuine
            assert "not signed with the shop's bus key" in caplog.text
            # the spend record: genuine round trip, then a forged "budget spent"
            await s.bus.set_spend(1_700_000_000.0, 12.5)
            assert await s.bus.spend() == (1_700_000_000.0, 12.5, b"")
            await s.bus.redis.hset(s.bus.spend_key, "spent", "1e12")
            assert await s.bus.spend() is None  # refused: replicas keep the last good one
            # a bus key rotates: a process holding the new key and the old one as previous
            # still reads what the old key signed; one holding only the new one does not
            await s.bus.set_spend(1_700_000_000.0, 12.5)  # signed with the old key
            rotated = RedisBus(redis_server.url, config.name, key=b"the-new-bus-key",
                               previous_key=BUS_KEY)
            assert await rotated.spend() == (1_700_000_000.0, 12.5, b"")
            await rotated.set_spend(1_700_000_000.0, 13.0)  # signed with the new key
            assert await s.bus.spend() is None  # the old-key-only process cannot read it
            await rotated.close()
            await s.bus.set_spend(1_700_000_000.0, 12.5)
            # a process holding another bus key reads nothing it can trust either
            other = RedisBus(redis_server.url, config.name, key=b"another-key")
            await s.bus.set_spend(1_700_000_000.0, 12.5)
            assert await other.spend() is None and await other.snapshot() is None
            await other.close()

    run(main())


def test_the_shops_secrets_come_from_the_environment_or_a_private_file(tmp_path):
    with pytest.raises(CartwheelError, match="CARTWHEEL_HASH_KEY and CARTWHEEL_BUS_KEY are "
                                             "not set"):
        shop_secrets.load(environ={})
    with pytest.raises(CartwheelError, match="CARTWHEEL_BUS_KEY is not set"):
        shop_secrets.load(environ={"CARTWHEEL_HASH_KEY": "h"})
    path = tmp_path / "secrets"
    path.write_text("# the shop's\nCARTWHEEL_HASH_KEY=from-file\nCARTWHEEL_BUS_KEY=bus\n"
                    "CARTWHEEL_BUS_URL=redis://:pw@10.0.0.5:6379/0\n")
    path.chmod(0o644)
    with pytest.raises(CartwheelError, match="chmod 600"):
        shop_secrets.load(path, environ={})
    path.chmod(0o600)
    held = shop_secrets.load(path, environ={"CARTWHEEL_HASH_KEY": "from-env"})
    assert (held.hash_key, held.bus_key, held.token) == ("from-env", b"bus", None)
    assert held.bus_url == "redis://:pw@10.0.0.5:6379/0"
    path.write_text("CARTWHEEL_PASSWORD=x\n")
    with pytest.raises(CartwheelError, match="line 1"):
        shop_secrets.load(path, environ={})


def test_redis_password_never_shows_in_an_error():
    async def main():
        bus = RedisBus("redis://cartwheel:hunter2-s3cret@127.0.0.1:1/0", "shop", timeout=0.2,
                       key=BUS_KEY)
        with pytest.raises(BusUnavailableError) as caught:
            await bus.snapshot_version()
        await bus.close()
        assert "hunter2-s3cret" not in str(caught.value) and "***" in str(caught.value)

    run(main())


def test_a_replica_without_the_keys_refuses_to_start_naming_them(tmp_path, redis_server):
    import os
    import subprocess
    import sys

    from server_helpers import config_file

    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTWHEEL_")}
    done = subprocess.run([sys.executable, "-m", "bandit.cli", "serve", "--role", "decide",
                           "--bus", redis_server.url, "--config", str(config_file(tmp_path)),
                           "--port", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert "CARTWHEEL_HASH_KEY and CARTWHEEL_BUS_KEY are not set" in done.stderr
    assert "Traceback" not in done.stderr

