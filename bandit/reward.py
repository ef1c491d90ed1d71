"""Objectives: what a decision earned, from its outcome and the chosen action's incentive cost.

* ``conversion``: 1 if the visitor converted, else 0.
* ``revenue``: the order value (0 without a conversion).
* ``profit``: ``margin * order_value - incentive cost`` on conversion, else 0. Incentive costs are
  paid only when the visitor converts (a discount on an order that never happens costs nothing).

``order_value`` is the merchandise value before the incentive is applied; the incentive cost is
computed from the action (percent of the order and/or a fixed amount).

>>> Objective("profit", margin=0.3).reward(True, 100.0, 10.0)
20.0
>>> Objective("revenue").reward(True, 100.0, 10.0)
100.0
>>> Objective("conversion").reward(False, 0.0, 0.0)
0.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBJECTIVES = ("conversion", "revenue", "profit")


@dataclass(frozen=True, slots=True)
class Objective:
    """An objective kind and, for profit, the gross margin on merchandise."""

    kind: str = "profit"
    margin: float = 0.35

    def __post_init__(self):
        if self.kind not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.kind!r}")
        if not 0.0 < self.margin <= 1.0:
            raise ValueError(f"margin must be in (0, 1], got {self.margin!r}")

    def reward(self, converted, order_value, incentive_cost):
        """Reward of one outcome or of arrays of outcomes (vectorized)."""
        converted = np.asarray(converted, dtype=bool)
        order_value = np.asarray(order_value, dtype=float)
        if self.kind == "conversion":
            value = converted.astype(float)
        elif self.kind == "revenue":
            value = np.where(converted, order_value, 0.0)
        else:
            value = np.where(converted, self.margin * order_value - incentive_cost, 0.0)
        return value.item() if value.ndim == 0 else value

    def expected(self, p_convert, mean_order_value, cost_pct, cost_fixed):
        """Expected reward given conversion probability and mean order value (arrays broadcast).

        ``cost_pct`` is in percent, as in the config.
        """
        if self.kind == "conversion":
            return np.asarray(p_convert, dtype=float)
        if self.kind == "revenue":
            return p_convert * mean_order_value
        return p_convert * ((self.margin - cost_pct / 100.0) * mean_order_value - cost_fixed)
