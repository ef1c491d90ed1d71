"""A simulated shop: visitors, eligible interventions, the true response, costs and delays.

>>> import numpy as np, simulator
>>> world = simulator.make_world("default")
>>> batch = world.visitors(4, np.random.default_rng(0))
>>> batch.X.shape, batch.mask.shape, len(world.actions)
((4, 32), (4, 8), 8)
>>> sorted(batch.contexts[0]) == sorted(world.space.keys)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bandit.config.shop import ShopConfig, load_config
from bandit.domain.objective import Objective
from simulator.worlds.population import sample_columns
from simulator.worlds.response import Response, traits


@dataclass(frozen=True)
class VisitorBatch:
    """A batch of simulated visitors.

    ``columns`` holds the raw context by key, ``X`` its encoding by the world's FeatureSpace,
    ``mask`` the eligible interventions and ``t`` each visitor's index in the world's timeline.
    """

    columns: dict
    X: np.ndarray
    mask: np.ndarray
    t: np.ndarray
    Z: np.ndarray

    def __len__(self) -> int:
        return len(self.X)

    @cached_property
    def contexts(self) -> list[dict]:
        """Plain JSON-serializable dicts with the keys a storefront would send."""
        keys = list(self.columns)
        cols = [self.columns[k].tolist() for k in keys]
        return [dict(zip(keys, row)) for row in zip(*cols)]


@dataclass(frozen=True)
class Outcomes:
    """Sampled outcomes: conversion, order value (0 without), incentive cost, delay in seconds."""

    converted: np.ndarray
    order_value: np.ndarray
    incentive_cost: np.ndarray
    delay_s: np.ndarray


class World:
    """A shop to learn in, with exact expected rewards for the oracle.

    Parameters
    ----------
    config : ShopConfig
        Actions, feature schema and objective (the default shop when None).
    response : Response
        The true response; ``Response.default`` when None.
    drift : (Response, start, ramp) or None
        After visitor ``start`` the response moves to another one over ``ramp`` visitors.
    name : str
        Scenario name for reports.
    """

    def __init__(self, config: ShopConfig | None = None, response: Response | None = None,
                 drift: tuple[Response, int, int] | None = None, name: str = "custom"):
        self.config = config or load_config()
        self.space = self.config.feature_space()
        self.actions = self.config.action_ids
        self.response = response or Response.default(self.actions)
        self.drift = drift
        self.name = name
        self.objective = self.config.objective
        self._cost_pct = np.array([a.cost_pct for a in self.config.actions])
        self._cost_fixed = np.array([a.cost_fixed for a in self.config.actions])
        self._idx = {a: i for i, a in enumerate(self.actions)}

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    def visitors(self, n: int, rng: np.random.Generator, start: int = 0) -> VisitorBatch:
        """Draw ``n`` visitors; ``start`` is the index of the first in the world's timeline."""
        columns = sample_columns(n, rng)
        X = self.space.transform_columns(columns)
        return VisitorBatch(columns, X, self._eligible(columns), start + np.arange(n),
                            traits(columns))

    def _eligible(self, columns) -> np.ndarray:
        mask = np.ones((len(columns["cart_value"]), self.n_actions), dtype=bool)
        # an upsell needs something to upgrade, a cross-sell a product to go with
        if "upsell_bundle" in self._idx:
            mask[:, self._idx["upsell_bundle"]] = columns["cart_value"] > 0
        if "cross_sell" in self._idx:
            mask[:, self._idx["cross_sell"]] = np.isin(columns["page_type"], ("product", "cart"))
        return mask

    def _response_at(self, t: np.ndarray) -> list[tuple[np.ndarray, Response]]:
        """Groups of rows with the response in force at their time."""
        if self.drift is None:
            return [(np.ones(len(t), dtype=bool), self.response)]
        after, start, ramp = self.drift
        w = np.clip((t - start) / max(ramp, 1), 0.0, 1.0)
        levels = np.round(w * 20) / 20  # drift in 5% steps: few distinct responses per batch
        return [(levels == lv, self.response.blend(after, float(lv))) for lv in np.unique(levels)]

    def _moments(self, batch: VisitorBatch) -> tuple[np.ndarray, np.ndarray]:
        p = np.empty((len(batch), self.n_actions))
        mu = np.empty_like(p)
        for rows, resp in self._response_at(batch.t):
            p[rows] = resp.conversion_probability(batch.Z[rows])
            mu[rows] = resp.log_value_mean(batch.Z[rows])
        return p, mu

    def _objective(self, objective) -> Objective:
        if objective is None:
            return self.objective
        if isinstance(objective, Objective):
            return objective
        return Objective(objective, self.objective.margin)

    def objective_spec(self, objective=None):
        """The objective as policies read it (``policies.ObjectiveSpec``: kind, margin, each
        action's costs), for policies that learn the outcome's parts."""
        import policies

        o = self._objective(objective)
        return policies.ObjectiveSpec(o.kind, o.margin, tuple(self._cost_pct / 100.0),
                                      tuple(self._cost_fixed))

    def policy(self, spec: str, seed: int | None = None, objective=None):
        """A fresh policy for this shop, built as the engine builds one for a shop: with the
        features' names, the action ids and features, and the objective (so defaults that
        depend on the objective, and policies that learn its parts, behave here as online).

        >>> import simulator
        >>> simulator.make_world("default", seed=0).policy("linucb", seed=0).n_actions
        8
        """
        import policies

        return policies.make(spec, n_actions=self.n_actions, n_features=self.space.dim,
                             seed=seed, feature_names=self.space.names, action_ids=self.actions,
                             action_features=self.config.action_features()[0],
                             objective=self.objective_spec(objective))

    def expected_rewards(self, batch: VisitorBatch, objective=None) -> np.ndarray:
        """(n, K) exact expected reward of each action for each visitor (ineligible included)."""
        p, mu = self._moments(batch)
        mean_value = np.exp(mu + 0.5 * self.response.value_sigma**2)
        return self._objective(objective).expected(p, mean_value, self._cost_pct, self._cost_fixed)

    def conversion_rates(self, batch: VisitorBatch) -> np.ndarray:
        """(n, K) true conversion probabilities."""
        return self._moments(batch)[0]

    def outcomes(self, batch: VisitorBatch, actions: np.ndarray, rng: np.random.Generator
                 ) -> Outcomes:
        """Sample what each visitor does after seeing ``actions`` (indices)."""
        p, mu = self._moments(batch)
        rows = np.arange(len(batch))
        converted = rng.random(len(batch)) < p[rows, actions]
        value = np.exp(mu[rows, actions] + self.response.value_sigma
                       * rng.standard_normal(len(batch)))
        order_value = np.where(converted, np.round(value, 2), 0.0)
        cost = np.where(converted, self._cost_pct[actions] / 100.0 * order_value
                        + self._cost_fixed[actions], 0.0)
        # most orders follow within the hour, some after days (lognormal, median 20 minutes)
        delay = np.where(converted, rng.lognormal(np.log(1200.0), 1.3, len(batch)), np.nan)
        return Outcomes(converted, order_value, cost, delay)

    def rewards(self, outcomes: Outcomes, objective=None) -> np.ndarray:
        """Realized rewards of sampled outcomes under an objective."""
        return self._objective(objective).reward(outcomes.converted, outcomes.order_value,
                                                 outcomes.incentive_cost)
