"""Anytime-valid confidence sequences for a running mean: bounds that stay valid however
often they are checked.

A fixed-sample interval ``mean ± z sd / sqrt(t)`` holds at one chosen ``t``; checked after
every batch it is crossed by chance sooner or later (the error rate grows without bound with
the number of looks). A *confidence sequence* holds at every ``t`` at once:
``P(exists t: mu_t not in C_t) <= alpha``. The promotion gate (:mod:`policies.gated`) checks
its bound after every update, so it needs one.

We use the asymptotic normal-mixture sequence (Waudby-Smith, Arbour, Sinha, Kennedy, Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences", 2021, Theorem 2.2;
the boundary is Robbins' normal mixture, tuned as in Howard, Ramdas, McAuliffe, Sekhon,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021, eq. (14)):

.. math::

    C_t = \\hat\\mu_t \\pm \\hat\\sigma_t \\sqrt{\\frac{2 (t \\rho^2 + 1)}{t^2 \\rho^2}
          \\log\\frac{\\sqrt{t \\rho^2 + 1}}{\\alpha / 2}},
    \\qquad \\rho^2 = \\frac{-2 \\log(\\alpha/2) + \\log(1 - 2 \\log(\\alpha/2))}{t^\\star}

on the standardized scale (``sigma_hat`` the running sample standard deviation), two-sided at
level ``alpha`` (``alpha / 2`` each side), tightest near the horizon ``t*``. For the
differences of bounded importance-weighted terms the gate averages, the sequence is valid as
``t`` grows (the "asymptotic" part: the gate waits for a minimum number of rows before it
reads the bound; ``tests/policies/test_gated_validity.py`` measures the error rate under
continuous checking).

>>> round(radius(10_000, sd=1.0, alpha=0.05, horizon=10_000), 4)
0.0328
>>> round(fixed_radius(10_000, sd=1.0, alpha=0.05), 4)  # narrower: valid at one look only
0.0196
"""

from __future__ import annotations

import math

from scipy.stats import norm


def rho_squared(alpha: float, horizon: float) -> float:
    """The mixture's tuning parameter that makes the boundary tightest near ``horizon``
    rows (Howard et al. 2021, eq. (14), with ``alpha / 2`` a side)."""
    a = alpha / 2
    return (-2 * math.log(a) + math.log(1 - 2 * math.log(a))) / horizon


def radius(t: float, sd: float, alpha: float, horizon: float) -> float:
    """Half-width of the two-sided ``1 - alpha`` confidence sequence after ``t`` rows whose
    sample standard deviation is ``sd`` (module docstring); infinite before the first row."""
    if t < 1:
        return math.inf
    r2 = rho_squared(alpha, horizon)
    return sd * math.sqrt(2 * (t * r2 + 1) / (t * t * r2)
                          * math.log(math.sqrt(t * r2 + 1) / (alpha / 2)))


def fixed_radius(t: float, sd: float, alpha: float) -> float:
    """Half-width of the fixed-sample normal interval (valid at one pre-chosen ``t`` only):
    what the gate must *not* use when it checks after every batch."""
    if t < 1:
        return math.inf
    return float(norm.ppf(1 - alpha / 2)) * sd / math.sqrt(t)


def rows_needed(effect: float, sd: float, alpha: float, horizon: float,
                limit: float = 1e12) -> float:
    """The fewest rows after which :func:`radius` is below ``effect`` (the rows a difference
    of that size needs before its bound clears zero at this spread); infinite when
    ``effect <= 0`` or beyond ``limit``.

    >>> rows_needed(0.3, sd=30.0, alpha=0.05, horizon=100_000) > 50_000
    True
    """
    if effect <= 0 or sd <= 0:
        return math.inf if effect <= 0 else 1.0
    lo, hi = 1.0, 2.0
    while radius(hi, sd, alpha, horizon) >= effect:
        lo, hi = hi, hi * 2
        if hi > limit:
            return math.inf
    while hi - lo > max(1.0, lo * 1e-3):  # the radius falls with t once past the first rows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if radius(mid, sd, alpha, horizon) >= effect else (lo, mid)
    return math.ceil(hi)
