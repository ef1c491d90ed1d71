"""Frozen records that flow between modules.

Every decision has one shape, logged once and fed back unchanged (see docs/architecture.md):
``Action`` describes an intervention, ``Decision`` is what ``Engine.decide`` answers,
``Outcome`` is what the order pipeline reports and ``LoggedEvent`` is the full record the
store keeps.

>>> a = Action(id="discount_10", kind="incentive", cost_pct=10.0)
>>> a.incentive_cost(80.0)
8.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ACTION_KINDS = ("none", "banner", "incentive", "upsell", "cross_sell")
#: how a decision's notes (``LoggedEvent.decision_notes``) are stored: little-endian float64s
NOTES_DTYPE = "<f8"


def pack_notes(values) -> bytes:
    """A promotion gate's notes for one decision as the record keeps them.

    >>> unpack_notes(pack_notes([1.0, 0.25])).tolist()
    [1.0, 0.25]
    """
    return np.asarray(values, dtype=NOTES_DTYPE).tobytes()


def unpack_notes(blob: bytes) -> np.ndarray:
    """The numbers :func:`pack_notes` stored."""
    return np.frombuffer(blob, dtype=NOTES_DTYPE)
Group = Literal["treatment", "holdout"]
#: the placement of a shop that declares none: every action, decided at one point
DEFAULT_PLACEMENT = "default"
#: ``activation`` values: learned as soon as decided, or only once the page says it was shown
ACTIVATIONS = ("immediate", "deferred")


@dataclass(frozen=True, slots=True)
class Action:
    """One intervention a shop can show.

    Parameters
    ----------
    id : str
        Stable identifier used in requests, logs and reports.
    kind : str
        One of ``ACTION_KINDS``.
    cost_pct : float
        Incentive cost as a percentage of the order value, paid only on conversion.
    cost_fixed : float
        Fixed incentive cost per converted order (e.g. the shipping fee the shop absorbs).
    attributes : tuple of (str, float)
        Descriptive numeric attributes, used as action features by policies that want them.
    """

    id: str
    kind: str = "none"
    cost_pct: float = 0.0
    cost_fixed: float = 0.0
    attributes: tuple[tuple[str, float], ...] = ()

    @property
    def costed(self) -> bool:
        """Whether showing this action can cost money (it counts against incentive budgets)."""
        return self.cost_pct > 0 or self.cost_fixed > 0

    def incentive_cost(self, order_value: float) -> float:
        """Cost of this incentive for a converted order of ``order_value``."""
        return self.cost_pct / 100.0 * order_value + self.cost_fixed


@dataclass(frozen=True, slots=True)
class Placement:
    """A decision point of the storefront (a cart slot, an exit pop-up): its own actions and
    its own model (docs/architecture.md, "Placements").

    Parameters
    ----------
    id : str
        Named by decide requests and carried by every decision record.
    actions : tuple of str
        The shop's action ids decided here (a subset, in the shop's order).
    spec : str
        The policy spec of this placement's model.
    control : str
        What its holdout visitors (and a request nothing is eligible for) get here.
    deferred : bool
        Whether its decisions are learned, capped and charged only once activated (shown).
    challengers : tuple of str
        Policy specs measured against ``spec`` by the promotion gate (none: ``spec`` alone).
    """

    id: str
    actions: tuple[str, ...]
    spec: str
    control: str
    deferred: bool = False
    challengers: tuple[str, ...] = ()

    @property
    def model_spec(self) -> str:
        """The spec of this placement's model: ``spec``, or with challengers the gate's
        ``gated(spec | challenger | ...)`` (policies.gated)."""
        return f"gated({' | '.join((self.spec, *self.challengers))})" if self.challengers \
            else self.spec


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``Engine.decide`` returns to the caller."""

    event_id: str
    action: str
    probability: float
    group: Group
    model_version: int
    randomized: bool
    placement: str = DEFAULT_PLACEMENT
    #: logged but waiting for ``activate`` before it is learned, capped or charged
    deferred: bool = False
    #: only when asked for (``explain``): why this action beat ``reasons_versus``
    #: (:mod:`bandit.core.explain`), or why there is no such reason; never stored
    reasons: tuple | None = None
    reasons_versus: str | None = None
    reasons_unavailable: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """An outcome reported for an event; several may arrive, the first conversion closes it."""

    event_id: str
    converted: bool
    order_value: float
    outcome_id: str | None = None
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """The full decision record the store keeps and estimators read.

    ``mask`` holds the eligibility of every action (in config order) at decision time and
    ``probability`` the probability with which ``action_index`` was drawn from that eligible set
    (the eligible actions are always actions of the decision's ``placement``).

    A holdout decision shows the control, and also records what a treated visitor would have
    got: ``would_have_action``, drawn with ``would_have_probability`` by the same rules, caps,
    budget and policy, never shown nor learned (docs/architecture.md, "Holdout"). It is the
    holdout's side of the per-action uplift (:mod:`bandit.insight.action_uplift`); a treatment
    decision carries None in both.
    """

    event_id: str
    visitor_hash: str
    context: dict = field(hash=False)
    mask: tuple[bool, ...]
    action_index: int
    action: str
    probability: float
    group: Group
    model_version: int
    randomized: bool
    ts: float
    placement: str = DEFAULT_PLACEMENT
    deferred: bool = False
    would_have_action: str | None = None
    would_have_probability: float | None = None
    #: what a promotion gate noted when it decided (float64 bytes, policies.gated; None for
    #: other policies and holdout rows): the decision record keeps which policy acted and each
    #: policy's probability of the action, for the gate's comparison when the row is learned
    decision_notes: bytes | None = None

    @property
    def cap_action(self) -> str:
        """The action frequency caps count for this decision: the one shown, or for a holdout
        visitor (who always sees the control) the one a treated visitor would have seen, so
        their would-have draws face the caps a treated visitor's draws do."""
        if self.group == "holdout" and self.would_have_action is not None:
            return self.would_have_action
        return self.action
