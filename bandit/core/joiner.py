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

An order sent by visitor id (:meth:`Joiner.order`) is attributed to every decision of that
visitor still open inside its window, at every placement: a visitor who saw three decisions
before buying gets all three credited. Deferred decisions (docs/architecture.md, "Placements")
count only once activated: an order by visitor skips the others, an outcome by event id for one
is refused (:class:`InactiveEventError`), and one never activated closes unlearned ("inactive")
when its window passes. ``redeemed`` names the incentives an order actually used: only those
are charged (to the event's profit and the budget).

Closing writes one ``closed`` row; the ``learn`` callback receives the closed events that feed
the model (randomized treatment decisions, activated when deferred) in ``closed.seq`` order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bandit.config.shop import Attribution
from bandit.domain.errors import (
    ClosedEventError,
    InactiveEventError,
    OutcomeConflictError,
    UnknownEventError,
    WindowClosedError,
)
from bandit.domain.objective import Objective
from bandit.domain.records import Action
from bandit.store.events import EventStore, StoredDecision

#: an order sent by visitor id closes at most this many of the visitor's newest open decisions
#: (a crawler reusing one id must not make one order a scan of its history)
MAX_ORDER_EVENTS = 1000


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


#: meta key: every decision up to this seq is closed (expiry's watermark, as last committed)
CLOSED_THROUGH_KEY = "closed_through"


class Joiner:
    """Applies the event lifecycle on an :class:`EventStore` (writes only; the caller commits)."""

    def __init__(self, store: EventStore, attribution: Attribution, objective: Objective,
                 actions: Mapping[str, Action], learn: Callable[[list[Closing]], None],
                 on_cost: Callable[[float, float], None] | None = None):
        self.store, self.attribution, self.objective = store, attribution, objective
        self.actions, self.learn, self.on_cost = actions, learn, on_cost
        self.closed_total = store.max_seq("closed")  # rows are never deleted: O(log n)
        # start where the last expiry left off (a store before the key: from the log's start),
        # so opening a long log does not walk its closed part
        self._watermark = int(store.get_meta(CLOSED_THROUGH_KEY) or 0)
        known = self._watermark
        self._advance_watermark(persist=False)
        if self._watermark > known:
            store.set_meta(CLOSED_THROUGH_KEY, str(self._watermark))  # once for an older store
            store.commit()

    def outcome(self, event_id: str, converted: bool, order_value: float,
                outcome_id: str | None, now: float, redeemed: frozenset | None = None) -> str:
        """Record an outcome checked by :func:`check_outcome`; returns "recorded" or
        "duplicate"."""
        state = self.store.lookup(event_id, outcome_id)
        if state.seen_by_order:  # this order came by visitor id already
            return "duplicate"
        if state.seen_for is not None:
            if state.seen_for == event_id:
                return "duplicate"
            raise OutcomeConflictError("this outcome_id was already used for another event; "
                                       "each order needs its own id", field="outcome_id")
        if state.decided_at is None:
            raise UnknownEventError(f"unknown event {event_id!r}", field="event_id")
        if state.closed:
            raise ClosedEventError(f"event {event_id!r} is already closed; its reward was learned",
                                   field="event_id")
        self._check_window(event_id, state.decided_at, now, "the outcome was not recorded")
        if state.deferred and not state.activated:
            raise InactiveEventError(
                f"event {event_id!r} was decided at a deferred placement and never activated: "
                "POST /v1/activate when it is shown, or send the order by visitor_id (which "
                "skips decisions never shown)", field="event_id")
        self.store.add_outcome(event_id, now, converted, float(order_value), outcome_id)
        if converted:  # only now is the decision itself needed (most outcomes do not convert)
            self._convert(self.store.decision(event_id), now, float(order_value), redeemed)
        return "recorded"

    def order(self, visitor_hash: str, converted: bool, order_value: float,
              outcome_id: str | None, now: float, redeemed: frozenset | None = None
              ) -> tuple[str, int]:
        """Record an order sent by visitor id: ("recorded", decisions it closed), ("duplicate",
        0) for an ``outcome_id`` seen before, or ("unattributed", 0) when the visitor has no
        open decision inside its window (recorded all the same, so a retry is a duplicate and
        never attributed late)."""
        if outcome_id is not None and self.store.order_seen(outcome_id):
            return "duplicate", 0
        found = self.store.visitor_open(visitor_hash, now - self.attribution.window_s,
                                        MAX_ORDER_EVENTS)
        self.store.add_order(outcome_id, now, converted, float(order_value),
                             [d.event_id for d in found])
        if not found:
            return "unattributed", 0
        if converted:
            for d in found:  # the order counts once per visitor in the report: 1/N each
                self._convert(d, now, float(order_value), redeemed, share=1.0 / len(found))
        return "recorded", len(found)

    def activate(self, event_id: str, now: float,
                 capped: Callable[[StoredDecision, float], bool] | None = None) -> str:
        """A deferred decision is to be shown: "activated", "duplicate" when it was already
        active (activated before, or not deferred), or "capped" when ``capped(decision,
        now)`` says showing it now would break a frequency cap the visitor reached since it
        was decided (then it is not shown, and closes unlearned when its window passes)."""
        state = self.store.lookup(event_id, None)
        if state.decided_at is None:
            raise UnknownEventError(f"unknown event {event_id!r}", field="event_id")
        if not state.deferred or state.activated:
            return "duplicate"
        if state.closed:
            raise ClosedEventError(f"event {event_id!r} is already closed", field="event_id")
        self._check_window(event_id, state.decided_at, now,
                           "it was not activated and closes unlearned")
        if capped is not None and capped(self.store.decision(event_id), now):
            return "capped"
        self.store.add_activation(event_id, now)
        return "activated"

    def _check_window(self, event_id: str, decided_at: float, now: float, what: str) -> None:
        if decided_at < now - self.attribution.window_s:  # the same test as expiry's
            raise WindowClosedError(
                f"event {event_id!r}: its attribution window of {self.attribution.window_s:g} s "
                f"has closed; {what}", field="event_id")

    def _convert(self, decision: StoredDecision, now: float, order_value: float,
                 redeemed: frozenset | None, share: float = 1.0) -> None:
        """Close ``decision`` with a conversion; its incentive is charged unless ``redeemed``
        says the order did not use it."""
        action = self.actions.get(decision.action)
        charged = action is not None and (redeemed is None or action.id in redeemed)
        cost = action.incentive_cost(order_value) if charged else 0.0
        reward = float(self.objective.reward(True, order_value, cost))
        self._close(decision, now, "converted", True, order_value, cost, reward, share=share)
        if self.on_cost is not None and cost:
            self.on_cost(now, cost)

    def expire(self, now: float, limit: int | None = None) -> int:
        """Close open events whose attribution window ended before ``now``, oldest first:
        every one of them, or at most ``limit`` (call again while it returns ``limit``).
        A deferred decision never activated closes "inactive", unlearned."""
        cutoff = now - self.attribution.window_s
        total, after = 0, self._watermark
        upto = self.store.last_seq_before(cutoff, after)  # once: nothing older is logged now
        while (limit is None or total < limit) and after < upto:
            chunk = 10_000 if limit is None else min(10_000, limit - total)
            batch = self.store.expired(cutoff, after, upto, chunk)
            closings = [self._close(d, now, "expired" if active else "inactive", False, 0.0,
                                    0.0, self.attribution.default_reward, defer=True,
                                    active=active) for d, active in batch]
            learned = [c for c in closings if c is not None]
            if learned:
                self.learn(learned)
            total += len(batch)
            if len(batch) < chunk:
                break
            after = batch[-1][0].seq  # everything open and expired up to here is closed now
        self._advance_watermark()
        # decisions made before the cutoff and closed have a final outcome (the report's
        # per-action KPIs count only those: bandit.store.aggregates, final_totals)
        self.store.mark_final(min(upto, self._watermark))
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

    def _advance_watermark(self, persist: bool = True) -> None:
        # every decision with seq <= watermark is closed: expiry scans only what is after it;
        # kept in meta with the group's writes, so the next start begins from it
        oldest = self.store.oldest_open_seq(self._watermark)
        before = self._watermark
        self._watermark = (oldest - 1) if oldest is not None else self.store.max_seq("decisions")
        if persist and self._watermark > before:
            self.store.set_meta(CLOSED_THROUGH_KEY, str(self._watermark))

    def _close(self, decision: StoredDecision, now: float, reason: str, converted: bool,
               order_value: float, cost: float, reward: float, defer: bool = False,
               active: bool = True, share: float = 1.0):
        learn = active and learnable(decision)
        self.closed_total += 1
        seq = self.store.add_closed(decision.event_id, now, reason, converted, order_value, cost,
                                    reward, learn, share)
        closing = Closing(seq, decision, reward, converted, order_value, cost)
        if not learn:
            return None
        if not defer:
            self.learn([closing])
        return closing
