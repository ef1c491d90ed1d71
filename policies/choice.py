"""Distributions over a row's eligible actions that policies build their choice from.

Each takes scores or draws for (n, K) rows and a (n, K) eligibility mask and returns (n, K)
probabilities that sum to 1 over the eligible actions; ``policies.base`` then applies the
propensity floor.
"""

from __future__ import annotations

import numpy as np


def greedy(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Uniform distribution over the eligible actions with the highest score (ties split).

    >>> greedy(np.array([[1.0, 3.0, 3.0]]), np.array([[True, True, True]])).tolist()
    [[0.0, 0.5, 0.5]]
    """
    s = np.where(mask, scores, -np.inf)
    best = s.max(axis=1, keepdims=True)
    top = s >= best - 1e-12 * (1.0 + np.abs(best))
    return top / top.sum(axis=1, keepdims=True)


def warm_up_then_greedy(warm: np.ndarray, mask: np.ndarray, scores, prices=0.0
                        ) -> np.ndarray:
    """Actions still in their warm-up (``warm``, (K,)) are tried first, uniformly among the
    eligible ones; rows with none of them take the greedy choice on ``scores()`` (a callable
    that subtracts ``prices`` itself, so that the first visitors, all warming, never compute
    a bound).

    Under budget pacing (``prices``, scalar or (n, K)) the warm-up tries the cheapest warming
    actions first: with nothing learned every estimate is equal, so ``estimate - price`` is
    decided by the price alone. Without a price (0, as long as spend keeps to the plan) that
    is every warming action, uniformly. It matters for a policy that learns a window late:
    its whole first window is warm-up, and the price could not hold that day's budget.

    >>> m = np.ones((1, 3), bool)
    >>> warm_up_then_greedy(np.array([False, True, True]), m, lambda: None).tolist()
    [[0.0, 0.5, 0.5]]
    >>> warm_up_then_greedy(np.array([True, True, True]), m, lambda: None,
    ...                     prices=np.array([[0.0, 0.0, 3.0]])).tolist()
    [[0.5, 0.5, 0.0]]
    >>> warm_up_then_greedy(np.zeros(3, bool), m, lambda: np.array([[0.0, 2.0, 1.0]])).tolist()
    [[0.0, 1.0, 0.0]]
    """
    if not warm.any():  # after the first few visitors: greedy alone
        return greedy(scores(), mask)
    warming = mask & warm[None, :]
    tried_first = warming.any(axis=1, keepdims=True)
    cheapest = greedy(np.broadcast_to(-np.asarray(prices, dtype=float), mask.shape),
                      np.where(tried_first, warming, mask))  # rows without: unused
    if tried_first.all():
        return cheapest
    return np.where(tried_first, cheapest, greedy(scores(), mask))


def uniform_over(mask: np.ndarray) -> np.ndarray:
    """Uniform distribution over the eligible actions of each row."""
    return mask / mask.sum(axis=1, keepdims=True)


def argmax_frequencies(draws: np.ndarray) -> np.ndarray:
    """(n, K) share of the S draws in which each action is the argmax, from (n, S, K) draws.

    >>> argmax_frequencies(np.array([[[0.0, 1.0], [2.0, 1.0]]])).tolist()
    [[0.5, 0.5]]
    """
    n, samples, k = draws.shape
    flat = (np.arange(n)[:, None] * k + draws.argmax(axis=2)).ravel()
    return np.bincount(flat, minlength=n * k).reshape(n, k) / samples
