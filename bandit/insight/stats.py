"""Interval arithmetic shared by the report and the timeline: means and variances from sums,
Welch's t interval for a difference of means, and per-decision sums of a group of decisions.

Welch's interval for the difference of two means whose estimates have variances ``va``, ``vb``
(Welch, "The generalization of Student's problem when several different population variances
are involved", Biometrika 34, 1947): ``diff +- t(1 - alpha/2, df) * sqrt(va + vb)`` with the
Welch-Satterthwaite degrees of freedom ``df = (va + vb)^2 / (va^2/(na-1) + vb^2/(nb-1))``.

>>> import numpy as np
>>> ci = welch_interval(np.array([1.0, 2, 3, 4]), np.array([0.0, 1, 2, 3]), 0.05)
>>> round(ci[0], 6)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def safe_ratio(num: float, den: float) -> float:
    """``num / den``, or 0 when ``den`` is 0 (a KPI of no decisions)."""
    return float(num / den) if den else 0.0


def mean_var(total: float, squares: float, n: int) -> tuple[float, float]:
    """Mean and sample variance (ddof 1) of ``n`` values from their sum and sum of squares
    (infinite variance below two values: no interval yet)."""
    if n < 2:
        return (total / n if n else 0.0), float("inf")
    mean = total / n
    return mean, max(squares - total * mean, 0.0) / (n - 1)


def welch_interval(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(difference of means, lower, upper) of a - b with Welch's t interval."""
    na, nb = len(a), len(b)
    va = a.var(ddof=1) / na if na > 1 else np.inf
    vb = b.var(ddof=1) / nb if nb > 1 else np.inf
    return welch_t(float(a.mean() - b.mean()), va, vb, na, nb, alpha)


def welch_t(diff: float, va: float, vb: float, na: int, nb: int, alpha: float):
    """(diff, lower, upper): Welch's t interval around ``diff`` from the variances of the two
    means (no interval below two values on a side; a point when both variances are 0)."""
    se2 = va + vb
    if not np.isfinite(se2):
        return diff, float("-inf"), float("inf")
    if se2 == 0:
        return diff, diff, diff
    df = se2**2 / ((va**2 / (na - 1) if na > 1 else 0) + (vb**2 / (nb - 1) if nb > 1 else 0))
    half = stats.t.ppf(1 - alpha / 2, df) * np.sqrt(se2)
    return diff, float(diff - half), float(diff + half)


@dataclass
class Sums:
    """Per-decision sums of decisions (of one action, or one group in one hour): decisions
    ``n``, conversions ``c``, revenue ``r``, cost ``k``, squares ``rr``, ``kk`` and ``rk``."""

    n: int = 0
    c: float = 0.0
    r: float = 0.0
    k: float = 0.0
    rr: float = 0.0
    kk: float = 0.0
    rk: float = 0.0

    def add(self, n, c, r, k, rr, kk, rk) -> None:
        self.n += n
        self.c += c
        self.r += r
        self.k += k
        self.rr += rr
        self.kk += kk
        self.rk += rk

    def profit(self, margin: float) -> tuple[float, float]:
        """Mean profit per decision ``margin r - k`` and its per-decision sample variance."""
        return mean_var(margin * self.r - self.k,
                        margin * margin * self.rr - 2 * margin * self.rk + self.kk, self.n)

    def conversion(self) -> tuple[float, float]:
        return mean_var(self.c, self.c, self.n)  # converted is 0 or 1: c**2 == c

    def kpis(self, margin: float) -> dict:
        """KPIs per decision (what an action's row and a timeline bucket show)."""
        return {"decisions": self.n, "conversions": int(round(self.c)),
                "conversion_rate": safe_ratio(self.c, self.n), "aov": safe_ratio(self.r, self.c),
                "revenue_per_decision": safe_ratio(self.r, self.n),
                "profit_per_decision": safe_ratio(margin * self.r - self.k, self.n),
                "cost_per_decision": safe_ratio(self.k, self.n), "cost": self.k}
