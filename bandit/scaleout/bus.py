"""The bus on Redis Streams: every Redis command of cartwheel lives in this module.

Keys, all under ``cartwheel:<shop>:`` (docs/architecture.md, "Scale-out"):

* ``log`` (stream): one entry per request group of a replica (field ``e``: a
  :class:`~bandit.scaleout.records.BusEntry`); the trainer reads it from the offset kept in its own
  store and trims what it has committed.
* ``cap:<i>:<visitor hash>`` (sorted set): the visitor's decisions covered by frequency cap
  ``i`` (member: event id, score: time), written in the same MULTI as the group's entry and
  expiring with the cap's window.
* ``shared`` (hash): the config hash every process must run, the salt and the token.
* ``snapshot`` (hash: ``version``, ``meta``, ``state``) and the ``snapshots`` channel: the
  trainer's newest model; replicas subscribe and also poll (pub/sub drops messages while a
  subscriber is disconnected).
* ``dead`` (stream): the records the trainer refused (fields ``entry``, ``kind``,
  ``reason``, ``record``: :mod:`bandit.scaleout.checks`), the newest ``DEAD_LETTERS_KEPT``.
* ``spend`` (hash: ``day_start``, ``spent``, ``pacing``): today's incentive spend, written by
  the trainer from the events it closed, and the budget's pacing price (JSON of
  :class:`bandit.core.pacing.PacingPrice`; empty without pacing).

Every call has a timeout: with Redis down a replica answers 503 within ``timeout`` seconds
instead of hanging, and the trainer retries.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bandit.domain.errors import BusConfigError, BusUnavailableError

DEFAULT_TIMEOUT_S = 0.5
#: the dead-letter stream keeps about this many records (the newest)
DEAD_LETTERS_KEPT = 10_000


class RedisBus:
    """One process's connection to the bus of one shop.

    Parameters
    ----------
    url : str
        ``redis://host:port/db``.
    shop : str
        The shop's name (its config's ``name``): the key prefix, so shops can share a Redis.
    timeout : float
        Seconds any command may take before it counts as a failure.
    """

    def __init__(self, url: str, shop: str, *, timeout: float = DEFAULT_TIMEOUT_S):
        self.url, self.timeout = url, timeout
        self.redis = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                             socket_connect_timeout=timeout)
        prefix = f"cartwheel:{shop}:"
        self.log_key, self.shared_key = prefix + "log", prefix + "shared"
        self.snapshot_key, self.channel = prefix + "snapshot", prefix + "snapshots"
        self.spend_key, self.cap_prefix = prefix + "spend", prefix + "cap:"
        self.dead_key = prefix + "dead"
        self._pubsub = None  # subscribed on the first wait_for_snapshot

    async def _call(self, what: str, awaitable):
        try:
            return await asyncio.wait_for(awaitable, self.timeout * 4)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise BusUnavailableError(f"the bus at {self.url} did not answer ({what}: "
                                      f"{type(exc).__name__}: {exc}); nothing of these requests "
                                      "counts: retry") from None

    async def close(self) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except (RedisError, OSError):
                pass  # closing anyway
        await self.redis.aclose()

    # ------------------------------------------------------------------ one config
    async def join(self, config_hash: str, source: str, *, salt: str | None = None,
                   replace: bool = False) -> tuple[str, str]:
        """Register this process's config (the first process sets it; ``replace``: the trainer
        sets it anew) and return the shop's (salt, generated token). A process whose config
        differs from the registered one is refused with both hashes and sources named."""
        key = self.shared_key
        fields = {"config_hash": config_hash, "config_source": source}
        if replace:
            await self._call("join", self.redis.hset(key, mapping=fields))
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                for name, value in fields.items():
                    pipe.hsetnx(key, name, value)
                await self._call("join", pipe.execute())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "salt", salt or secrets.token_hex(16))
            pipe.hsetnx(key, "token", secrets.token_urlsafe(24))
            pipe.hmget(key, ["config_hash", "config_source", "salt", "token"])
            *_, (registered, registered_source, shared_salt, token) = await self._call(
                "join", pipe.execute())
        if registered.decode() != config_hash:
            raise BusConfigError(
                f"this config ({source}, hash {config_hash}) differs from the one the shop's "
                f"processes on {self.url} run ({registered_source.decode()}, hash "
                f"{registered.decode()}): start every replica and the trainer with the same "
                "config (to roll out a new one, stop the replicas and start the trainer with "
                "--replace-config)")
        if salt is not None and shared_salt.decode() != salt:
            raise BusConfigError(
                f"the event log here was written with another privacy salt than the one the "
                f"shop's processes on {self.url} use: visitor hashes would not match. Start the "
                "trainer first on an existing log, or use a new data dir")
        return shared_salt.decode(), token.decode()

    # ------------------------------------------------------------------ the log
    async def append(self, entry: bytes, caps: Sequence[tuple[int, str, str, float, float]]
                     ) -> str:
        """Append one request group's entry and its cap records (``(cap index, visitor hash,
        event id, time, window_s)``) in one MULTI; returns the entry's id once Redis has it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.log_key, {"e": entry})
            for cap, visitor_hash, event_id, ts, window_s in caps:
                key = f"{self.cap_prefix}{cap}:{visitor_hash}"
                pipe.zadd(key, {event_id: ts})
                pipe.zremrangebyscore(key, "-inf", f"({ts - window_s!r}")
                pipe.expire(key, int(window_s) + 60)
            results = await self._call("append", pipe.execute())
        return results[0].decode()

    async def cap_counts(self, queries: Sequence[tuple[int, str, float]]) -> list[int]:
        """Per ``(cap index, visitor hash, since)``: the visitor's decisions under that cap
        since then (one round trip for a whole group)."""
        if not queries:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for cap, visitor_hash, since in queries:
                pipe.zcount(f"{self.cap_prefix}{cap}:{visitor_hash}", since, "+inf")
            return [int(n) for n in await self._call("caps", pipe.execute())]

    async def read(self, after: str, count: int, block_ms: int | None = None
                   ) -> list[tuple[str, bytes]]:
        """Up to ``count`` entries after id ``after``, oldest first, waiting up to
        ``block_ms`` for the first one."""
        got = await self._call("read", self.redis.xread({self.log_key: after}, count=count,
                                                        block=block_ms))
        return [(i.decode(), f[b"e"]) for _, entries in got for i, f in entries]

    async def dead_letter(self, letters) -> None:
        """Put refused records (:class:`bandit.scaleout.checks.DeadLetter`) on the dead-letter
        stream, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for letter in letters:
                pipe.xadd(self.dead_key, {"entry": letter.entry_id, "kind": letter.kind,
                                          "reason": letter.reason, "record": letter.record},
                          maxlen=DEAD_LETTERS_KEPT, approximate=True)
            await self._call("dead letter", pipe.execute())

    async def dead_letters(self, count: int = 100) -> list[dict]:
        """The newest dead letters, newest first (for people and tests)."""
        got = await self._call("dead letters", self.redis.xrevrange(self.dead_key,
                                                                    count=count))
        return [{k.decode(): v for k, v in fields.items()} for _, fields in got]

    async def trim(self, upto: str) -> int:
        """Drop entries before id ``upto`` (the trainer has committed them)."""
        return await self._call("trim", self.redis.xtrim(self.log_key, minid=upto))

    async def backlog(self, after: str) -> tuple[int, float]:
        """(entries after ``after``, seconds between the oldest of them and now)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(self.log_key, f"({after}", "+", count=1)
            pipe.xrange(self.log_key, "-", "+", count=1)
            pipe.xlen(self.log_key)
            pipe.time()
            oldest, first, length, (sec, usec) = await self._call("backlog", pipe.execute())
        if not oldest:
            return 0, 0.0
        # the stream holds what is not trimmed yet: the entries after the offset, and the
        # offset's own entry while it is still there
        held = int(length) - (1 if first and first[0][0].decode() == after else 0)
        first_ms = int(oldest[0][0].split(b"-")[0])
        return held, max(0.0, sec + usec / 1e6 - first_ms / 1000)

    async def now(self) -> float:
        """Redis's clock (stream ids are its milliseconds)."""
        sec, usec = await self._call("time", self.redis.time())
        return sec + usec / 1e6

    # ------------------------------------------------------------------ snapshots
    async def publish_snapshot(self, version: int, meta: bytes, state: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.snapshot_key, mapping={"version": version, "meta": meta,
                                                  "state": state})
            pipe.publish(self.channel, str(version))
            await self._call("publish", pipe.execute())

    async def snapshot_version(self) -> int | None:
        version = await self._call("poll", self.redis.hget(self.snapshot_key, "version"))
        return None if version is None else int(version)

    async def snapshot(self) -> tuple[int, bytes, bytes] | None:
        """(version, meta, state) of the newest published snapshot, or None."""
        got = await self._call("fetch", self.redis.hmget(self.snapshot_key,
                                                         ["version", "meta", "state"]))
        return None if got[0] is None else (int(got[0]), got[1], got[2])

    async def wait_for_snapshot(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for a published snapshot message; False on timeout (the
        caller polls anyway)."""
        pubsub = self._pubsub
        if pubsub is None:
            pubsub = self._pubsub = self.redis.pubsub()
            await self._call("subscribe", pubsub.subscribe(self.channel))
        try:
            msg = await asyncio.wait_for(
                pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout), timeout + 1)
        except (RedisError, OSError, asyncio.TimeoutError):
            self._pubsub = None  # subscribe again next time
            await asyncio.sleep(timeout)
            return False
        return msg is not None

    # ------------------------------------------------------------------ spend
    async def set_spend(self, day_start: float, spent: float, pacing: bytes = b"") -> None:
        await self._call("spend", self.redis.hset(self.spend_key, mapping={
            "day_start": repr(day_start), "spent": repr(spent), "pacing": pacing}))

    async def spend(self) -> tuple[float, float, bytes] | None:
        """(start of the budget day, spend on it, the encoded pacing price or b"") as the
        trainer last wrote them."""
        got = await self._call("spend", self.redis.hmget(self.spend_key,
                                                         ["day_start", "spent", "pacing"]))
        return None if got[0] is None else (float(got[0]), float(got[1]), got[2] or b"")
