"""Budget pacing: a shadow price on incentive cost, so that the day's budget lasts the day.

Per budget day the shop's problem is ``max sum_t r_t  s.t.  sum_t cost_t <= B``. Its Lagrangian
``sum_t (r_t - lam cost_t) + lam B`` is maximized, for a fixed ``lam >= 0``, by choosing for each
visitor by ``reward - lam E[cost | x, a]``: the policy's own choice with a per-action price
(``Policy.probabilities(..., prices=)``), so incentives go where they buy the most reward per
unit of cost. ``lam`` follows projected subgradient descent on the dual (Balseiro, Lu &
Mirrokni, "Dual mirror descent for online allocation problems", ICML 2020), one step per
15 minutes of the log's time::

    mu <- max(0, mu + RATE * (spent_t - planned_t) / (B / steps))    lam = scale * mu

``spent_t`` is the cost of the conversions that closed in the step, ``planned_t`` the plan's
share of ``B`` for it (``even``: the same for every step of the day; ``profile``: 24 hourly
weights in the budget's time zone), ``steps`` the day's steps. Spending faster than the plan
raises the price, slower lowers it, to zero when the budget does not bind. ``scale`` puts the
price in reward units: 1 when rewards are currency (revenue, profit), ``1 / AOV`` for
conversions. ``mu`` is a function of the log's spend per step alone, so a restart replays it
exactly (:meth:`Pacer.replay`).

``E[cost | x, a]``: each action's mean cost per decision in the treatment group, shrunk
towards the shop-wide ``conversion rate x (cost_pct x AOV + cost_fixed)`` while an action has
few decisions (:func:`action_costs`); for a policy with a cost model of its own
(``expected_costs``, the ``profit`` policy) that model's ``E[cost | x, a]``, blended with the
mean by ``n / (n + PRIOR_DECISIONS)`` for the ``n`` rows of the action it has learned
(``cost_model_rows``): the logistic ``profit`` learns a window late and would price its
first day with a blank model (docs/architecture.md, "Budget pacing").

The hard stop stays as the backstop: once the day's spend reaches the budget, incentives are
not eligible. Spend is charged when a conversion closes, so the day can end above the budget
by what offers already shown still cost when their orders come in (docs/architecture.md,
"Budget pacing").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from bandit.core.guardrails import local_day

#: one step of the price per spend bucket (:class:`bandit.core.guardrails.SpendTracker`)
STEP_S = 900.0
#: how far one step's error (in steps' worth of plan) moves ``mu``: spending 2.5x the plan
#: raises it by 0.75 a step. Measured in benchmarks/pacing.py on the default world (budget at
#: 40% of unconstrained spend): 0.05 and 0.2 let the budget run out at 14.6 and 22.2 h, 0.5 at
#: 23 h with the day's spend 1.02x the budget; 1.0 gave no more and cost profit
RATE = 0.5
#: decisions of prior weight in an action's mean cost (the shop-wide formula's)
PRIOR_DECISIONS = 200.0


class PacingPrice(msgspec.Struct, frozen=True):
    """What a decider needs to price incentives: the shadow price in reward units per unit
    of cost and, per action id, its mean cost per decision (used by policies without a cost
    model of their own). Published by the engine or trainer with the model."""

    price: float = 0.0
    costs: dict[str, float] = {}

    def prices(self, policy, X: np.ndarray, action_ids: Sequence[str]) -> np.ndarray | None:
        """(n, K) prices of the policy's columns for rows ``X``, or None when nothing is
        priced (no budget pressure: the policy decides exactly as without pacing)."""
        if self.price <= 0.0:
            return None
        mean = np.array([self.costs.get(a, 0.0) for a in action_ids])
        own = getattr(policy, "expected_costs", None)
        if own is None:
            return np.broadcast_to(self.price * mean, (len(X), len(mean)))
        # the policy's cost model by how much it has learned of each action: one that has
        # learned nothing yet (a non-additive policy learns a window late) would price
        # incentives with its prior, and the price could not hold the day
        learned = np.asarray(policy.cost_model_rows(), dtype=float)
        trust = learned / (learned + PRIOR_DECISIONS)
        return self.price * (trust * own(X) + (1.0 - trust) * mean)


def encode(price: PacingPrice | None) -> bytes:
    """The price as the trainer publishes it with the spend (b"": no pacing)."""
    return b"" if price is None else msgspec.json.encode(price)


def decode(data: bytes) -> PacingPrice | None:
    """:func:`encode`'s inverse; raises ``msgspec.DecodeError`` (or its ``ValidationError``) on anything else."""
    return msgspec.json.decode(data, type=PacingPrice) if data else None


class DayPlan:
    """The share of a day's budget each 15-minute step may spend (``weights``: 24 per local
    hour, or None for an even plan), per day in ``zone``.

    >>> plan = DayPlan("UTC", None)
    >>> start = 86400.0 * 3
    >>> round(plan.share(int(start // STEP_S)) * 96, 9)
    1.0
    >>> peak = DayPlan("UTC", [0.0] * 12 + [1.0] * 12)
    >>> peak.share(int(start // STEP_S)), round(peak.share(int(start // STEP_S) + 48) * 48, 9)
    (0.0, 1.0)
    """

    def __init__(self, timezone: str, weights: Sequence[float] | None):
        self.zone = ZoneInfo(timezone)
        self.weights = None if weights is None else tuple(float(w) for w in weights)
        self._day: tuple[int, int, dict[int, float]] = (0, 0, {})

    def day_of(self, bucket: int) -> tuple[int, int]:
        """[first, end) buckets of the local day holding ``bucket`` (a DST day has 92 or 100)."""
        first, end, _ = self._shares(bucket)
        return first, end

    def share(self, bucket: int) -> float:
        return self._shares(bucket)[2][bucket]

    def _shares(self, bucket: int) -> tuple[int, int, dict[int, float]]:
        """The day holding ``bucket`` and its steps' shares, computed once per day (the
        replay at start takes every step of the log's history)."""
        first, end, shares = self._day
        if not first <= bucket < end:
            start, stop = local_day(bucket * STEP_S, self.zone)
            first, end = int(start // STEP_S), int(stop // STEP_S)
            if self.weights is None:
                shares = {b: 1.0 / (end - first) for b in range(first, end)}
            else:
                hours = {b: datetime.fromtimestamp(b * STEP_S, self.zone).hour
                         for b in range(first, end)}
                total = sum(self.weights[h] for h in hours.values())
                shares = {b: self.weights[h] / total for b, h in hours.items()}
            self._day = (first, end, shares)
        return self._day

    def planned(self, now: float, budget: float) -> float:
        """How much of ``budget`` the plan allows to be spent by ``now`` on its day."""
        bucket = int(now // STEP_S)
        first, _, shares = self._shares(bucket)
        done = sum(shares[b] for b in range(first, bucket))
        return budget * (done + shares[bucket] * (now / STEP_S - bucket))


class ShadowPrice:
    """The dual recursion of the module docstring over whole steps (``mu``, unitless).

    >>> sp = ShadowPrice(DayPlan("UTC", None), budget=96.0)
    >>> sp.step(0, spent=3.0)   # 3x the plan's 1.0: up by RATE * 2
    >>> round(sp.mu, 6)
    1.0
    >>> sp.step(1, spent=0.0); sp.step(2, spent=0.0); round(sp.mu, 6)
    0.0
    """

    def __init__(self, plan: DayPlan, budget: float):
        self.plan, self.budget = plan, float(budget)
        self.mu = 0.0
        self.next_bucket: int | None = None  # the first step not taken yet

    def step(self, bucket: int, spent: float) -> None:
        first, end = self.plan.day_of(bucket)
        per_step = self.budget / (end - first)
        if per_step <= 0.0:  # a zero budget: the hard stop does all the work
            self.next_bucket = bucket + 1
            return
        planned = self.budget * self.plan.share(bucket)
        self.mu = max(0.0, self.mu + RATE * (spent - planned) / per_step)
        self.next_bucket = bucket + 1


def action_costs(rows: Sequence[tuple], action_ids: Sequence[str], config_actions) -> tuple[
        dict[str, float], float]:
    """Per action its mean cost per treated decision, shrunk towards the shop-wide formula,
    and the shop's AOV, from the store's per-action sums (``EventStore.action_sums``).

    >>> from types import SimpleNamespace as A
    >>> acts = [A(id="none", cost_pct=0.0, cost_fixed=0.0), A(id="ship", cost_pct=0.0, cost_fixed=5.0)]
    >>> rows = [("treatment", "none", 800, 40, 2000.0, 0.0, 0, 0, 0),
    ...         ("treatment", "ship", 200, 20, 1000.0, 100.0, 0, 0, 0)]
    >>> costs, aov = action_costs(rows, ["none", "ship"], acts)
    >>> aov, costs["none"], round(costs["ship"], 4)  # (100 + 200 * 0.06 * 5) / 400
    (50.0, 0.0, 0.4)
    """
    treated = [r for r in rows if r[0] == "treatment"]
    decisions = sum(r[2] for r in treated)
    conversions = sum(r[3] for r in treated)
    revenue = sum(r[4] for r in treated)
    aov = revenue / conversions if conversions else 0.0
    rate = conversions / decisions if decisions else 0.0
    by_id = {a.id: a for a in config_actions}
    sums = {a: [0.0, 0.0] for a in action_ids}
    for _, action, n, _, _, cost, *_ in treated:
        if action in sums:
            sums[action][0] += n
            sums[action][1] += cost
    costs = {}
    for a in action_ids:
        spec = by_id.get(a)
        prior = rate * (spec.cost_pct / 100 * aov + spec.cost_fixed) if spec else 0.0
        n, cost = sums[a]
        costs[a] = (cost + PRIOR_DECISIONS * prior) / (n + PRIOR_DECISIONS)
    return costs, aov


class Pacer:
    """The engine's (or trainer's) pacing: the shadow price over the log's spend steps, and
    the :class:`PacingPrice` deciders use, renewed once per step.

    ``tracker`` is the :class:`~bandit.core.guardrails.SpendTracker` (spend per 15-minute bucket),
    ``store`` the event log (per-action sums), ``config`` the shop's."""

    def __init__(self, config, tracker, store):
        budget = config.budget
        self.config, self.tracker, self.store = config, tracker, store
        self.plan = DayPlan(budget.timezone, budget.profile if budget.pacing == "profile"
                            else None)
        self.shadow = ShadowPrice(self.plan, budget.daily)
        self.current = PacingPrice()
        self._conversion = config.objective.kind == "conversion"

    @classmethod
    def start(cls, config, tracker, store, last_ts: float) -> "Pacer | None":
        """The pacer of a shop whose budget is paced (else None), with the steps its log
        holds up to the newest decision (``last_ts``) taken."""
        if config.budget is None or config.budget.pacing == "none":
            return None
        pacer = cls(config, tracker, store)
        if last_ts > float("-inf"):
            pacer.replay(last_ts)
        return pacer

    def replay(self, until: float) -> None:
        """Take every step the log holds before ``until`` (at start: from its first spend)."""
        first = self.tracker.first_bucket()
        if first is not None:
            self.shadow.next_bucket = first
        self.advance(until)

    def advance(self, now: float) -> bool:
        """Take the steps that ended by ``now``; True when the price was renewed."""
        bucket = int(now // STEP_S)
        start = self.shadow.next_bucket
        if start is None:
            self.shadow.next_bucket = bucket
            return False
        if bucket <= start:
            return False
        for b in range(start, bucket):
            self.shadow.step(b, self.tracker.bucket_spend(b))
        self.current = self._price()
        return True

    def _price(self) -> PacingPrice:
        mu = self.shadow.mu
        if mu <= 0.0:
            return PacingPrice()
        costs, aov = action_costs(self.store.aggregates.action_sums(), self.config.action_ids,
                                  self.config.actions)
        scale = (1.0 / aov if aov > 0 else 1.0) if self._conversion else 1.0
        return PacingPrice(price=mu * scale, costs=costs)

    def target(self, now: float) -> float:
        """What the plan allows to be spent by ``now`` on its day."""
        return self.plan.planned(now, self.shadow.budget)
