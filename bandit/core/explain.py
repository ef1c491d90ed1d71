"""A reason per decision: which context features moved the chosen action's score above the
runner-up's (``POST /v1/decide`` with ``"explain": true``; computed on request only, never
stored).

For a policy whose score is additive in the features (:meth:`policies.Policy.score_parts`:
the linear ones), the difference between the chosen action's score and the best other
eligible action's is split by the shop's features (a category's one-hot columns, a cyclic
feature's sine and cosine are one feature), the largest ``TOP`` by size are listed with the
value the model saw, and the rest are summed into "(other features)"; an exploration bonus
is its own "(exploration)" line. The listed contributions add up to the score difference.

>>> import numpy as np
>>> from bandit.config.shop import load_config
>>> config = load_config(None)
>>> space = config.feature_space()
>>> x, seen = space.normalize_row({"device": "mobile", "cart_value": 80.0})
>>> contributions = np.zeros((1, 2, space.dim))
>>> contributions[0, 0, space.names.index("cart_value")] = 0.5  # action 0 likes big carts
>>> reasons, versus = explain_row(space, contributions[0], np.zeros(2), seen, 0, [True, True])
>>> versus, reasons[0]
(1, Reason(feature='cart_value', value=80.0, contribution=0.5))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP = 3  # features listed by name; with "(other features)" and "(exploration)" at most 5


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature's share of the chosen action's lead over the runner-up (score units)."""

    feature: str
    value: object
    contribution: float


def source_of(column: str) -> str:
    """The shop's feature a column of the encoding comes from.

    >>> source_of("device=mobile"), source_of("hour:sin"), source_of("cart_value")
    ('device', 'hour', 'cart_value')
    """
    return column.split("=", 1)[0].split(":", 1)[0]


def explain_row(space, contributions: np.ndarray, extra: np.ndarray, seen: dict,
                chosen: int, eligible, prices: np.ndarray | None = None
                ) -> tuple[list[Reason], int] | tuple[None, str]:
    """Reasons for one decision: ``contributions`` (K, d) and ``extra`` (K,) from
    ``score_parts``, ``seen`` the context as the model saw it, ``chosen`` the action's column,
    ``eligible`` per column, ``prices`` (K,) the budget's incentive prices it was chosen with
    (:mod:`bandit.core.pacing`). Returns (reasons, the runner-up's column), or (None, why)."""
    prices = np.zeros(len(extra)) if prices is None else prices
    scores = contributions.sum(axis=1) + extra - prices
    others = [k for k, ok in enumerate(eligible) if ok and k != chosen]
    if not others:
        return None, "only one action was eligible: there is no runner-up to compare with"
    versus = max(others, key=lambda k: scores[k])
    lead = contributions[chosen] - contributions[versus]
    by_feature: dict[str, float] = {}
    value: dict[str, object] = {}
    for column, share in zip(space.names, lead):
        if share:  # a column contributes only where the visitor has it
            name = source_of(column)
            by_feature[name] = by_feature.get(name, 0.0) + share
            # a category's value is its column's (the unknown marker included), a number's
            # the one the model saw (None: missing, its default stood in)
            value[name] = column.split("=", 1)[1] if "=" in column else seen.get(name)
    ranked = sorted(by_feature.items(), key=lambda item: -abs(item[1]))
    reasons = [Reason("(baseline)" if name == "bias" else name,
                      None if name == "bias" else value[name], float(share))
               for name, share in ranked[:TOP]]
    rest = sum(share for _, share in ranked[TOP:])
    if rest:
        reasons.append(Reason("(other features)", None, float(rest)))
    bonus = float(extra[chosen] - extra[versus])
    if bonus:
        reasons.append(Reason("(exploration)", None, bonus))
    price = float(prices[versus] - prices[chosen])
    if price:  # positive: the runner-up's incentive was priced higher
        reasons.append(Reason("(budget pacing)", None, price))
    if not reasons:  # nothing learned tells them apart yet (a fresh model, say)
        return None, ("no feature separates the chosen action from the runner-up: their "
                      "scores tie, and the policy chose among equals at random")
    return reasons, versus
