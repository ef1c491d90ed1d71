"""Eligibility: shop rules, frequency caps and the incentive budget -> a mask over actions.

Order of authority: the request's ``eligible`` list, then the guardrails (frequency caps and the
daily incentive budget), then the shop's rules in order, then the learner, which chooses within
what is left. Rules are structured data, never code:

* ``when``: conditions on context keys, all of which must hold; a bare value means equality,
  a table uses operators ``eq ne in not_in lt le gt ge``. A missing key fails its condition.
* ``then``: ``only = [ids]`` keeps just those, ``exclude = [ids]`` removes those,
  ``force = "id"`` decides that action outright (p = 1, logged as not randomized) when it is
  still eligible; a force whose action a guardrail or an earlier rule removed is skipped.

When nothing is left, the visitor gets the control action, forced. Rule sets that leave nothing
for every visitor are refused when the config loads.

>>> rule = Rule("big carts", (Condition("cart_value", "gt", 100.0),), "only", ("none", "free_shipping"))
>>> rule.matches({"cart_value": 150.0}), rule.matches({"cart_value": 50.0}), rule.matches({})
(True, False, False)
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

OPERATORS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
             "gt": operator.gt, "ge": operator.ge,
             "in": lambda v, ref: v in ref, "not_in": lambda v, ref: v not in ref}
EFFECTS = ("only", "exclude", "force")


@dataclass(frozen=True, slots=True)
class Condition:
    """``context[key] <op> value``."""

    key: str
    op: str
    value: object

    def holds(self, context: dict) -> bool:
        if self.key not in context or context[self.key] is None:
            return False
        v = context[self.key]
        try:
            return bool(OPERATORS[self.op](v, self.value))
        except TypeError:  # e.g. "<" between a string and a number: the condition is not met
            return False


@dataclass(frozen=True, slots=True)
class Rule:
    """One prescriptive rule: when all conditions hold, apply the effect."""

    name: str
    conditions: tuple[Condition, ...]
    effect: str
    actions: tuple[str, ...]

    def matches(self, context: dict) -> bool:
        return all(c.holds(context) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``max_per_visitor`` decisions of an action (or of a kind) per ``window_s``."""

    max_per_visitor: int
    window_s: float
    action: str | None = None
    kind: str | None = None
    incentives: bool = False  # the global cap on all costed actions

    def covers(self, action) -> bool:
        if self.incentives:
            return action.costed
        return action.id == self.action if self.action is not None else action.kind == self.kind


@dataclass(frozen=True, slots=True)
class Budget:
    """Daily cap on incentive spend (cost of converted incentive decisions), in a time zone."""

    daily: float
    timezone: str = "UTC"
    #: "none" (a hard stop only), "even" or "profile" (:mod:`bandit.core.pacing`)
    pacing: str = "none"
    #: 24 weights of the local hours, for ``pacing = "profile"``
    profile: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The outcome of the eligibility stage for one request."""

    mask: tuple[bool, ...]
    forced: str | None
    reason: str


def apply_rules(rules, context: dict, mask: list[bool], action_ids, control: str) -> Eligibility:
    """Apply ``rules`` in order to ``mask`` (already limited by request and guardrails)."""
    index = {a: i for i, a in enumerate(action_ids)}
    for rule in rules:
        if not rule.matches(context):
            continue
        if rule.effect == "force":
            k = index[rule.actions[0]]
            if mask[k]:
                return Eligibility(tuple(i == k for i in range(len(mask))), rule.actions[0],
                                   f"rule {rule.name!r}")
            continue
        chosen = {index[a] for a in rule.actions}
        keep = (lambda i: i in chosen) if rule.effect == "only" else (lambda i: i not in chosen)
        mask = [m and keep(i) for i, m in enumerate(mask)]
    if not any(mask):
        k = index[control]
        return Eligibility(tuple(i == k for i in range(len(mask))), control,
                           "nothing eligible: control")
    return Eligibility(tuple(mask), None, "")


def statically_empty(rules, action_ids) -> str | None:
    """Name of the first unconditional rule after which no action is ever left, if any."""
    mask = [True] * len(action_ids)
    for rule in rules:
        if rule.conditions:
            continue
        if rule.effect == "force":
            return None
        result = apply_rules([rule], {}, mask, action_ids, action_ids[0])
        if result.forced is not None:
            return rule.name
        mask = list(result.mask)
    return None
