"""``cartwheel train``: the one process that learns from what the decide replicas logged.

The trainer is an :class:`~bandit.core.engine.Engine` on its own data dir (``events.sqlite3`` in
the usual schema, so ``report``, ``export`` and ``replay`` work on it) that takes its request
groups from the bus instead of from HTTP (docs/architecture.md, "Scale-out"). Each step:

1. read up to ``batch`` entries after the offset its store holds, ingest them as one group
   (decisions, outcomes and the new offset in one transaction: exactly once across crashes);
2. expire events whose attribution window passed: by the trainer's clock when it has read
   everything (less ``EXPIRY_GRACE_S`` for outcomes still on their way), else by the time of
   the last entry read, so a trainer catching up never expires an event whose outcome waits
   in the unread part of the stream;
3. publish the model (at most every ``publish_every_s``) and today's spend (with the
   budget's pacing price, :mod:`bandit.core.pacing`);
4. trim the stream up to what its store committed.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Counter, Gauge

from bandit.core.pacing import encode as encode_price
from bandit.domain.errors import StorageError
from bandit.scaleout.ingest import IngestCounts, Ingester
from bandit.scaleout.replica import snapshot_bytes

log = logging.getLogger("cartwheel.trainer")
EXPIRY_GRACE_S = 5.0


def entry_time(entry_id: str) -> float:
    """Seconds since the epoch at which Redis took the entry (ids are its milliseconds).

    >>> entry_time("1700000000123-4")
    1700000000.123
    """
    return int(entry_id.split("-")[0]) / 1000


class Trainer:
    """The trainer's loop around ``engine`` and ``bus`` (see the module docstring)."""

    def __init__(self, engine, bus, *, batch: int = 5000, publish_every_s: float = 1.0):
        self.engine, self.bus = engine, bus
        self.batch, self.publish_every_s = batch, publish_every_s
        self.ingester = Ingester(engine)
        self.offset = self.ingester.bus_offset
        self.totals = IngestCounts()
        self.published: int | None = None  # model version last published
        self._published_at = float("-inf")
        self._spend: tuple[float, float, bytes] | None = None
        self.backlog = (0, 0.0)  # entries not yet read, age of the oldest (seconds)
        #: why the last step failed while it keeps failing (the trainer's /healthz says so)
        self.bus_error: str | None = None
        self.metrics = None

    async def step(self, block_ms: int | None = 100) -> int:
        """One read-ingest-expire-publish-trim round; returns the entries ingested."""
        entries = await self.bus.read(self.offset, self.batch, block_ms)
        engine = self.engine
        if entries:
            screened = self.ingester.screen(entries)
            if screened.dead:  # on the dead-letter stream before the offset moves past them
                for letter in screened.dead:
                    log.error("bus entry %s: %s refused: %s", letter.entry_id, letter.kind,
                              letter.reason)
                await self.bus.dead_letter(screened.dead)
            counts = self.ingester.ingest_screened(screened, entries[-1][0])
            self.offset = entries[-1][0]
            self._count(counts)
        now = engine.clock()
        caught_up = len(entries) < self.batch
        engine.expire(now=now - EXPIRY_GRACE_S if caught_up
                      else min(now, entry_time(self.offset)), limit=self.batch)
        await self.publish(now)
        if entries:
            await self.bus.trim(self.offset)
        return len(entries)

    async def publish(self, now: float | None = None, force: bool = False) -> bool:
        """Publish the model when it changed (at most every ``publish_every_s``, unless
        ``force``) and today's spend when it changed; returns whether a model went out."""
        engine = self.engine
        now = engine.clock() if now is None else now
        sent = False
        version = engine.model_version
        if version != self.published and (force
                                          or now - self._published_at >= self.publish_every_s):
            state, meta = engine.snapshot_contents()
            meta_bytes, state_bytes = await asyncio.to_thread(snapshot_bytes, state, meta)
            await self.bus.publish_snapshot(version, meta_bytes, state_bytes)
            self.published, self._published_at, sent = version, now, True
        if engine.config.budget is not None:
            spend = engine.guardrails.spend
            today = (spend.day_start(now), spend.spent(now), encode_price(engine.pacing_price))
            if today != self._spend:
                await self.bus.set_spend(*today)
                self._spend = today
        return sent

    def _count(self, counts: IngestCounts) -> None:
        t = self.totals
        t.entries += counts.entries
        t.decisions += counts.decisions
        t.duplicates += counts.duplicates
        t.malformed += counts.malformed
        t.outcomes.update(counts.outcomes)
        if self.metrics is not None:
            self.metrics.observe(counts)

    async def run(self, stop: asyncio.Event) -> None:
        """Step until ``stop`` is set; a bus or store that fails is retried with backoff
        (nothing is lost: the offset moves only with a committed ingest)."""
        delay = 0.1
        last_backlog = 0.0
        while not stop.is_set():
            try:
                await self.step()
                if time.monotonic() - last_backlog >= 1.0:
                    self.backlog = await self.bus.backlog(self.offset)
                    last_backlog = time.monotonic()
                delay, self.bus_error = 0.1, None
            except Exception as exc:
                self.bus_error = str(exc)
                if isinstance(exc, StorageError):
                    log.warning("trainer step failed (%s); retrying in %.1f s", exc, delay)
                else:
                    log.exception("trainer step failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)


class TrainerMetrics:
    """The trainer's own metrics, on the app's registry beside the engine's."""

    def __init__(self, trainer: Trainer, registry):
        self.ingested = Counter("cartwheel_trainer_decisions", "Decisions ingested from the bus",
                                registry=registry)
        self.entries = Counter("cartwheel_trainer_entries", "Bus entries ingested",
                               registry=registry)
        self.duplicates = Counter("cartwheel_trainer_duplicates", "Decisions and outcomes "
                                  "dropped as already ingested", registry=registry)
        self.malformed = Counter("cartwheel_trainer_malformed", "Bus entries or records "
                                 "refused by the checks (on the dead-letter stream)",
                                 registry=registry)
        self.outcomes = Counter("cartwheel_trainer_outcomes", "Outcomes ingested, by status "
                                "(recorded, duplicate, unknown_event, event_closed, "
                                "window_closed, outcome_id_conflict)", ["status"],
                                registry=registry)
        Gauge("cartwheel_trainer_lag_entries", "Bus entries not yet ingested",
              registry=registry).set_function(lambda: trainer.backlog[0])
        Gauge("cartwheel_trainer_lag_seconds", "Age of the oldest entry not yet ingested",
              registry=registry).set_function(lambda: trainer.backlog[1])
        Gauge("cartwheel_published_model_version", "Model version last published to replicas",
              registry=registry).set_function(lambda: trainer.published or 0)
        trainer.metrics = self

    def observe(self, counts: IngestCounts) -> None:
        self.ingested.inc(counts.decisions)
        self.entries.inc(counts.entries)
        self.duplicates.inc(counts.duplicates)
        self.malformed.inc(counts.malformed)
        for status, n in counts.outcomes.items():
            self.outcomes.labels(status).inc(n)
