"""The policy contract: one ``probabilities / act / update`` signature for every learner.

The base class does validation, masking, the propensity floor, sampling and RNG state once
(template method); a policy fills three small hooks:

* ``_preferences(X, mask)`` -> (n, K) distribution over the eligible actions, before the floor;
* ``_learn(X, actions, rewards, propensities, mask)`` and, for ``additive`` policies,
  ``_relabel(X, actions, old_rewards, new_rewards, propensities, mask)``;
* ``_state()`` / ``_load_state(state)`` and, to grow, ``_grow(n)``.

Every eligible action keeps probability >= a floor, so any log it writes can be evaluated
off-policy (``policies.floor``: how large, and why).

>>> import numpy as np
>>> from policies import make
>>> policy = make("uniform", n_actions=3, n_features=2, seed=0)
>>> policy.probabilities(np.ones((1, 2)), np.array([[True, False, True]])).tolist()
[[0.5, 0.0, 0.5]]
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from .blas import limit_blas_threads
from .floor import FLOOR_BUDGET, FLOOR_MAX, apply_floor, floor_per_action
from .objective import ObjectiveSpec, check_outcomes

STATE_VERSION = 1


class NonFiniteStateError(ValueError):
    """A policy's state holds NaN or infinity: it must not decide (its owner rebuilds it)."""


class Policy(ABC):
    """Base class of every policy. See the module docstring for the hooks.

    Parameters
    ----------
    n_actions, n_features : int
        K actions and d context columns (including any bias column).
    seed : int or None
        Seed of the policy's one ``np.random.Generator``.
    floor : float or None
        Minimum probability of every eligible action; None (default): the exploration budget
        ``min(0.005, 0.04 / k)`` for ``k`` eligible actions (module docstring).
    feature_names : sequence of str, optional
        Names of the d columns (VW namespaces, readable explanations).
    action_ids : sequence of str, optional
        Names of the K actions.
    action_features : (K, p) array, optional
        Numeric description of the actions, for policies that share strength across actions.
    objective : ObjectiveSpec, optional
        How a decision's outcome becomes its reward (kind, margin, each action's costs), for
        policies that learn the outcome's parts (``update(..., converted=, ...)``).
    """

    name: ClassVar[str] = ""
    #: False for policies that never change (uniform, fixed): replay evaluates them as fixed
    #: targets instead of replaying them through the log.
    learns: ClassVar[bool] = True
    #: True when ``probabilities`` is exact; False when it is a Monte Carlo estimate.
    exact_probabilities: ClassVar[bool] = True
    #: True when the learned state is a sum over events, so ``relabel`` can change a reward
    #: learned earlier (the online loop then learns at decision time; see ``relabel``).
    additive: ClassVar[bool] = False
    #: True when a policy restored by ``set_state`` and then updated decides exactly like the
    #: original; False when it keeps random state it cannot save (decisions right after
    #: loading still match).
    lossless_learning: bool = True
    #: True when the policy chooses by estimated rewards from which a per-action price can
    #: be subtracted (``probabilities(..., prices=)``: budget pacing); its ``_preferences``
    #: then takes ``prices`` as a third argument
    priceable: ClassVar[bool] = False
    #: floats of the decision notes ``act`` leaves in ``last_notes`` for ``update(...,
    #: decision_notes=)`` (0: the policy notes nothing; the promotion gate, policies.gated)
    notes_width: int = 0
    #: the default floor ``min(floor_max, floor_budget / k)`` when a spec sets no ``floor``
    floor_max: ClassVar[float] = FLOOR_MAX
    floor_budget: ClassVar[float] = FLOOR_BUDGET
    #: one line per constructor parameter, shown by ``cartwheel policies`` (a contract test
    #: checks that every accepted parameter has one)
    PARAMS: ClassVar[dict[str, str]] = {
        "floor": "minimum probability of every eligible action, so logs stay evaluable "
                 "(None: 0.5% each, at most 4% of traffic over all eligible actions)"}

    def __init__(self, n_actions: int, n_features: int, *, seed: int | None = None,
                 floor: float | None = None, feature_names=None, action_ids=None,
                 action_features=None, objective: ObjectiveSpec | None = None):
        if int(n_actions) < 1 or int(n_features) < 1:
            raise ValueError(f"{self.name}: need n_actions >= 1 and n_features >= 1, "
                             f"got {n_actions} and {n_features}")
        limit_blas_threads()  # once per process (policies.blas)
        if floor is not None and not 0.0 <= float(floor) < 1.0:
            raise ValueError(f"{self.name}: floor must be in [0, 1) or None, got {floor!r}")
        self.n_actions, self.n_features = int(n_actions), int(n_features)
        self.floor = None if floor is None else float(floor)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.feature_names = None if feature_names is None else tuple(feature_names)
        self.action_ids = None if action_ids is None else tuple(action_ids)
        self.action_features = None if action_features is None else np.asarray(action_features, float)
        if self.feature_names is not None and len(self.feature_names) != self.n_features:
            raise ValueError(f"{self.name}: {len(self.feature_names)} feature_names for "
                             f"{self.n_features} features")
        if self.action_ids is not None and len(self.action_ids) != self.n_actions:
            raise ValueError(f"{self.name}: {len(self.action_ids)} action_ids for "
                             f"{self.n_actions} actions")
        if self.action_features is not None and (
                self.action_features.ndim != 2 or len(self.action_features) != self.n_actions):
            raise ValueError(f"{self.name}: action_features must be (n_actions, p)")
        if objective is not None and not isinstance(objective, ObjectiveSpec):
            raise ValueError(f"{self.name}: objective must be a policies.ObjectiveSpec")
        self.objective = objective
        self.n_updates = 0
        #: rows whose learned reward was replaced (:meth:`relabel`); with ``n_updates`` it
        #: counts every change to the model, so ``n_updates + n_relabels`` names a state
        self.n_relabels = 0
        self.spec = self.name

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _preferences(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(n, K) distribution over eligible actions, zero where ``mask`` is False."""

    def _learn(self, X, actions, rewards, propensities, mask) -> None:
        """Learn from a validated batch; policies that do not learn leave it empty."""

    def _relabel(self, X, actions, old_rewards, new_rewards, propensities, mask) -> None:
        """Swap learned rewards (only for ``additive`` policies)."""
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``_state`` returned."""

    def _grow(self, n: int) -> None:
        """Make room for ``n`` new actions at the end."""

    # ------------------------------------------------------------------ contract
    def probabilities(self, X: np.ndarray, mask: np.ndarray | None = None,
                      prices: np.ndarray | None = None) -> np.ndarray:
        """(n, K) probabilities of each action, 0 where not eligible, rows sum to 1.

        ``prices`` ((K,) or (n, K), in reward units) is subtracted from each action's
        estimated reward before choosing: an incentive's shadow price when the budget is paced
        (:mod:`bandit.core.pacing`). Only ``priceable`` policies take it; None changes nothing.

        Raises :class:`NonFiniteStateError` rather than return probabilities that are not
        finite (a damaged state must never decide)."""
        X, mask = self._check_inputs(X, mask)
        if prices is None:
            Q = self._preferences(X, mask)
        else:
            Q = self._preferences(X, mask, self._check_prices(prices, len(X)))
        # checked before the floor, whose "nothing above the floor: uniform" would hide a NaN;
        # NaN and infinity propagate into the sum: one check
        if not np.isfinite(Q.sum()):
            raise NonFiniteStateError(f"{self.name}: the model's state is not finite")
        return self._apply_floor(Q, mask)

    def score_parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """What a decision's scores are made of, for explanations: ``(contributions, extra)``
        with ``contributions[i, k, j]`` feature j's additive share of action k's score for row
        i and ``extra[i, k]`` the part no feature owns (an exploration bonus), so that a score
        is ``contributions.sum(-1) + extra``. None (the default): this policy's choice is not
        an additive function of the features."""
        return None

    def why_no_score_parts(self) -> str:
        """Why :meth:`score_parts` is None now, in words a shop's analyst reads."""
        return f"{self.name} does not score actions by adding up feature effects"

    def finite(self) -> bool:
        """Whether every number of the learned state is finite."""
        return all(np.isfinite(v).all() for v in self._state().values()
                   if np.asarray(v).dtype.kind == "f")

    def _check_prices(self, prices, n: int) -> np.ndarray:
        if not self.priceable:
            raise ValueError(f"{self.name} does not choose by estimated rewards, so it cannot "
                             "weigh an incentive's price (budget pacing): use linucb, lints, "
                             "egreedy or profit, or pacing = \"none\"")
        prices = np.asarray(prices, dtype=float)
        if prices.shape not in ((self.n_actions,), (n, self.n_actions)):
            raise ValueError(f"{self.name}: prices must be ({self.n_actions},) or "
                             f"({n}, {self.n_actions}), got {prices.shape}")
        if not np.isfinite(prices).all():
            raise ValueError(f"{self.name}: prices must be finite")
        return np.broadcast_to(prices, (n, self.n_actions))

    def act(self, X: np.ndarray, mask: np.ndarray | None = None,
            prices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw one action per row; return actions (n,) and the probabilities they were drawn
        with (``prices``: see :meth:`probabilities`)."""
        P = self.probabilities(X, mask, prices)
        return self._sample(P)

    def _sample(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(P) == 1:  # one visitor (the online path): plain floats beat six numpy calls
            row = P[0].tolist()
            u = self.rng.random() * sum(row)
            cdf, action = 0.0, len(row) - 1
            for k, p in enumerate(row):
                cdf += p
                if cdf > u:  # same rule as below: the first index whose cdf exceeds u
                    action = k
                    break
            return np.array([action]), np.array([row[action]])
        cdf = np.cumsum(P, axis=1)
        cdf /= cdf[:, -1:]
        u = self.rng.random(len(P))
        # first index whose cdf exceeds u: zero-probability actions never satisfy it
        actions = (cdf <= u[:, None]).sum(axis=1)
        return actions, P[np.arange(len(P)), actions]

    def update(self, X, actions, rewards, propensities, mask=None, *, converted=None,
               order_values=None, costs=None) -> None:
        """Learn from a batch of logged decisions (mask as it was when they were made).

        ``converted``, ``order_values`` and ``costs`` (length n: whether the visitor converted,
        the order value, the incentive cost actually paid) are the parts ``rewards`` was
        computed from; give all three or none. Policies that learn only the scalar ignore
        them (:meth:`_learn_outcomes`).
        """
        X, actions, (rewards,), propensities, mask = self._check_batch(
            X, actions, (rewards,), propensities, mask)
        outcomes = check_outcomes(self.name, len(X), converted, order_values, costs)
        if len(X):
            if outcomes is None:
                self._learn(X, actions, rewards, propensities, mask)
            else:
                self._learn_outcomes(X, actions, rewards, propensities, mask, outcomes)
            self.n_updates += len(X)

    def relabel(self, X, actions, old_rewards, new_rewards, propensities, mask=None, *,
                converted=None, order_values=None, costs=None) -> None:
        """Replace the rewards learned earlier for these events (``additive`` policies only).

        The online loop learns each decision at once with a provisional reward (the default,
        not converted) and relabels it when its outcome arrives; for policies whose statistics
        are sums over events the result equals learning the final reward once. The keywords
        are the final outcome's parts, as for :meth:`update`. Counted in ``n_relabels``.
        """
        if not self.additive:
            raise NotImplementedError(f"{self.name} cannot relabel learned events")
        X, actions, (old, new), propensities, mask = self._check_batch(
            X, actions, (old_rewards, new_rewards), propensities, mask)
        outcomes = check_outcomes(self.name, len(X), converted, order_values, costs)
        if len(X):
            if outcomes is None:
                self._relabel(X, actions, old, new, propensities, mask)
            else:
                self._relabel_outcomes(X, actions, old, new, propensities, mask, outcomes)
            self.n_relabels += len(X)

    def _learn_outcomes(self, X, actions, rewards, propensities, mask, outcomes) -> None:
        """Learn with the outcome's parts (:class:`~policies.objective.Outcomes`); the scalar
        policies' default ignores them."""
        self._learn(X, actions, rewards, propensities, mask)

    def _relabel_outcomes(self, X, actions, old_rewards, new_rewards, propensities, mask,
                          outcomes) -> None:
        self._relabel(X, actions, old_rewards, new_rewards, propensities, mask)

    def _check_batch(self, X, actions, reward_arrays, propensities, mask):
        X, mask = self._check_inputs(X, mask)
        n = len(X)
        actions = np.asarray(actions)
        rewards = tuple(np.asarray(r, dtype=float) for r in reward_arrays)
        propensities = np.asarray(propensities, dtype=float)
        for label, arr in (("actions", actions), *(("rewards", r) for r in rewards),
                           ("propensities", propensities)):
            if arr.shape != (n,):
                raise ValueError(f"{self.name}: {label} must have shape ({n},), got {arr.shape}")
        if actions.dtype.kind not in "iu":
            raise ValueError(f"{self.name}: actions must be integer indices")
        if n and (actions.min() < 0 or actions.max() >= self.n_actions):
            raise ValueError(f"{self.name}: actions must be in [0, {self.n_actions})")
        if not mask[np.arange(n), actions].all():
            row = int(np.flatnonzero(~mask[np.arange(n), actions])[0])
            raise ValueError(f"{self.name}: row {row}: action {actions[row]} was not eligible")
        if not all(np.isfinite(r).all() for r in rewards):
            raise ValueError(f"{self.name}: rewards must be finite")
        if not ((propensities > 0) & (propensities <= 1)).all():
            raise ValueError(f"{self.name}: propensities must be in (0, 1]")
        return X, actions.astype(np.intp), rewards, propensities, mask

    def get_state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly where this policy is (lossless): copies, so
        later learning does not change a state already taken (a snapshot being written)."""
        state = {f"policy.{k}": np.array(v, copy=True) for k, v in self._state().items()}
        state["meta"] = np.array(json.dumps({
            "name": self.name, "version": STATE_VERSION, "n_actions": self.n_actions,
            "n_features": self.n_features, "n_updates": self.n_updates,
            "n_relabels": self.n_relabels, "rng": self.rng.bit_generator.state}))
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a state from :meth:`get_state` (raises ValueError when it does not fit)."""
        meta = json.loads(str(state["meta"]))
        if meta["name"] != self.name:
            raise ValueError(f"state is for policy {meta['name']!r}, not {self.name!r}")
        if meta["version"] != STATE_VERSION:
            raise ValueError(f"state version {meta['version']} is not supported")
        if (meta["n_actions"], meta["n_features"]) != (self.n_actions, self.n_features):
            raise ValueError(
                f"state has {meta['n_actions']} actions x {meta['n_features']} features; this "
                f"{self.name} has {self.n_actions} x {self.n_features}")
        self._load_state({k[len("policy."):]: np.array(v) for k, v in state.items()
                          if k.startswith("policy.")})
        self.n_updates = int(meta["n_updates"])
        self.n_relabels = int(meta.get("n_relabels", 0))  # states before 0.3 lack it
        self.rng.bit_generator.state = meta["rng"]

    def add_actions(self, n: int, *, action_ids=None, action_features=None) -> None:
        """Grow to K + n actions, keeping what was learned about the others.

        ``action_ids`` and ``action_features`` describe the new actions when the policy was
        given descriptions at construction.
        """
        n = int(n)
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return
        if self.action_ids is not None:
            new_ids = tuple(action_ids) if action_ids is not None else tuple(
                f"action_{i}" for i in range(self.n_actions, self.n_actions + n))
            if len(new_ids) != n:
                raise ValueError(f"{len(new_ids)} action_ids for {n} new actions")
            self.action_ids = (*self.action_ids, *new_ids)
        if self.action_features is not None:
            extra = (np.zeros((n, self.action_features.shape[1])) if action_features is None
                     else np.asarray(action_features, float).reshape(n, -1))
            self.action_features = np.vstack([self.action_features, extra])
        self._grow(n)
        self.n_actions += n

    # ------------------------------------------------------------------ helpers
    def _check_inputs(self, X, mask) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"{self.name}: X must have shape (n, {self.n_features}), "
                             f"got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError(f"{self.name}: X contains NaN or infinite values")
        if mask is None:
            return X, np.ones((len(X), self.n_actions), dtype=bool)
        mask = np.asarray(mask)
        if mask.shape != (len(X), self.n_actions) or mask.dtype != bool:
            raise ValueError(f"{self.name}: mask must be a bool array of shape "
                             f"({len(X)}, {self.n_actions}), got {mask.dtype} {mask.shape}")
        empty = ~mask.any(axis=1)
        if empty.any():
            raise ValueError(f"{self.name}: mask row {int(np.flatnonzero(empty)[0])} has no "
                             "eligible action")
        return X, mask

    def floor_for(self, k: np.ndarray | int) -> np.ndarray | float:
        """The per-action floor of a row with ``k`` eligible actions (``policies.floor``).

        >>> from policies import make
        >>> pol = make("uniform", n_actions=10, n_features=1)
        >>> float(pol.floor_for(2)), float(pol.floor_for(16))
        (0.005, 0.0025)
        """
        return floor_per_action(k, self.floor, self.floor_max, self.floor_budget)

    def _apply_floor(self, Q: np.ndarray, mask: np.ndarray) -> np.ndarray:
        k = mask.sum(axis=1, keepdims=True)
        return apply_floor(Q, mask, k, self.floor_for(k))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_actions={self.n_actions}, n_features={self.n_features})"
