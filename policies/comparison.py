"""The running comparison of several policies on the traffic they share: doubly robust value
estimates per row, and anytime-valid bounds on any two policies' difference.

Each row ``i`` was decided by a mixture of the policies (``mu_i``, the logged propensity of
its action ``A_i``); at decision time each policy ``m`` gave ``A_i`` the probability
``p_mi`` and was worth ``v_mi = sum_a pi_m(a | x_i) q(x_i, a)`` under a reward model ``q``
fitted only on earlier rows. With the reward ``r_i`` the doubly robust value of ``m`` on the
row is (Dudik, Langford, Li, "Doubly robust policy evaluation and learning", 2011, eq. (3))

.. math:: \\psi_{mi} = v_{mi} + \\frac{p_{mi}}{\\mu_i} (r_i - q(x_i, A_i)),

whose conditional mean, given everything before the row, is the value of ``m`` as it was when
the row was decided, however the policies and the model learned before. The mean of
``psi_a - psi_b`` is the running advantage of ``a`` over ``b``; its bound is the confidence
sequence of :mod:`policies.confidence` on the standardized scale. Only the sums
``sum psi_m`` and ``sum psi_m psi_n`` are kept, so every pair is compared over all rows:
the evidence for ``a`` over ``b`` is the evidence for ``b`` over ``a`` with its sign flipped.

What a decision notes, one row of floats (``notes_width(M)``): the policy that acted, the
model's ``q(x, A)``, the M probabilities ``p_m`` and the M values ``v_m``. The decision
record keeps it (the engine stores it and passes it back when the row is learned).

>>> import numpy as np
>>> ev = PairedEvidence(2, alpha=0.05, horizon=1000)
>>> notes = np.array([[0, 0.5, 0.9, 0.1, 0.5, 0.7],   # acted: 0, q(A), p = (.9, .1), v
...                   [1, 0.5, 0.1, 0.9, 0.5, 0.7]])
>>> ev.observe(notes, rewards=np.array([1.0, 0.0]), propensities=np.array([0.82, 0.26]))
>>> ev.rows, round(ev.difference(1, 0).estimate, 4)  # ((0.761 - 1.049) + (-1.031 - 0.308)) / 2
(2, -0.8131)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .confidence import fixed_radius, radius, rows_needed


def notes_width(members: int) -> int:
    """Floats a decision notes for a comparison of ``members`` policies."""
    return 2 + 2 * members


class Bound(NamedTuple):
    """The running advantage of one policy over another and its confidence sequence."""

    estimate: float
    lower: float
    upper: float
    sd: float  # per-row standard deviation of the difference
    rows: int

    def rows_needed(self, min_effect: float, alpha: float, horizon: float) -> float:
        """Rows in all before the bound would clear ``min_effect`` if the estimate held
        (infinite when it does not exceed it); what a dashboard shows as "still needs"."""
        return rows_needed(abs(self.estimate) - min_effect, self.sd, alpha, horizon)


class PairedEvidence:
    """Running sums of the doubly robust values of ``members`` policies (module docstring).

    Parameters
    ----------
    members : int
        How many policies are compared.
    alpha : float
        Error rate of the two-sided bounds (1 - confidence).
    horizon : float
        Rows at which the confidence sequence is tightest.
    anytime : bool
        False swaps in the fixed-sample interval: wrong when checked repeatedly; kept for the
        test that shows why (``tests/policies/test_gated_validity.py``).
    """

    def __init__(self, members: int, *, alpha: float, horizon: float, anytime: bool = True):
        self.members, self.alpha, self.horizon, self.anytime = members, alpha, horizon, anytime
        self.rows = 0
        self.sums = np.zeros(members)
        self.products = np.zeros((members, members))
        self.acted = np.zeros(members, dtype=np.int64)  # rows each policy decided

    def observe(self, notes: np.ndarray, rewards: np.ndarray, propensities: np.ndarray) -> None:
        """Add rows: their decision notes, (clipped) rewards and logged propensities. Rows
        whose notes are missing (NaN: decided before the comparison began) are skipped."""
        notes = np.asarray(notes, dtype=float)
        m = self.members
        if notes.ndim != 2 or notes.shape[1] != notes_width(m) or len(notes) != len(rewards):
            raise ValueError(f"decision notes must be ({len(rewards)}, {notes_width(m)}), got "
                             f"{notes.shape}")
        kept = np.isfinite(notes).all(axis=1)
        if not kept.all():
            notes, rewards, propensities = notes[kept], rewards[kept], propensities[kept]
        acted, q, p, v = notes[:, 0], notes[:, 1], notes[:, 2:2 + m], notes[:, 2 + m:]
        if ((acted < 0) | (acted >= m) | (acted != np.round(acted))).any() or (
                (p < 0) | (p > 1)).any():
            raise ValueError("decision notes out of range: the acting policy must be one of "
                             f"{m} and probabilities in [0, 1]")
        psi = v + p / propensities[:, None] * (rewards - q)[:, None]
        self.rows += len(psi)
        self.sums += psi.sum(axis=0)
        self.products += psi.T @ psi
        self.acted += np.bincount(acted.astype(np.intp), minlength=m)

    def difference(self, a: int, b: int) -> Bound:
        """The running advantage of policy ``a`` over ``b`` with its bounds."""
        t = self.rows
        if t < 2:
            return Bound(0.0, -math.inf, math.inf, math.inf, t)
        mean = (self.sums[a] - self.sums[b]) / t
        square = (self.products[a, a] - 2 * self.products[a, b] + self.products[b, b]) / t
        sd = math.sqrt(max(square - mean * mean, 0.0) * t / (t - 1))
        half = (radius(t, sd, self.alpha, self.horizon) if self.anytime
                else fixed_radius(t, sd, self.alpha))
        return Bound(float(mean), float(mean - half), float(mean + half), sd, t)

    def state(self) -> dict[str, np.ndarray]:
        return {"evidence.rows": np.array(self.rows), "evidence.sums": self.sums,
                "evidence.products": self.products, "evidence.acted": self.acted}

    def load(self, state: dict[str, np.ndarray]) -> None:
        sums, products = np.asarray(state["evidence.sums"], float), np.asarray(
            state["evidence.products"], float)
        if sums.shape != self.sums.shape or products.shape != self.products.shape:
            raise ValueError(f"comparison state is for {len(sums)} policies, not "
                             f"{self.members}")
        self.rows = int(state["evidence.rows"])
        self.sums, self.products = sums, products
        self.acted = np.asarray(state["evidence.acted"], dtype=np.int64)
