"""The eligibility stage of ``decide``: request, frequency caps, incentive budget, shop rules.

Caps and spend are read from the event log itself (decisions per hashed visitor in the cap's
window; costs of conversions since the start of the budget's day), so they survive restarts and
expire with their windows without any state of their own.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .rules import Eligibility, apply_rules


class SpendTracker:
    """Today's incentive spend (cost of converted decisions), by the budget's time zone."""

    def __init__(self, store, budget):
        self.store, self.budget = store, budget
        self.zone = ZoneInfo(budget.timezone) if budget else None
        self._day_start, self._spent = None, 0.0

    def day_start(self, now: float) -> float:
        day = datetime.fromtimestamp(now, self.zone).replace(hour=0, minute=0, second=0,
                                                             microsecond=0)
        return day.timestamp()

    def spent(self, now: float) -> float:
        """Spend so far on the budget day that contains ``now``."""
        start = self.day_start(now)
        if start != self._day_start:  # first call or a new day: read it from the log
            self._day_start = start
            self._spent = float(self.store.db.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM closed WHERE converted = 1 AND ts >= ?",
                (start,)).fetchone()[0])
        return self._spent

    def add(self, ts: float, cost: float) -> None:
        """A conversion with ``cost`` closed at ``ts``."""
        if self._day_start is not None and ts >= self._day_start:
            self._spent += cost

    def exhausted(self, now: float) -> bool:
        return self.budget is not None and self.spent(now) >= self.budget.daily


class Guardrails:
    """Computes, per request, which actions may be shown and whether one is forced."""

    def __init__(self, config, store):
        self.config, self.store = config, store
        self.actions = config.actions
        self.ids = config.action_ids
        self.by_id = {a.id: a for a in config.actions}
        self.longest_cap_s = max((c.window_s for c in config.caps), default=0.0)
        self.control = config.holdout.control
        self.spend = SpendTracker(store, config.budget)

    @property
    def active(self) -> bool:
        return bool(self.config.rules or self.config.caps or self.config.budget)

    def shown(self, visitor_hash: str, since: float) -> list[tuple]:
        """(action, ts) of this visitor's decisions since ``since``."""
        return self.store.db.execute(
            "SELECT action, ts FROM decisions WHERE visitor_hash = ? AND ts >= ?",
            (visitor_hash, since)).fetchall()

    def eligibility(self, visitor_hash: str, context: dict, requested: tuple[str, ...],
                    now: float) -> Eligibility:
        mask = [a in requested for a in self.ids]
        # one read of the visitor's history serves every cap (each counts its own window)
        history = [(self.by_id[a], ts) for a, ts in
                   self.shown(visitor_hash, now - self.longest_cap_s) if a in self.by_id] \
            if self.config.caps else []
        for cap in self.config.caps:
            since = now - cap.window_s
            used = sum(1 for action, ts in history if ts >= since and cap.covers(action))
            if used >= cap.max_per_visitor:
                mask = [m and not cap.covers(a) for m, a in zip(mask, self.actions)]
        if self.spend.exhausted(now):
            mask = [m and not a.costed for m, a in zip(mask, self.actions)]
        return apply_rules(self.config.rules, context, mask, self.ids, self.control)
