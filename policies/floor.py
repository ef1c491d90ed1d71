"""The propensity floor: every eligible action keeps probability >= ``f``.

Why: so that any log a policy writes can be evaluated off-policy. By default the floor is an
exploration *budget*: ``f = min(0.005, 0.04 / k)`` over the ``k`` eligible actions of a row:
0.5% each for up to 8 actions, and never more than 4% of traffic forced to explore however
many actions a shop has (a fixed 0.5% each would force 10% with 20 actions); halving the
earlier 1% cost linucb nothing measurable in the simulated shops and helped on classification
data, where every forced draw is a wrong answer (docs/policies.md). ``floor=x`` in a spec fixes
``f = min(x, 1 / k)`` instead. A policy class may keep another default (``floor_max``,
``floor_budget``): egreedy keeps the earlier 1% each, at most 8%, because its only other
exploration is its uniform epsilon share, which the halved floor left short after a drift. The
trade-off: a smaller floor explores less but makes off-policy estimates noisier (importance
weights up to ``1 / f``: 200 at the default).

The floor is a minimum, not a mixture: an action the policy already gives at least ``f`` is
not pushed further, so a policy that explores by itself pays nothing extra::

    p = f + (1 - k f) * max(q - f, 0) / sum(max(q - f, 0))

which is ``q`` itself when every ``q >= f``, and ``(1 - k f) q + f`` for a greedy ``q``.

>>> import numpy as np
>>> apply_floor(np.array([[0.0, 1.0]]), np.ones((1, 2), bool), 2, 0.005).tolist()
[[0.005, 0.995]]
"""

from __future__ import annotations

import numpy as np

#: the default floor: at most this share of traffic is forced to explore, spread over the
#: eligible actions ...
FLOOR_BUDGET = 0.04
#: ... but no action is forced above this (a shop with two actions explores 0.5%, not 4%)
FLOOR_MAX = 0.005


def floor_per_action(k, floor: float | None, floor_max: float = FLOOR_MAX,
                     floor_budget: float = FLOOR_BUDGET):
    """The floor of each action of a row with ``k`` eligible actions: ``min(floor_max,
    floor_budget / k)`` by default, ``min(floor, 1 / k)`` for a fixed ``floor``."""
    if floor is None:
        return np.minimum(floor_max, floor_budget / k)
    return np.minimum(floor, 1.0 / k)


def apply_floor(Q: np.ndarray, mask: np.ndarray, k, f) -> np.ndarray:
    """(n, K) ``Q`` with every eligible action raised to at least ``f`` (the module's
    formula): ``k`` (n, 1) eligible actions per row, ``f`` their floor."""
    above = np.maximum(Q - f, 0.0)
    above *= mask
    total = above.sum(axis=1, keepdims=True)
    if total.all():  # the usual case, and the cheap one on the one-visitor path
        share = above / total
    else:  # rows where nothing is above the floor (uniform at f = 1/k) stay uniform
        share = np.divide(above, total, out=mask / k, where=total > 0)
    return f * mask + (1.0 - k * f) * share  # rows sum to k f + (1 - k f) = 1
