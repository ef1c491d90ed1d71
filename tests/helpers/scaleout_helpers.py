"""A trainer and decide replicas of one config on one bus, driven in one process."""

from __future__ import annotations

import asyncio

from engine_helpers import Clock

from bandit import Engine
from bandit.http.replica_role import ReplicaGroup
from bandit.scaleout.bus import RedisBus, fingerprint
from bandit.scaleout.replica import Replica
from bandit.scaleout.trainer import Trainer

#: the secrets every process of a test shop holds (never in Redis); the hash key is the test
#: configs' [privacy] salt, so hashes match what a one-process test of the same shop stores
HASH_KEY = "test-salt"
BUS_KEY = b"test-bus-key-0123456789abcdef0123456789"
TOKEN = "test-write-token-0123456789abcdef0123"
ENV = {"CARTWHEEL_HASH_KEY": HASH_KEY, "CARTWHEEL_BUS_KEY": BUS_KEY.decode(),
       "CARTWHEEL_TOKEN": TOKEN}


def bus_of(url: str, shop: str) -> RedisBus:
    """A bus connection holding the test shop's bus key."""
    return RedisBus(url, shop, key=BUS_KEY)


class Shop:
    """A trainer and ``n`` replicas of one config on one bus, sharing a settable clock."""

    def __init__(self, url, data_dir, config, n=2, clock=None, publish_every_s=1.0):
        self.url, self.data_dir, self.config, self.n = url, data_dir, config, n
        self.clock = clock or Clock()
        self.publish_every_s = publish_every_s

    async def __aenter__(self):
        self.bus = bus_of(self.url, self.config.name)
        await self.bus.join(self.config.config_hash(), self.config.source,
                            fingerprint=fingerprint(HASH_KEY))
        self.token = TOKEN
        self.engine = Engine.open(self.config, self.data_dir, seed=0, clock=self.clock,
                                  salt=HASH_KEY)
        self.trainer = Trainer(self.engine, self.bus, publish_every_s=self.publish_every_s)
        self.replicas = [Replica(self.config, self.engine.salt, seed=10 + i, clock=self.clock,
                                 name=f"r{i}") for i in range(self.n)]
        self.groups = [ReplicaGroup(r, self.bus) for r in self.replicas]
        return self

    async def __aexit__(self, *exc):
        self.engine.close()
        await self.bus.close()

    async def drain(self):
        while await self.trainer.step(block_ms=None) == self.trainer.batch:
            pass


def run(coro):
    return asyncio.run(coro)


