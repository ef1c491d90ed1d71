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


def warm_up_then_greedy(warm: np.ndarray, mask: np.ndarray, scores) -> np.ndarray:
    """Actions still in their warm-up (``warm``, (K,)) are tried first, uniformly among the
    eligible ones; rows with none of them take the greedy choice on ``scores()`` (a callable,
    so that the first visitors, all warming, never compute a bound).

    >>> m = np.ones((1, 3), bool)
    >>> warm_up_then_greedy(np.array([False, True, True]), m, lambda: None).tolist()
    [[0.0, 0.5, 0.5]]
    >>> warm_up_then_greedy(np.zeros(3, bool), m, lambda: np.array([[0.0, 2.0, 1.0]])).tolist()
    [[0.0, 1.0, 0.0]]
    """
    if not warm.any():  # after the first few visitors: greedy alone
        return greedy(scores(), mask)
    warming = mask & warm[None, :]
    tried_first = warming.any(axis=1, keepdims=True)
    if tried_first.all():
        return uniform_over(warming)
    first = uniform_over(np.where(tried_first, warming, mask))  # rows without: unused
    return np.where(tried_first, first, greedy(scores(), mask))


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
