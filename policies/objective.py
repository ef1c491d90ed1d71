"""What a decision earns, as a policy may learn it: the objective and the actions' costs.

A policy sees one scalar reward per decision; policies that learn from the structure of the
reward (whether the visitor converted, the order value, the incentive cost) also get those
(``update(..., converted=, order_values=, costs=)``) and this spec, to combine their models
the way the shop is scored. ``policies`` never imports ``bandit``: the engine builds the spec
from the shop's config (``cost_pct`` as a fraction of the order, per action).

>>> spec = ObjectiveSpec("profit", margin=0.35, cost_pct=(0.0, 0.1), cost_fixed=(0.0, 0.0))
>>> spec.value(np.array([True, True]), np.array([100.0, 100.0]), np.array([0, 1])).round(9).tolist()
[35.0, 25.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

KINDS = ("conversion", "revenue", "profit")


@dataclass(frozen=True)
class ObjectiveSpec:
    """``kind``: conversion (1 per conversion), revenue (the order value) or profit (margin
    times the order value minus the incentive cost: ``cost_pct[a]`` of the order plus
    ``cost_fixed[a]``, both paid on conversion only)."""

    kind: str
    margin: float = 1.0
    cost_pct: tuple[float, ...] = ()
    cost_fixed: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"objective kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "cost_pct", tuple(float(c) for c in self.cost_pct))
        object.__setattr__(self, "cost_fixed", tuple(float(c) for c in self.cost_fixed))
        if len(self.cost_pct) != len(self.cost_fixed):
            raise ValueError("cost_pct and cost_fixed need one entry per action")
        if not np.isfinite([self.margin, *self.cost_pct, *self.cost_fixed]).all():
            raise ValueError("objective margin and costs must be finite")

    def costs(self, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
        """(cost_pct, cost_fixed) as (K,) arrays (zeros where none were given: a spec for
        fewer actions than the policy has, as after ``add_actions``)."""
        pct, fixed = np.zeros(n_actions), np.zeros(n_actions)
        k = min(n_actions, len(self.cost_pct))
        pct[:k], fixed[:k] = self.cost_pct[:k], self.cost_fixed[:k]
        return pct, fixed

    def value(self, converted, order_values, actions) -> np.ndarray:
        """The reward of each decision (what the engine computes), from its components."""
        converted = np.asarray(converted, dtype=float)
        if self.kind == "conversion":
            return converted
        order_values = np.asarray(order_values, dtype=float)
        if self.kind == "revenue":
            return converted * order_values
        pct, fixed = self.costs(int(np.max(actions, initial=-1)) + 1)
        a = np.asarray(actions)
        return converted * ((self.margin - pct[a]) * order_values - fixed[a])


class Outcomes(NamedTuple):
    """The parts of a batch's rewards: converted (bool), order values, incentive costs paid."""

    converted: np.ndarray
    order_values: np.ndarray
    costs: np.ndarray


def check_outcomes(name: str, n: int, converted, order_values, costs) -> Outcomes | None:
    """The outcome arrays of an update of ``n`` rows (None when none were given); all three
    or none, length ``n``, finite, order values >= 0."""
    given = [v is not None for v in (converted, order_values, costs)]
    if not any(given):
        return None
    if not all(given):
        raise ValueError(f"{name}: give converted, order_values and costs together (or none)")
    out = Outcomes(np.asarray(converted, dtype=bool), np.asarray(order_values, dtype=float),
                   np.asarray(costs, dtype=float))
    for label, arr in zip(Outcomes._fields, out):
        if arr.shape != (n,):
            raise ValueError(f"{name}: {label} must have shape ({n},), got {arr.shape}")
    if not (np.isfinite(out.order_values).all() and np.isfinite(out.costs).all()):
        raise ValueError(f"{name}: order_values and costs must be finite")
    if (out.order_values < 0).any():
        raise ValueError(f"{name}: order_values must be >= 0")
    return out
