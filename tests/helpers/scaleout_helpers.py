"""A trainer and decide replicas of one config on one bus, driven in one process."""

from __future__ import annotations

import asyncio

from engine_helpers import Clock

from bandit import Engine
from bandit.http.replica_role import ReplicaGroup
from bandit.scaleout.bus import RedisBus
from bandit.scaleout.replica import Replica
from bandit.scaleout.trainer import Trainer


class Shop:
    """A trainer and ``n`` replicas of one config on one bus, sharing a settable clock."""

    def __init__(self, url, data_dir, config, n=2, clock=None, publish_every_s=1.0):
        self.url, self.data_dir, self.config, self.n = url, data_dir, config, n
        self.clock = clock or Clock()
        self.publish_every_s = publish_every_s

    async def __aenter__(self):
        self.bus = RedisBus(self.url, self.config.name)
        salt, self.token = await self.bus.join(self.config.config_hash(), self.config.source)
        self.engine = Engine.open(self.config, self.data_dir, seed=0, clock=self.clock, salt=salt)
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


