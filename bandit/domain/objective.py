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

from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta

#: conversions whose median sets the clipping scale before the running mean takes over
WARMUP = 20
#: conversions after which the bound grows with the evidence (one order's share of what was
#: learned then stays at most that of ``multiple`` typical orders among this many)
EVIDENCE = 1000

OBJECTIVES = ("conversion", "revenue", "profit")


class Objective(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An objective kind and, for profit, the gross margin on merchandise: the shop's
    ``[objective]`` table (its bounds are checked when a config is read,
    :func:`bandit.config.schema.read_table`).

    ``max_order_value``: outcomes above it are refused (a typo or an attack, not an order).
    ``reward_clip``: how many times a typical conversion's reward one conversion may teach at
    most (see :class:`RewardClip`); 0 turns clipping off.
    """

    kind: Annotated[Literal["conversion", "revenue", "profit"], Meta(
        description=f"one of {OBJECTIVES}")] = "profit"
    margin: Annotated[float, Meta(gt=0, le=1, description="a margin in (0, 1]")] = 0.35
    max_order_value: Annotated[float, Meta(gt=0, lt=1e15, description=(
        "an amount > 0 (the largest order the shop can take)"))] = 100_000.0
    reward_clip: Annotated[float, Meta(ge=0, description=(
        "a multiple >= 0 of a typical conversion's reward (0: no clipping)"))] = 3.0

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


class RewardClip:
    """Bounds what one conversion can teach: the rule that the engine, the simulator's runner
    and replay all learn through (reports keep the real values).

    The reward of each converted event is clipped to ``[-c, c]`` with
    ``c = multiple * scale * max(1, n / EVIDENCE)``, where ``scale`` is the typical size of a
    conversion's reward (during the first ``WARMUP`` conversions the median of the sizes so
    far: one outlier cannot move a median; afterwards the running mean of the *clipped*
    sizes, so an outlier never inflates its own bound) and ``n`` the conversions learned so
    far. The bound grows with the evidence: one order's influence on what was learned stays
    at most that of ``multiple`` typical orders among ``EVIDENCE``, early and late, while a
    shop with a long history keeps the real value of its large orders.
    Rewards of events that did not convert pass unchanged. The clip depends only on the order
    of the conversions, so re-learning a log gives the same rewards (restart-exact), and its
    state is a few numbers (:meth:`state`). The first conversion is bounded only by
    ``[objective] max_order_value``: a shop that knows its largest order should set it.

    >>> clip = RewardClip(multiple=5.0)  # the default is 3
    >>> float(clip(np.array([20.0] * 25), np.ones(25, bool))[-1])
    20.0
    >>> float(clip(np.array([35_000.0]), np.array([True]))[0])  # 5 x the typical 20
    100.0
    """

    def __init__(self, multiple: float = 3.0):
        self.multiple = float(multiple)
        self.n, self.total = 0, 0.0
        self.first: list[float] = []  # sizes of the first WARMUP conversions

    def scale(self) -> float:
        if self.n < WARMUP:
            return float(np.median(self.first)) if self.first else float("inf")
        return self.total / self.n

    def __call__(self, rewards: np.ndarray, converted: np.ndarray) -> np.ndarray:
        """The rewards to learn, in learning order (converted: which rows converted)."""
        rewards = np.array(rewards, dtype=float)
        if not self.multiple:
            return rewards
        for i in np.flatnonzero(converted):
            r = rewards[i]
            size = abs(r)
            if self.n < WARMUP:
                self.first.append(size)  # the median includes this one: first is unclipped
            bound = self.multiple * self.scale() * max(1.0, self.n / EVIDENCE)
            if size > bound:
                rewards[i] = bound if r > 0 else -bound
                size = bound
            self.n += 1
            self.total += size
        return rewards

    def state(self) -> dict:
        return {"n": self.n, "total": self.total, "first": list(self.first)}

    def load(self, state: dict) -> None:
        self.n, self.total = int(state["n"]), float(state["total"])
        self.first = [float(v) for v in state["first"]]
