"""The report's verdict: one sentence, in plain words, on whether personalization pays.

It reads the headline uplift in profit per visitor (treatment minus holdout, Welch's interval
over visitors; :mod:`bandit.insight.report`):

* the interval lies above zero: personalization is *earning* the difference per visitor, and
  about ``difference x treated visitors per day`` a day at the latest day's traffic;
* below zero: it is *losing* that much;
* otherwise it is not distinguishable from the holdout yet, and the sentence says how many
  more visitors it takes to tell a difference ``delta`` (the larger of the estimate and 5% of
  the holdout's profit per visitor) with 80% power at the 95% level, by the usual sample-size
  formula for a difference of two means (e.g. Kohavi, Tang & Xu, "Trustworthy Online
  Controlled Experiments", 2020, ch. 17):

.. math::

    N = (z_{0.975} + z_{0.8})^2 \\left(\\frac{\\sigma_T^2}{1 - f} + \\frac{\\sigma_H^2}{f}\\right)
        / \\delta^2

  over both groups, ``f`` the holdout's share of visitors and ``sigma`` each group's standard
  deviation of profit per visitor so far.

>>> v = verdict({"kpi": "profit_per_visitor", "difference": 0.42, "lower": 0.1, "upper": 0.74},
...             sd=(20.0, 20.0), visitors=(9000, 1000), per_day=1000.0, currency="EUR",
...             confidence=0.95)
>>> v["sentence"]
"Personalization is earning EUR 0.42 more profit per visitor than the holdout (95%: 0.10 to 0.74), about EUR 420 a day at today's traffic."
"""

from __future__ import annotations

import math

from scipy import stats

#: the power a "visitors needed" figure is for
POWER = 0.8


def _money(x: float, currency: str, digits: int = 2) -> str:
    return f"{currency} {x:,.{digits}f}".strip()


def _about(x: float) -> str:
    """A count rounded to two significant digits, as people say it ("about 18,000")."""
    if x < 100:
        return f"{math.ceil(x):,}"
    digits = 10 ** (int(math.log10(x)) - 1)
    return f"{round(x / digits) * digits:,.0f}"


def visitors_needed(sd: tuple[float, float], share: float, delta: float,
                    confidence: float = 0.95, power: float = POWER) -> float:
    """Visitors (both groups) for a ``confidence`` interval to exclude zero with probability
    ``power`` when the true difference is ``delta`` (the module docstring's N)."""
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power))
    return z * z * (sd[0] ** 2 / (1 - share) + sd[1] ** 2 / share) / (delta * delta)


def verdict(uplift: dict | None, *, sd: tuple[float, float], visitors: tuple[int, int],
            per_day: float | None, currency: str, confidence: float,
            holdout_fraction: float | None = None) -> dict:
    """``{"status", "sentence", ...}``: ``uplift`` is the report's profit-per-visitor row
    (None: no comparison yet); ``sd`` the (treatment, holdout) standard deviations of profit
    per visitor, ``visitors`` their counts, ``per_day`` treated visitors a day at the latest
    day's traffic (None: unknown), ``holdout_fraction`` the shop's configured share (0: no
    holdout; None: not known here)."""
    level = f"{confidence:.0%}"
    if uplift is None:
        if holdout_fraction == 0:
            return {"status": "no_holdout", "sentence": (
                "No holdout, so nothing tells whether personalization pays: set [holdout] "
                "fraction (e.g. 0.05) in the shop's config to keep a share of visitors on "
                "the control and measure it.")}
        n = sum(visitors)
        return {"status": "waiting", "sentence": (
            "Too early to compare with the holdout: each group needs visitors whose outcome "
            f"is known ({visitors[0]:,} treated and {visitors[1]:,} in the holdout so far).")
            if n else "No visitors yet: the verdict appears once visitors arrive."}
    diff, lower, upper = uplift["difference"], uplift["lower"], uplift["upper"]
    out = {"difference": diff, "lower": lower, "upper": upper, "per_day": None,
           "visitors_needed": None, "delta": None}
    if lower > 0 or upper < 0:
        earning = lower > 0
        out["status"] = "earning" if earning else "losing"
        words = (f"Personalization is earning {_money(diff, currency)} more profit per visitor "
                 "than the holdout" if earning else
                 f"Personalization is losing {_money(-diff, currency)} profit per visitor "
                 "against the holdout")
        sentence = f"{words} ({level}: {lower:,.2f} to {upper:,.2f})"
        if per_day:
            out["per_day"] = diff * per_day
            sentence += (f", about {_money(abs(diff) * per_day, currency, 0)} a day at "
                         "today's traffic")
        out["sentence"] = sentence + ("." if earning else
                                      ": check the policy's incentives and rules.")
        return out
    share = visitors[1] / sum(visitors)
    holdout_level = abs(uplift.get("holdout") or 0.0)
    delta = max(abs(diff), 0.05 * holdout_level, 0.01)
    needed = max(visitors_needed(sd, share, delta, confidence) - sum(visitors), 0.0)
    out.update(status="undecided", visitors_needed=needed, delta=delta)
    out["sentence"] = (f"Not distinguishable from the holdout yet ({level}: {lower:,.2f} to "
                       f"{upper:,.2f} profit per visitor): about {_about(needed)} more visitors "
                       f"to tell a {_money(delta, currency)} difference.")
    return out
