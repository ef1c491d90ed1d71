"""The bus on Redis Streams: every Redis command of cartwheel lives in this module.

Keys, all under ``cartwheel:<shop>:`` (docs/architecture.md, "Scale-out"):

* ``log`` (stream): one entry per request group of a replica (field ``e``: a
  :class:`~bandit.scaleout.records.BusEntry`); the trainer reads it from the offset kept in its own
  store and trims what it has committed.
* ``cap:<i>:<visitor hash>`` (sorted set): the visitor's decisions covered by frequency cap
  ``i`` (member: event id, score: time), written in the same MULTI as the group's entry and
  expiring with the cap's window.
* ``shared`` (hash): the config hash every process must run and a fingerprint of the hash key
  (an HMAC keyed by it: it tells whether two processes hold the same key and nothing about
  the key). No secret ever goes into Redis (:mod:`bandit.scaleout.secrets`).
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

Redis is a network service, not a trusted store: every entry, snapshot and spend record
carries an HMAC-SHA256 (field ``mac``) keyed by the shop's bus key, which is never in Redis;
what does not verify is refused (an entry goes to the dead-letter stream, a snapshot or a
spend record is not used) and logged. The URL's password never appears in an error
(:func:`bandit.scaleout.secrets.redact`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bandit.domain.errors import BusConfigError, BusUnavailableError
from bandit.scaleout.secrets import redact

log = logging.getLogger("cartwheel.bus")

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
    key : bytes
        The shop's bus key (authenticates what this process writes and checks what it
        reads); None only for tools that read what needs no check.
    """

    def __init__(self, url: str, shop: str, *, timeout: float = DEFAULT_TIMEOUT_S,
                 key: bytes | None = None, previous_key: bytes | None = None):
        self.url, self.timeout, self.key = redact(url), timeout, key
        #: the key a rotation replaces: what it signed still verifies, nothing new is signed
        self.previous_key = previous_key
        self.redis = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                             socket_connect_timeout=timeout)
        prefix = f"cartwheel:{shop}:"
        self.log_key, self.shared_key = prefix + "log", prefix + "shared"
        self.snapshot_key, self.channel = prefix + "snapshot", prefix + "snapshots"
        self.spend_key, self.cap_prefix = prefix + "spend", prefix + "cap:"
        self.dead_key = prefix + "dead"
        self._pubsub = None  # subscribed on the first wait_for_snapshot

    def mac(self, *parts: bytes, key: bytes | None = None) -> bytes:
        """HMAC-SHA256 under the bus key (or ``key``) of ``parts`` (each length-prefixed: no
        two different records sign alike)."""
        key = key or self.key
        if key is None:
            raise BusConfigError("this process has no bus key (CARTWHEEL_BUS_KEY)")
        h = hmac.new(key, digestmod=hashlib.sha256)
        for part in parts:
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h.hexdigest().encode()

    def verified(self, mac: bytes | None, *parts: bytes) -> bool:
        """Whether ``mac`` signs ``parts`` under the bus key, or the one a rotation replaces."""
        if mac is None:
            return False
        keys = [self.key] + ([self.previous_key] if self.previous_key else [])
        return any(hmac.compare_digest(mac, self.mac(*parts, key=k)) for k in keys)

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
    async def join(self, config_hash: str, source: str, *, fingerprint: str,
                   replace: bool = False, hash_key: str | None = None) -> None:
        """Register this process's config and hash-key ``fingerprint`` (the first process sets
        them; ``replace``: the trainer sets the config anew). A process whose config or hash
        key differs from the registered one is refused, saying which. A shop of the release
        before kept its salt and token here: a process whose ``hash_key`` is that salt removes
        both (one that holds another key is refused, told where the old one is)."""
        key = self.shared_key
        legacy = await self._call("join", self.redis.hget(key, "salt"))
        if legacy is not None:
            if hash_key is None or legacy.decode() != hash_key:
                raise BusConfigError(
                    f"the shop's processes on {self.url} hashed visitor ids with the key the "
                    f"previous release kept in Redis: set CARTWHEEL_HASH_KEY to it (`redis-cli "
                    f"HGET {key} salt`), then it leaves Redis; another key would start new "
                    "visitor hashes")
            await self._call("join", self.redis.hdel(key, "salt", "token"))
            log.warning("the previous release's salt and token left %s", self.url)
        fields = {"config_hash": config_hash, "config_source": source}
        if replace:
            await self._call("join", self.redis.hset(key, mapping=fields))
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                for name, value in fields.items():
                    pipe.hsetnx(key, name, value)
                await self._call("join", pipe.execute())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "fingerprint", fingerprint)
            pipe.hmget(key, ["config_hash", "config_source", "fingerprint"])
            *_, (registered, registered_source, registered_print) = await self._call(
                "join", pipe.execute())
        if registered.decode() != config_hash:
            raise BusConfigError(
                f"this config ({source}, hash {config_hash}) differs from the one the shop's "
                f"processes on {self.url} run ({registered_source.decode()}, hash "
                f"{registered.decode()}): start every replica and the trainer with the same "
                "config (to roll out a new one, stop the replicas and start the trainer with "
                "--replace-config)")
        if registered_print.decode() != fingerprint:
            raise BusConfigError(
                f"this process's hash key (CARTWHEEL_HASH_KEY) is not the one the shop's "
                f"processes on {self.url} use: visitor hashes would not match. Give every "
                "process the same key")


    # ------------------------------------------------------------------ the log
    async def append(self, entry: bytes, caps: Sequence[tuple[int, str, str, float, float]]
                     ) -> str:
        """Append one request group's entry and its cap records (``(cap index, visitor hash,
        event id, time, window_s)``) in one MULTI; returns the entry's id once Redis has it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.log_key, {"e": entry, "mac": self.mac(entry)})
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
                   ) -> list[tuple[str, bytes, bool]]:
        """Up to ``count`` entries after id ``after``, oldest first, waiting up to
        ``block_ms`` for the first one: (id, bytes, whether the bus key signed them)."""
        got = await self._call("read", self.redis.xread({self.log_key: after}, count=count,
                                                        block=block_ms))
        out = []
        for _, entries in got:
            for i, fields in entries:
                raw = fields.get(b"e", b"")
                out.append((i.decode(), raw, self.verified(fields.get(b"mac"), raw)))
        return out

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
        mac = self.mac(str(version).encode(), meta, state)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.snapshot_key, mapping={"version": version, "meta": meta,
                                                  "state": state, "mac": mac})
            pipe.publish(self.channel, str(version))
            await self._call("publish", pipe.execute())

    async def snapshot_version(self) -> int | None:
        version = await self._call("poll", self.redis.hget(self.snapshot_key, "version"))
        return None if version is None else int(version)

    async def snapshot(self) -> tuple[int, bytes, bytes] | None:
        """(version, meta, state) of the newest published snapshot, or None (also when it is
        not signed with the bus key: refused and logged, never used)."""
        got = await self._signed("fetch", self.snapshot_key, ("version", "meta", "state"),
                                 "a published model")
        try:
            return None if got is None else (int(got[0]), got[1], got[2])
        except ValueError:
            return None

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
        fields = (repr(day_start).encode(), repr(spent).encode(), pacing)
        await self._call("spend", self.redis.hset(self.spend_key, mapping={
            "day_start": fields[0], "spent": fields[1], "pacing": pacing,
            "mac": self.mac(*fields)}))

    async def spend(self) -> tuple[float, float, bytes] | None:
        """(start of the budget day, spend on it, the encoded pacing price or b"") as the
        trainer last wrote them."""
        got = await self._signed("spend", self.spend_key, ("day_start", "spent", "pacing"),
                                 "the spend record")
        try:
            return None if got is None else (float(got[0]), float(got[1]), got[2])
        except ValueError:
            return None

    async def _signed(self, what: str, key: str, fields: tuple[str, ...], name: str
                      ) -> list[bytes] | None:
        """The ``fields`` of hash ``key`` when its ``mac`` verifies; None when it is missing,
        or forged (refused and logged: never used)."""
        *got, mac = await self._call(what, self.redis.hmget(key, [*fields, "mac"]))
        if got[0] is None:
            return None
        got = [value or b"" for value in got]
        if not self.verified(mac, *got):
            log.error("%s on %s is not signed with the shop's bus key: refused (forged, or a "
                      "process with another CARTWHEEL_BUS_KEY)", name, self.url)
            return None
        return got


def fingerprint(hash_key: str) -> str:
    """What the bus keeps of the hash key: an HMAC keyed by it of a fixed label (equal for
    equal keys; the key cannot be found from it).

    >>> fingerprint("k1") == fingerprint("k1") != fingerprint("k2")
    True
    """
    return hmac.new(hash_key.encode(), b"cartwheel hash key fingerprint v1",
                    hashlib.sha256).hexdigest()[:32]
