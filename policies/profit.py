"""``profit``: learn the structure of a shop's reward instead of the zero-inflated scalar.

The expected reward of action a for context x factors as

    conversion: p_a(x)
    revenue:    p_a(x) * v_a(x)
    profit:     p_a(x) * ((m - c_a) * v_a(x) - f_a)

with p_a(x) = P(convert | x, a), v_a(x) = E[order value | converted, x, a], the margin m and
the action's costs (``c_a`` a fraction of the order, ``f_a`` fixed; ``policies.ObjectiveSpec``).
Two ridge models estimate the parts (stacked statistics, no per-event inverse,
``policies._ridge``):

* conversion: a linear probability model on ``converted`` over every decision, or with
  ``conversion=logistic`` a Bayesian logistic regression (``policies._logistic``: a Laplace
  posterior updated in blocks of ``block`` rows; it learns a decision when its outcome is
  final, so the policy is not ``additive``);
* order value: a model of ``log(order value)`` over converted decisions only, with
  ``v = exp(mu + s^2 / 2)`` for log-normal residuals of variance ``s^2``.

Both are shared by all actions plus a per-action deviation, penalized harder
(``policies._pooled``, ``spread``): what converts a visitor is mostly the visitor, so one
model learns it from every decision, and each action's own effect from its rows.

Exploration is optimism over the product (the delta method): the score's standard error is

    se^2 = (g * sd_p * w_p)^2 + (p * h * v * s * w_v)^2,   g = (m - c) v - f,  h = m - c

with ``w_p``, ``w_v`` the ridge widths ``sqrt(x' A^-1 x)`` and ``sd_p``, ``s`` the residual sds
of the two models; the policy plays the argmax of ``mean + alpha * se`` (as linucb does with
one model), after a warm-up of ``warmup`` rows per action. Order values are far less noisy on
the log scale than the zero-inflated reward, so the value part needs far fewer conversions.

With the logistic model each part's bound is taken through its link instead (``scores``). It
learns the default shop better but explores longer at first, so ``linear`` stays the default
(docs/results/profit_learning.md). Through the engine, which learns a non-additive policy's
decisions in decision order once they have closed, it learns one attribution window late.

``bonus=ridge`` keeps the logistic model's means but explores by the delta-method error of a
linear probability model learned beside it (``_scores_with_ridge_bonus``).

``value_spread=auto`` chooses each action's order-value spread by the evidence
(``policies._evidence``) as sales arrive: an upsell whose order values depart gets its own
model, actions that do not stay pooled. ``profit:conversion=logistic,bonus=ridge,
value_spread=auto`` is the recommended spec for profit and revenue objectives (docs/policies.md
gives the measured reasons); for the linear conversion model the default stays 0.3.

Outcomes come as ``update(..., converted=, order_values=, costs=)``; a scalar-only update (a log
that kept only rewards) is read back through the objective: converted where the reward is
nonzero, order value ``(r + f) / (m - c)`` for profit, ``r`` for revenue.

>>> import numpy as np, policies
>>> spec = policies.ObjectiveSpec("revenue", cost_pct=(0, 0), cost_fixed=(0, 0))
>>> pol = policies.make("profit:warmup=0", n_actions=2, n_features=1, objective=spec)
>>> pol.update(np.ones((4, 1)), np.array([0, 0, 1, 1]), np.array([50.0, 0, 0, 0]),
...            np.full(4, 0.5), converted=np.array([True, False, False, False]),
...            order_values=np.array([50.0, 0, 0, 0]), costs=np.zeros(4))
>>> int(pol.act(np.ones((1, 1)), np.ones((1, 2), bool))[0][0])  # the action that sold
0
"""

from __future__ import annotations

import numpy as np

from ._logistic import PooledLogistic, sigmoid
from ._pooled import PooledRidge
from .base import Policy
from .choice import warm_up_then_greedy
from .objective import ObjectiveSpec, Outcomes
from .registry import register

#: defaults by conversion model: the logistic posterior's prior precision and exploration were
#: set on the default shop (docs/results/profit_learning.md)
DEFAULTS = {"logistic": {"lam": 4.0, "alpha": 1.5}, "linear": {"lam": 1.0, "alpha": 1.0}}


def _value_spread(value: float | str) -> tuple[float, bool]:
    """``value_spread`` as (the scale to start from, whether the evidence chooses it): a
    number > 0 is fixed, ``auto`` starts from 0.3 (``policies._evidence``)."""
    if value == "auto":
        return 0.3, True
    if isinstance(value, str) or not value > 0:
        raise ValueError(f"profit: value_spread must be a number > 0 or auto, got {value!r}")
    return float(value), False


@register("profit")
class ProfitPolicy(Policy):
    """Conversion model x order-value model, combined per the objective, optimistic over the
    product (module docstring). Without an ``objective`` the reward is taken as revenue."""

    additive = True
    PARAMS = {"conversion": "the conversion model: linear (a linear probability model, learned "
                            "at once and relabeled) or logistic (learned when a decision's "
                            "outcome is final, in blocks; with bonus=ridge, for 400,000 "
                            "visitors or more in the model's horizon)",
              "block": "logistic conversion model: rows per posterior update (None: 100)",
              "bonus": "logistic conversion model: where its exploration comes from, its "
                       "posterior (bounds through the links) or ridge (the delta-method "
                       "error of a linear probability model learned beside it; None: "
                       "posterior)",
              "lam": "prior precision of the conversion model (None: 4 logistic, 1 linear)",
              "lam_value": "ridge penalty of the (log) order-value model",
              "spread": "how freely an action's conversion model departs from the one all "
                        "actions share (1: as freely as the shared part; near 0: one model)",
              "value_spread": "the same for the order-value model, or auto: chosen for each "
                              "action from the order values by the evidence, refreshed as "
                              "they arrive",
              "alpha": "exploration: how many standard errors of each model's estimate (None: "
                       "1.5 with the posterior bonus, else 1)",
              "warmup": "rows each eligible action learns before the bounds compete",
              "halflife": "forget: a learned row's weight halves after this many more rows of "
                          "its model (None: never)"}

    def __init__(self, n_actions, n_features, *, conversion: str = "linear",
                 block: int | None = None, bonus: str | None = None,
                 lam: float | None = None,
                 lam_value: float = 1.0, spread: float = 1.0, value_spread: float | str = 0.3,
                 alpha: float | None = None,
                 warmup: int = 2, halflife: float | None = None, **kw):
        super().__init__(n_actions, n_features, **kw)
        if conversion not in DEFAULTS:
            raise ValueError(f"profit: conversion must be one of {sorted(DEFAULTS)}, got "
                             f"{conversion!r}")
        if conversion != "logistic" and (block, bonus) != (None, None):
            raise ValueError("profit: block and bonus shape the logistic conversion model; "
                             "add conversion=logistic, or drop them")
        block, bonus = 100 if block is None else block, bonus or "posterior"
        if bonus not in ("posterior", "ridge"):
            raise ValueError(f"profit: bonus must be posterior or ridge, got {bonus!r}")
        lam = DEFAULTS[conversion]["lam"] if lam is None else lam
        self.ridge_bonus = conversion == "logistic" and bonus == "ridge"
        if alpha is None:
            alpha = DEFAULTS["linear" if self.ridge_bonus else conversion]["alpha"]
        if alpha < 0 or warmup < 0:
            raise ValueError("profit: alpha and warmup must be >= 0")
        self.alpha, self.warmup = float(alpha), int(warmup)
        self.logistic = conversion == "logistic"
        if self.logistic:
            self.conv = PooledLogistic(n_actions, n_features, lam, spread, halflife, block)
        else:
            self.conv = PooledRidge(n_actions, n_features, lam, spread, halflife)
        # value_spread=auto: the order values' own evidence chooses it (policies._evidence)
        value_spread, fit_value_spread = _value_spread(value_spread)
        self.value = PooledRidge(n_actions, n_features, lam_value, value_spread, halflife,
                                 fit_value_spread)
        #: bonus=ridge: the linear probability model whose error is the exploration bonus
        self.conv_ridge = (PooledRidge(n_actions, n_features, DEFAULTS["linear"]["lam"], spread,
                                       halflife) if self.ridge_bonus else None)
        if halflife is not None or self.logistic:
            self.additive = False
        if self.objective is None:
            self.objective = ObjectiveSpec("revenue", 1.0, (0.0,) * n_actions,
                                           (0.0,) * n_actions)

    # ------------------------------------------------------------------ the models
    def _objective_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) ``h`` and ``f`` of ``reward = p (h v - f)``: margin minus the share an
        incentive costs and its fixed cost (1 and 0 for revenue)."""
        pct, fixed = self.objective.costs(self.n_actions)
        if self.objective.kind == "revenue":
            return np.ones(self.n_actions), np.zeros(self.n_actions)
        return self.objective.margin - pct, fixed

    def _probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) conversion probabilities and their standard errors (for the logistic
        model by the delta method, ``p (1 - p) sd(logit)``)."""
        if self.logistic:
            p = sigmoid(self.conv.logits(X))
            return p, p * (1.0 - p) * self.conv.logit_sds(X)
        return (np.clip(self.conv.means(X), 0.0, 1.0),
                self.conv.noise_sd() * self.conv.widths(X))

    def _order_values(self, X: np.ndarray, bonus: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) expected order value ``v = exp(mu + bonus sd_mu + s^2 / 2)`` of a sale
        (log-normal residuals of sd ``s``; ``bonus`` standard errors of ``mu`` above its
        estimate for an upper bound) and ``sd_mu``, the standard error of the log's mean."""
        s = self.value.noise_sd()
        sd_mu = s * self.value.widths(X)
        log_v = self.value.means(X) + bonus * sd_mu + 0.5 * s * s
        return np.exp(np.minimum(log_v, 700.0)), sd_mu

    def means_and_se(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) expected reward of each action and the delta-method standard error."""
        p, sd_p = self._probabilities(X)
        return self._combined(X, p, sd_p, p)

    def _combined(self, X, p, sd_p, p_se) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) ``p g`` with ``g = h v - f`` (``p`` for a conversion objective) and its
        delta-method standard error ``sqrt((g sd_p)^2 + (p_se h v sd_mu)^2)``: ``p_se`` is
        the conversion estimate the error is taken at (``p`` itself, or with ``bonus=ridge``
        the linear model's whose ``sd_p`` it is)."""
        if self.objective.kind == "conversion":
            return p, sd_p
        h, f = self._objective_parts()
        v, sd_mu = self._order_values(X)
        g = h * v - f
        return p * g, np.sqrt((g * sd_p) ** 2 + (p_se * h * v * sd_mu) ** 2)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """(n, K) optimistic expected rewards: with the linear conversion model, the mean plus
        ``alpha`` delta-method standard errors; with the logistic one, each part's upper bound
        taken through its link, ``sigmoid(l + alpha sd_l) (h exp(mu + alpha sd_mu + s^2/2) - f)``
        (the lower bound of ``p`` where the value part is a loss): the delta method's bonus
        ``p (1 - p) sd_l`` shrinks with ``p``, so an action estimated unlikely would earn less
        exploration than its logit's uncertainty warrants."""
        if not self.logistic:
            mean, se = self.means_and_se(X)
            return mean + self.alpha * se
        if self.ridge_bonus:
            return self._scores_with_ridge_bonus(X)
        a, logits, sd_l = self.alpha, self.conv.logits(X), self.conv.logit_sds(X)
        p_hi = sigmoid(logits + a * sd_l)
        if self.objective.kind == "conversion":
            return p_hi
        h, f = self._objective_parts()
        g_hi = h * self._order_values(X, bonus=a)[0] - f
        return np.where(g_hi > 0, p_hi, sigmoid(logits - a * sd_l)) * g_hi

    def _scores_with_ridge_bonus(self, X: np.ndarray) -> np.ndarray:
        """``bonus=ridge``: the logistic model's expected reward plus ``alpha`` delta-method
        standard errors of the linear probability model learned beside it (its pooled
        residual sd x ridge width: uncertainty in reward units, as linucb has it). The
        posterior's own bounds explore longer at first; this bonus keeps the linear model's
        pace while the logistic model supplies the means."""
        mean, se = self._combined(X, sigmoid(self.conv.logits(X)),
                                  self.conv_ridge.noise_sd() * self.conv_ridge.widths(X),
                                  np.clip(self.conv_ridge.means(X), 0.0, 1.0))
        return mean + self.alpha * se

    def _warming(self) -> np.ndarray:
        return self.conv.counts < self.warmup - 1e-9

    priceable = True

    def expected_costs(self, X: np.ndarray) -> np.ndarray:
        """(n, K) expected incentive cost per decision, ``p_a(x) (c_a v_a(x) + f_a)``: what
        budget pacing prices (:mod:`bandit.core.pacing`)."""
        X = np.asarray(X, dtype=float)
        pct, fixed = self.objective.costs(self.n_actions)
        p, _ = self._probabilities(X)
        return p * (pct * self._order_values(X)[0] + fixed)

    def cost_model_rows(self) -> np.ndarray:
        """(K,) rows of each action :meth:`expected_costs` has learned from (faded when
        forgetting): how far budget pacing trusts it over the log's mean cost."""
        return self.conv.counts

    def _preferences(self, X, mask, prices=0.0):
        return warm_up_then_greedy(self._warming(), mask, lambda: self.scores(X) - prices,
                                   prices)

    # ------------------------------------------------------------------ learning
    def _outcomes_of(self, actions, rewards) -> Outcomes:
        """What a reward says of its outcome, through the objective (a scalar-only log)."""
        converted = rewards != 0
        pct, fixed = self.objective.costs(self.n_actions)
        if self.objective.kind == "profit":
            h = self.objective.margin - pct[actions]
            values = np.where(converted & (h > 0), (rewards + fixed[actions]) / np.where(
                h > 0, h, 1.0), 0.0)
        elif self.objective.kind == "revenue":
            values = np.where(converted, rewards, 0.0)
        else:
            values = np.zeros(len(rewards))
        values = np.maximum(values, 0.0)
        return Outcomes(converted, values, converted * (pct[actions] * values + fixed[actions]))

    def _learn_values(self, X, actions, outcomes: Outcomes) -> None:
        sold = outcomes.converted & (outcomes.order_values > 0)
        if sold.any():
            self.value.update(X[sold], actions[sold], np.log(outcomes.order_values[sold]))

    def _learn_outcomes(self, X, actions, rewards, propensities, mask, outcomes):
        if self.conv_ridge is not None:
            self.conv_ridge.update(X, actions, outcomes.converted.astype(float))
        self.conv.update(X, actions, outcomes.converted.astype(float))
        self._learn_values(X, actions, outcomes)

    def _learn(self, X, actions, rewards, propensities, mask):
        self._learn_outcomes(X, actions, rewards, propensities, mask,
                             self._outcomes_of(actions, rewards))

    def _relabel_outcomes(self, X, actions, old_rewards, new_rewards, propensities, mask,
                          outcomes):
        if (old_rewards != 0).any():
            raise ValueError("profit relabels rows learned as not converted (the provisional "
                             "rows of the online loop) only")
        new = outcomes.converted.astype(float)
        if new.any():
            self.conv.relabel(X, actions, np.zeros(len(X)), new)
        self._learn_values(X, actions, outcomes)

    def _relabel(self, X, actions, old_rewards, new_rewards, propensities, mask):
        self._relabel_outcomes(X, actions, old_rewards, new_rewards, propensities, mask,
                               self._outcomes_of(actions, new_rewards))

    # ------------------------------------------------------------------ state
    def _models(self) -> dict:
        """The learned models by state prefix."""
        models = {"conv.": self.conv, "value.": self.value}
        if self.conv_ridge is not None:
            models["conv_ridge."] = self.conv_ridge
        return models

    def finite(self) -> bool:
        return all(model.finite() for model in self._models().values())

    def why_no_score_parts(self) -> str:
        return ("the profit policy's score is a product of two models (conversion x order "
                "value): it does not split into feature contributions")

    def _state(self):
        return {f"{prefix}{k}": v for prefix, model in self._models().items()
                for k, v in model.state().items()}

    def _load_state(self, state):
        for prefix, model in self._models().items():
            model.load({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def _grow(self, n):
        for model in self._models().values():
            model.grow(n)
