"""The delayed-reward join: outcomes meet their decisions, each event closes exactly once.

Lifecycle (docs/architecture.md): ``decide`` opens an event. A converted outcome closes it at
once with the objective's reward. A non-converted outcome is recorded and leaves it open. When
the attribution window passes, an open event closes with the default reward. Attribution is by
time only: an outcome that arrives after its decision's window is refused
(:class:`WindowClosedError`) whether or not expiry has closed the event yet. A repeated
``outcome_id`` for the same event is always "duplicate" (also after close or restart); one
already used for another event raises :class:`OutcomeConflictError`; a new outcome for a
closed event raises :class:`ClosedEventError`, for an unknown event :class:`UnknownEventError`.
``outcome_id`` reaches the joiner as its keyed hash (the store never sees the id itself).

Closing writes one ``closed`` row; the ``learn`` callback receives the closed events that feed
the model (randomized treatment decisions) in ``closed.seq`` order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bandit.config.shop import Attribution
from bandit.domain.errors import (
    ClosedEventError,
    OutcomeConflictError,
    UnknownEventError,
    WindowClosedError,
)
from bandit.domain.objective import Objective
from bandit.domain.records import Action
from bandit.store.events import EventStore, StoredDecision


@dataclass(frozen=True, slots=True)
class Closing:
    """A closed event handed to the learner: the decision, its reward and its closed.seq."""

    seq: int
    decision: StoredDecision
    reward: float
    converted: bool = False
    order_value: float = 0.0
    cost: float = 0.0  # the incentive cost actually paid


def learnable(decision: StoredDecision) -> bool:
    """Only randomized treatment decisions teach the model (holdout and forced ones do not)."""
    return decision.group == "treatment" and decision.randomized


class Joiner:
    """Applies the event lifecycle on an :class:`EventStore` (writes only; the caller commits)."""

    def __init__(self, store: EventStore, attribution: Attribution, objective: Objective,
                 actions: Mapping[str, Action], learn: Callable[[list[Closing]], None],
                 on_cost: Callable[[float, float], None] | None = None):
        self.store, self.attribution, self.objective = store, attribution, objective
        self.actions, self.learn, self.on_cost = actions, learn, on_cost
        self.closed_total = store.count("closed")
        self._watermark = 0
        self._advance_watermark()

    def outcome(self, event_id: str, converted: bool, order_value: float,
                outcome_id: str | None, now: float) -> str:
        """Record an outcome checked by :func:`check_outcome`; returns "recorded" or
        "duplicate"."""
        decided_at, closed, seen_for = self.store.lookup(event_id, outcome_id)
        if seen_for is not None:
            if seen_for == event_id:
                return "duplicate"
            raise OutcomeConflictError("this outcome_id was already used for another event; "
                                       "each order needs its own id", field="outcome_id")
        if decided_at is None:
            raise UnknownEventError(f"unknown event {event_id!r}", field="event_id")
        if closed:
            raise ClosedEventError(f"event {event_id!r} is already closed; its reward was learned",
                                   field="event_id")
        if decided_at < now - self.attribution.window_s:  # the same test as expiry's
            raise WindowClosedError(
                f"event {event_id!r}: its attribution window of {self.attribution.window_s:g} s "
                "has closed; the outcome was not recorded", field="event_id")
        self.store.add_outcome(event_id, now, converted, float(order_value), outcome_id)
        if converted:  # only now is the decision itself needed (most outcomes do not convert)
            decision = self.store.decision(event_id)
            action = self.actions.get(decision.action)
            cost = action.incentive_cost(order_value) if action is not None else 0.0
            reward = float(self.objective.reward(True, order_value, cost))
            self._close(decision, now, "converted", True, float(order_value), cost, reward)
            if self.on_cost is not None and cost:
                self.on_cost(now, cost)
        return "recorded"

    def expire(self, now: float, limit: int | None = None) -> int:
        """Close open events whose attribution window ended before ``now``, oldest first:
        every one of them, or at most ``limit`` (call again while it returns ``limit``)."""
        cutoff = now - self.attribution.window_s
        total, after = 0, self._watermark
        upto = self.store.last_seq_before(cutoff, after)  # once: nothing older is logged now
        while (limit is None or total < limit) and after < upto:
            chunk = 10_000 if limit is None else min(10_000, limit - total)
            batch = self.store.expired(cutoff, after, upto, chunk)
            closings = [self._close(d, now, "expired", False, 0.0, 0.0,
                                    self.attribution.default_reward, defer=True) for d in batch]
            learned = [c for c in closings if c is not None]
            if learned:
                self.learn(learned)
            total += len(batch)
            if len(batch) < chunk:
                break
            after = batch[-1].seq  # everything open and expired up to here is closed now
        self._advance_watermark()
        return total

    def checkpoint(self) -> tuple[int, int]:
        """A request group's part (:mod:`bandit.core.unit_of_work`): closings counted and the
        closed-through watermark."""
        return self.closed_total, self._watermark

    def restore(self, token) -> None:
        if token is not None:
            self.closed_total, self._watermark = token

    @property
    def closed_through(self) -> int:
        """Every decision up to this seq has closed (as of the last expiry pass)."""
        return self._watermark

    def _advance_watermark(self) -> None:
        # every decision with seq <= watermark is closed: expiry scans only what is after it
        oldest = self.store.oldest_open_seq(self._watermark)
        self._watermark = (oldest - 1) if oldest is not None else self.store.max_seq("decisions")

    def _close(self, decision: StoredDecision, now: float, reason: str, converted: bool,
               order_value: float, cost: float, reward: float, defer: bool = False):
        learn = learnable(decision)
        self.closed_total += 1
        seq = self.store.add_closed(decision.event_id, now, reason, converted, order_value, cost,
                                    reward, learn)
        closing = Closing(seq, decision, reward, converted, order_value, cost)
        if not learn:
            return None
        if not defer:
            self.learn([closing])
        return closing
