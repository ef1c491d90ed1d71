"""Per-action uplift: which intervention pays, and how much incentive spend was cannibalized.

The holdout sees the control, and every holdout decision also records the action a treated
visitor would have got (docs/architecture.md, "Holdout"), drawn by the same rules, caps,
budget and policy. Treated visitors who were drawn action ``a`` and holdout visitors who would
have been drawn ``a`` are therefore selected by the same draw from the same population, so

.. math::

    \\hat\\tau_a = \\bar Y_{T,a} - \\bar Y_{H,a}

is an unbiased estimate of ``a``'s effect against the control *on the visitors the policy
gives it to* (a difference of means under random assignment; Imbens & Rubin, "Causal
Inference for Statistics, Social, and Biomedical Sciences", 2015, ch. 6). The unit is the
visitor: per placement, each visitor's first (not deferred) decision there, with its final
outcome (an order counts once); Welch's interval (:func:`bandit.insight.stats.welch_t`).

**Cannibalized spend** is the incentive cost paid to visitors who would have bought anyway:
the treated group's cost per conversion times the holdout conversion rate of the same
would-have group, per treated visitor,

.. math::

    \\hat\\kappa_a = \\frac{K_{T,a}}{C_{T,a}} \\cdot \\frac{C_{H,a}}{V_{H,a}},

and ``V_{T,a} \\hat\\kappa_a`` in all (at most the spend itself), with a delta-method interval
(``Var = q^2 Var(R) + R^2 Var(q)`` for ``R = K/C`` over treated visitors and ``q`` the holdout
rate).

>>> arms = {"treatment": ArmSums(4, 2, 100, 20, 5000, 200, 1000, 20),
...         "holdout": ArmSums(4, 1, 50, 0, 2500, 0, 0, 0)}
>>> row = action_uplift("default", "discount_10", arms, margin=0.3, costed=True)
>>> row["cannibalized_spend"]["total"]  # 20 paid; 1 in 4 would have bought: 10 = 20 x 0.25/0.5
10.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from bandit.insight.stats import Sums, safe_ratio, welch_t


@dataclass
class ArmSums(Sums):
    """Sums over the visitors of one arm (a group drawn one action at one placement): the
    per-decision :class:`~bandit.insight.stats.Sums` with one decision per visitor (``n`` is
    the visitors; conversions ``c`` are 0 or 1, so its conversion and profit moments serve
    as they are), plus ``ck``, which the cost per conversion's variance needs."""

    ck: float = 0.0

    @property
    def visitors(self) -> int:
        return self.n

    def cost_per_conversion(self) -> tuple[float, float]:
        """``R = k / c`` summed over visitors, and its delta-method variance."""
        n = self.visitors
        if self.c == 0:
            return 0.0, (0.0 if self.k == 0 else math.inf)
        ratio = self.k / self.c
        if n < 2:
            return ratio, math.inf
        spread = max(self.kk - 2 * ratio * self.ck + ratio * ratio * self.c, 0.0) / (n - 1)
        mean_c = self.c / n
        return ratio, spread / (n * mean_c * mean_c)


def _side(arm: ArmSums, margin: float) -> dict:
    return {"visitors": arm.visitors, "conversion_rate": safe_ratio(arm.c, arm.visitors),
            "profit_per_visitor": safe_ratio(margin * arm.r - arm.k, arm.visitors),
            "cost_per_visitor": safe_ratio(arm.k, arm.visitors), "cost": arm.k}


def _difference(t: tuple[float, float], h: tuple[float, float], nt: int, nh: int,
                alpha: float) -> dict:
    (mt, vt), (mh, vh) = t, h
    diff, lower, upper = welch_t(mt - mh, vt / nt if nt else math.inf,
                                 vh / nh if nh else math.inf, nt, nh, alpha)
    return {"difference": diff, "lower": _finite(lower), "upper": _finite(upper)}


def _finite(v: float) -> float | None:
    """A bound, or None while there are too few visitors to draw one (JSON has no infinity)."""
    return v if math.isfinite(v) else None


def cannibalized(t: ArmSums, h: ArmSums, alpha: float) -> dict:
    """Incentive cost paid to treated visitors who would have bought anyway (the module
    docstring's :math:`\\hat\\kappa`), per treated visitor and in all, with its interval."""
    ratio, var_ratio = t.cost_per_conversion()
    rate, var_rate = h.conversion()
    var_rate = var_rate / h.visitors if h.visitors else math.inf
    per_visitor = ratio * rate
    var = rate * rate * var_ratio + ratio * ratio * var_rate
    half = (float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(var) if math.isfinite(var)
            else math.inf)
    cap = safe_ratio(t.k, t.visitors)  # never more than was spent
    return {"per_visitor": min(per_visitor, cap), "total": min(per_visitor, cap) * t.visitors,
            "lower": _finite(max(per_visitor - half, 0.0) * t.visitors),
            "upper": _finite(min(per_visitor + half, cap) * t.visitors),
            "spend": t.k}


def action_uplift(placement: str, action: str, arms: dict, *, margin: float, costed: bool,
                  alpha: float = 0.05) -> dict:
    """One row of ``per_action_uplift``: treated visitors drawn ``action`` at ``placement``
    against holdout visitors who would have been, with 95% (``1 - alpha``) intervals."""
    # a side with no visitor yet: empty sums (a fresh one each: Sums are mutable)
    t, h = arms.get("treatment") or ArmSums(), arms.get("holdout") or ArmSums()
    return {
        "placement": placement, "action": action,
        "treated": _side(t, margin), "holdout": _side(h, margin),
        "conversion_uplift": _difference(t.conversion(), h.conversion(), t.visitors,
                                         h.visitors, alpha),
        "profit_uplift": _difference(t.profit(margin), h.profit(margin), t.visitors,
                                     h.visitors, alpha),
        "cannibalized_spend": cannibalized(t, h, alpha) if costed else None}


def per_action_uplift(rows, margin: float, costed: frozenset | set = frozenset(),
                      alpha: float = 0.05) -> list[dict]:
    """The report's ``per_action_uplift`` from the store's arm sums (``(group, placement,
    action, visitors, c, r, k, rr, kk, rk, ck)`` rows, :meth:`bandit.store.aggregates.Reader.
    arm_sums`); ``costed``: the ids of incentives (their cannibalized spend is shown). Empty
    before any first decision's outcome is final."""
    arms: dict[tuple[str, str], dict[str, ArmSums]] = {}
    for grp, placement, action, *sums in rows:
        arms.setdefault((placement, action), {})[grp] = ArmSums(int(sums[0]),
                                                                *map(float, sums[1:]))
    return [action_uplift(placement, action, by_group, margin=margin,
                          costed=action in costed, alpha=alpha)
            for (placement, action), by_group in sorted(arms.items())]
