"""The eligibility stage of ``decide``: request, frequency caps, incentive budget, shop rules.

Caps and spend are read from the event log itself (decisions per hashed visitor in the cap's
window; costs of conversions since the start of the budget's day), so they survive restarts and
expire with their windows without any state of their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bandit.domain.rules import Eligibility, apply_rules
from bandit.store.queries import CapCounts


def local_day(now: float, zone: ZoneInfo) -> tuple[float, float]:
    """[start, end) in epoch seconds of the day in ``zone`` that contains ``now``: midnight
    to the next midnight by the wall clock (a DST day is 23 or 25 hours long)."""
    day = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp(), (day + timedelta(days=1)).timestamp()


class SpendTracker:
    """Today's incentive spend (cost of converted decisions), by the budget's time zone.

    Kept in memory as sums per 15-minute bucket (every time zone's midnight falls on one), read
    from the log once when the engine opens and added to as conversions close: asking for the
    day's spend never scans the log, on a new day neither.
    """

    BUCKET_S = 900.0

    def __init__(self, store, budget):
        self.budget = budget
        self.zone = ZoneInfo(budget.timezone) if budget else None
        self._buckets: dict[int, float] = {}
        if store is not None and budget is not None:
            self._buckets = dict(store.spend_buckets(float("-inf"), self.BUCKET_S))
        self._day = (0.0, 0.0)  # [start, end) of the day last asked about
        self._day_spent = 0.0

    def day_start(self, now: float) -> float:
        """Start (epoch seconds) of the budget day that contains ``now``."""
        start, end = self._day
        if not start <= now < end:  # asked on every decision: compute once per day
            start, end = self._day = local_day(now, self.zone)
            first, last = int(start // self.BUCKET_S), int(end // self.BUCKET_S)
            self._day_spent = sum(self._buckets.get(b, 0.0) for b in range(first, last))
        return start

    def spent(self, now: float) -> float:
        """Spend so far on the budget day that contains ``now``."""
        self.day_start(now)
        return self._day_spent

    def add(self, ts: float, cost: float) -> None:
        """A conversion with ``cost`` closed at ``ts``."""
        bucket = int(ts // self.BUCKET_S)
        self._buckets[bucket] = self._buckets.get(bucket, 0.0) + cost
        start, end = self._day
        if start <= ts < end:
            self._day_spent += cost

    def bucket_spend(self, bucket: int) -> float:
        """Spend of conversions closed in one bucket (``floor(ts / BUCKET_S)``)."""
        return self._buckets.get(bucket, 0.0)

    def first_bucket(self) -> int | None:
        """The oldest bucket with spend, or None."""
        return min(self._buckets, default=None)

    def exhausted(self, now: float) -> bool:
        return self.budget is not None and self.spent(now) >= self.budget.daily


class SharedSpend(SpendTracker):
    """Today's spend as the trainer last published it (a decide replica's view): it learns
    of conversions only from the trainer, so the budget's hard stop comes late by what closed
    since the trainer's last publication (docs/architecture.md, "Scale-out")."""

    def __init__(self, budget):
        super().__init__(None, budget)
        self._shared = (float("nan"), 0.0)  # (day start, spend) as published

    def set(self, day_start: float, spent: float) -> None:
        self._shared = (day_start, spent)

    def spent(self, now: float) -> float:
        start, spent = self._shared
        return spent if self.day_start(now) == start else 0.0  # a new day starts at 0


class CapCounter:
    """Which frequency caps each visitor of a batch has reached: one bounded count query per
    batch (:class:`bandit.store.queries.CapCounts`), plus the choices made for a visitor
    earlier in the same request group."""

    def __init__(self, caps, actions):
        self.caps = tuple(caps)
        self.covered = [tuple(a.id for a in actions if cap.covers(a)) for cap in self.caps]
        # per cap: which actions (in config order) it removes once reached
        self.removes = [tuple(cap.covers(a) for a in actions) for cap in self.caps]
        self.query = CapCounts(self.covered, [c.max_per_visitor for c in self.caps])

    def reached(self, store, visitor_hashes: list[str], now: float,
                earlier: dict[str, list[str]] | None = None,
                holdout: list[bool] | None = None) -> list[list[tuple[bool, ...]]]:
        """Per visitor, the ``removes`` masks of the caps they have reached at ``now``;
        ``earlier`` adds actions chosen for a visitor earlier in the same request group
        (decided but not yet logged); ``holdout``: per visitor, whether to count their
        would-have draws (a holdout visitor is shown only the control)."""
        rows = store.cap_counts(self.query, visitor_hashes,
                                [now - cap.window_s for cap in self.caps], holdout)
        if earlier:
            rows = [[used + sum(a in ids for a in earlier.get(h, ()))
                     for used, ids in zip(counts, self.covered)]
                    for h, counts in zip(visitor_hashes, rows)]
        return [[removes for cap, removes, used in zip(self.caps, self.removes, counts)
                 if used >= cap.max_per_visitor] for counts in rows]


class Guardrails:
    """Computes, per request, which actions may be shown and whether one is forced."""

    def __init__(self, config, store, spend: SpendTracker | None = None):
        self.config, self.store = config, store  # a replica's store: its prefetched cap counts
        self.actions = config.actions
        self.ids = config.action_ids
        self.caps = CapCounter(config.caps, config.actions) if config.caps else None
        self.control = config.holdout.control
        self.spend = spend or SpendTracker(store, config.budget)

    @property
    def active(self) -> bool:
        return bool(self.config.rules or self.config.caps or self.config.budget)

    def capped(self, visitor_hash: str, action: str, now: float) -> bool:
        """Whether showing ``action`` to the visitor now would break a frequency cap they
        have reached (a deferred decision asked to be activated)."""
        if self.caps is None:
            return False
        k = self.ids.index(action) if action in self.ids else None
        reached = self.caps.reached(self.store, [visitor_hash], now)[0]
        return k is not None and any(removes[k] for removes in reached)

    def eligibility(self, visitor_hashes: list[str], contexts: list[dict],
                    requested: list[tuple[str, ...]], now: float,
                    earlier: dict[str, list[str]] | None = None,
                    controls: list[str] | None = None,
                    holdout: list[bool] | None = None) -> list[Eligibility]:
        """Eligibility of a batch of requests (one cap query for all of them); ``earlier``:
        actions already chosen per visitor in this request group (they count for caps);
        ``controls``: per request, what it gets when nothing is eligible (its placement's
        control; the holdout's by default); ``holdout``: per request, whether it is a holdout
        visitor's would-have draw (caps count their earlier would-have draws)."""
        reached = (self.caps.reached(self.store, visitor_hashes, now, earlier, holdout)
                   if self.caps
                   else [()] * len(visitor_hashes))
        broke = self.spend.exhausted(now)
        result = []
        controls = controls or [self.control] * len(visitor_hashes)
        for context, wanted, caps_reached, control in zip(contexts, requested, reached,
                                                          controls):
            mask = [a in wanted for a in self.ids]
            for removes in caps_reached:
                mask = [m and not r for m, r in zip(mask, removes)]
            if broke:
                mask = [m and not a.costed for m, a in zip(mask, self.actions)]
            result.append(apply_rules(self.config.rules, context, mask, self.ids, control))
        return result
