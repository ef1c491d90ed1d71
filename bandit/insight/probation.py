"""A promotion on probation: does the holdout say the shop earns less since the gate
promoted a challenger? (docs/architecture.md, "The promotion gate").

The gate promotes on its own comparison (the new champion against the old one on the traffic
they shared). The holdout gives a second, independent witness: treated visitors against the
visitors who always get the control. If, on the decisions made since the promotion, the
treated ones earn less per decision than the holdout with an anytime-valid bound (the
normal-mixture sequence of :mod:`policies.confidence`, so checking every minute does not
inflate the error rate), personalization under the new champion is losing money and the
previous champion comes back.

The unit is the decision (a visitor with many decisions counts many times, which narrows the
bound somewhat: visitors' decisions are not independent); decisions count once their outcome
is final.

>>> losing = {"treatment": (4000, 3600.0, 40000.0), "holdout": (4000, 6000.0, 50000.0)}
>>> verdict(losing, 0.05)[0]  # 0.90 against 1.50 per decision, 4,000 decisions each
True
>>> verdict({"treatment": (4000, 3600.0, 40000.0), "holdout": (150, 225.0, 1900.0)}, 0.05)
(False, 'too few final decisions in both groups since the promotion')
"""

from __future__ import annotations

import math

from bandit.insight.stats import mean_var
from policies.confidence import radius

#: decisions each group needs since the promotion before the check reads its bound
MIN_DECISIONS = 200
#: where the bound is tightest (decisions since the promotion)
HORIZON = 20_000


def verdict(groups: dict, alpha: float) -> tuple[bool, str]:
    """(roll back?, why) from ``{group: (decisions, reward sum, sum of squares)}``."""
    t, h = groups.get("treatment"), groups.get("holdout")
    if t is None or h is None or min(t[0], h[0]) < MIN_DECISIONS:
        return False, "too few final decisions in both groups since the promotion"
    (mt, vt), (mh, vh) = mean_var(t[1], t[2], t[0]), mean_var(h[1], h[2], h[0])
    n = t[0] + h[0]
    se2 = vt / t[0] + vh / h[0]
    upper = (mt - mh) + radius(n, math.sqrt(n * se2), alpha, HORIZON)
    why = (f"since the promotion, treated decisions earn {mt - mh:+.4f} per decision against "
           f"the holdout (upper bound {upper:+.4f}; {t[0]:,} treated, {h[0]:,} holdout)")
    return upper < 0, why


def check(store, placement: str, after_seq: int, alpha: float) -> tuple[bool, str]:
    """:func:`verdict` on the decisions made at ``placement`` after ``after_seq``."""
    return verdict(store.rewards_by_group(after_seq, placement), alpha)
