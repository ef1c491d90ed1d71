"""What an outcome may be: the one check of the engine, a replica and a log reader.

An outcome is refused before anything is written (:class:`CartwheelError` naming the field):
``converted`` must be a bool, ``order_value`` a finite number in ``[0, max_order_value]``, and
an ``outcome_id`` a short string; only its keyed hash travels on or is stored.
"""

from __future__ import annotations

from bandit.domain.errors import CartwheelError
from bandit.domain.objective import Objective
from bandit.domain.privacy import hash_outcome_id

MAX_OUTCOME_ID = 256


def check_event_id(event_id) -> None:
    """Refuse what cannot be an event id (a decision's answer) before looking it up: the one
    check of outcomes and activations, on one process and on a replica."""
    if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
        raise CartwheelError("event_id must be the event id a decision returned",
                             field="event_id")


def check_outcome(event_id, converted, order_value, outcome_id, objective: Objective,
                  salt: bytes) -> str | None:
    """Refuse an outcome that cannot be joined (:class:`CartwheelError` naming the field), before
    anything is written; returns the keyed hash of ``outcome_id`` (None without one). The one
    check of the engine and of a replica, which takes outcomes for the trainer. ``event_id``
    None: an order sent by visitor id (the caller checks the visitor id).

    An ``outcome_id`` is opaque: only its keyed hash is kept, so it is never refused for its
    form (a long numeric order number passes a card's checksum one time in ten).

    >>> check_outcome("e1", True, 42.0, None, Objective(), b"salt") is None
    True
    >>> check_outcome("e1", True, float("nan"), None, Objective(), b"salt")
    Traceback (most recent call last):
    ...
    bandit.domain.errors.CartwheelError: order_value must be a number in [0, 100000] ([objective] max_order_value), got nan
    """
    if event_id is not None:
        check_event_id(event_id)
    check_order(converted, order_value, objective)
    if outcome_id is None:
        return None
    if not isinstance(outcome_id, str) or not 0 < len(outcome_id) <= MAX_OUTCOME_ID:
        raise CartwheelError(f"outcome_id must be a non-empty string of at most "
                             f"{MAX_OUTCOME_ID} characters", field="outcome_id")
    return hash_outcome_id(outcome_id, salt)


def check_order(converted, order_value, objective: Objective) -> None:
    """Refuse an outcome's ``converted`` unless a bool and its ``order_value`` unless a
    number in ``[0, max_order_value]`` (:class:`CartwheelError` naming the field): the one
    rule for outcomes online and for the rows of a log (``bandit.store.logread``)."""
    if not isinstance(converted, bool):
        raise CartwheelError("converted must be true or false", field="converted")
    limit = objective.max_order_value
    # the range test refuses NaN and infinity too, and never turns a huge int into a float
    if (isinstance(order_value, bool) or not isinstance(order_value, (int, float))
            or not 0 <= order_value <= limit):
        raise CartwheelError(f"order_value must be a number in [0, {limit:g}] "
                             f"([objective] max_order_value), got {order_value!r}",
                             field="order_value")


def check_redeemed(redeemed, action_ids) -> frozenset | None:
    """The incentives an order used (``redeemed``: a list of action ids, or None for "every
    attributed incentive"), refused (:class:`CartwheelError`, field ``redeemed``) unless each
    is one of the shop's ``action_ids``.

    >>> sorted(check_redeemed(["discount_5"], ("none", "discount_5")))
    ['discount_5']
    >>> check_redeemed(["coupon"], ("none",))
    Traceback (most recent call last):
    ...
    bandit.domain.errors.CartwheelError: redeemed: unknown action 'coupon'; known: ['none']
    """
    if redeemed is None:
        return None
    if isinstance(redeemed, str) or not isinstance(redeemed, (list, tuple)):
        raise CartwheelError("redeemed must be a list of action ids", field="redeemed")
    unknown = [a for a in redeemed if not isinstance(a, str) or a not in action_ids]
    if unknown:
        raise CartwheelError(f"redeemed: unknown action {str(unknown[0])[:64]!r}; known: "
                             f"{list(action_ids)}", field="redeemed")
    return frozenset(redeemed)
