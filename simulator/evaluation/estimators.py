"""Off-policy estimators with confidence intervals: dm, ips, snips, dr, sndr, switch-dr.

All work on numpy arrays of logged decisions: ``rewards`` (n,), ``actions`` (n,) indices,
``propensities`` (n,) = P(logged action | context) under the logger, and ``target`` (n, K) = the
candidate policy's action probabilities for the same contexts. DM and the DR family need a reward
model ``q_hat`` (n, K); without one they fit a cross-fitted per-action ridge on ``X`` (no row is
scored by a model that saw it).

Each estimator below gives its value and its *influence values* ``phi_i`` (per row; the value is
their mean, or its first-order expansion for the self-normalized ones). The interval is the
normal one over them: ``V +- z(1 - alpha/2) * sd(phi) / sqrt(n)``, with ``sd`` the sample standard
deviation (ddof 1), one pass and no resampling; ``bootstrap=B`` gives percentile intervals from
B resamples instead. A paired difference of two targets (:func:`difference`) uses
``phi_a - phi_b`` the same way. Notation: ``w_i = pi(a_i | x_i) / p_i`` is the importance weight,
``pi`` the target, ``p_i`` the logged propensity, ``q`` the reward model.

>>> import numpy as np
>>> r = np.array([1.0, 0.0, 1.0, 0.0]); a = np.array([0, 1, 0, 1]); p = np.full(4, 0.5)
>>> target = np.array([[1.0, 0.0]] * 4)
>>> estimate("ips", r, a, p, target).value
1.0
>>> round(estimate("snips", r, a, p, target).value, 6)
1.0
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from simulator.evaluation.reward_model import cross_fit


@dataclass(frozen=True)
class Estimate:
    """A policy value estimate with its interval and diagnostics."""

    method: str
    value: float
    lower: float
    upper: float
    n: int
    ess: float
    max_weight: float
    unsupported_mass: float
    interval: str

    @property
    def width(self) -> float:
        return self.upper - self.lower


def _check(rewards, actions, propensities, target, q_hat):
    rewards = np.asarray(rewards, dtype=float)
    actions = np.asarray(actions)
    propensities = np.asarray(propensities, dtype=float)
    target = np.asarray(target, dtype=float)
    n = len(rewards)
    if target.ndim != 2 or len(target) != n:
        raise ValueError(f"target must be (n, K) with n = {n}, got {target.shape}")
    if actions.shape != (n,) or propensities.shape != (n,):
        raise ValueError("rewards, actions and propensities must have the same length")
    if n == 0:
        raise ValueError("no logged events to estimate from")
    if actions.dtype.kind not in "iu" or actions.min() < 0 or actions.max() >= target.shape[1]:
        raise ValueError(f"actions must be integer indices in [0, {target.shape[1]})")
    if not ((propensities > 0) & (propensities <= 1)).all():
        raise ValueError("propensities must be in (0, 1]")
    if not (np.isfinite(rewards).all() and np.isfinite(target).all()):
        raise ValueError("rewards and target must be finite")
    if not np.allclose(target.sum(axis=1), 1.0, atol=1e-6) or (target < 0).any():
        raise ValueError("target rows must be probability distributions")
    if q_hat is not None:
        q_hat = np.asarray(q_hat, dtype=float)
        if q_hat.shape != target.shape or not np.isfinite(q_hat).all():
            raise ValueError(f"q_hat must be finite with shape {target.shape}")
    return rewards, actions.astype(np.intp), propensities, target, q_hat


def ips(r, a, p, target, q_hat=None, tau=None):
    r"""Inverse propensity scoring (Horvitz and Thompson, "A generalization of sampling without
    replacement from a finite universe", JASA 1952; for bandits: Li, Chu, Langford and Wang,
    WSDM 2011).

    ``V = (1/n) sum_i w_i r_i`` with ``w_i = pi(a_i | x_i) / p_i``; influence ``phi_i = w_i r_i``.
    Unbiased when the logger gave every action the target uses a positive probability.
    """
    phi = _weights(a, p, target) * r
    return phi.mean(), phi


def snips(r, a, p, target, q_hat=None, tau=None):
    r"""Self-normalized IPS (Swaminathan and Joachims, "The self-normalized estimator for
    counterfactual learning", NeurIPS 2015).

    ``V = sum_i w_i r_i / sum_i w_i``; influence (delta method for a ratio of means)
    ``phi_i = V + w_i (r_i - V) / mean(w)``. Biased in small samples, far less variable than
    IPS when weights are large.
    """
    w = _weights(a, p, target)
    if w.sum() <= 0:
        return 0.0, np.zeros(len(r))
    value = (w * r).sum() / w.sum()
    return value, value + w * (r - value) / w.mean()


def dm(r, a, p, target, q_hat, tau=None):
    r"""Direct method (Beygelzimer and Langford, "The offset tree for learning with partial
    labels", KDD 2009): the reward model's value of the target.

    ``V = (1/n) sum_i sum_k pi(k | x_i) q(x_i, k)``; influence ``phi_i = sum_k pi(k|x_i) q(x_i, k)``.
    Its interval counts sampling noise only, never the model's bias.
    """
    phi = _model_value(target, q_hat)
    return phi.mean(), phi


def dr(r, a, p, target, q_hat, tau=None):
    r"""Doubly robust (Dudik, Langford and Li, "Doubly robust policy evaluation and learning",
    ICML 2011).

    ``phi_i = sum_k pi(k | x_i) q(x_i, k) + w_i (r_i - q(x_i, a_i))``, ``V = mean(phi)``:
    unbiased if either the propensities or the reward model are right.
    """
    phi = _model_value(target, q_hat) + _weights(a, p, target) * _residual(r, a, q_hat)
    return phi.mean(), phi


def switch_dr(r, a, p, target, q_hat, tau):
    r"""Switch doubly robust (Wang, Agarwal and Dudik, "Optimal and adaptive off-policy
    evaluation in contextual bandits", ICML 2017).

    ``phi_i = sum_k pi(k | x_i) q(x_i, k) + 1[w_i <= tau] w_i (r_i - q(x_i, a_i))``: rows whose
    weight exceeds ``tau`` trust the model alone (a weight equal to ``tau`` keeps its
    correction); ``V = mean(phi)``.
    """
    w = _weights(a, p, target)
    phi = _model_value(target, q_hat) + np.where(w <= tau, w * _residual(r, a, q_hat), 0.0)
    return phi.mean(), phi


def sndr(r, a, p, target, q_hat, tau=None):
    r"""Self-normalized doubly robust: DR whose correction is self-normalized like SNIPS
    (as in the Open Bandit Pipeline's ``SelfNormalizedDoublyRobust``; Saito, Aihara, Matsutani
    and Narita, "Open Bandit Dataset and Pipeline", NeurIPS 2021 datasets track).

    ``V = mean(d) + c`` with ``d_i = sum_k pi(k | x_i) q(x_i, k)``, ``e_i = r_i - q(x_i, a_i)``
    and ``c = sum_i w_i e_i / sum_i w_i``; influence
    ``phi_i = V + (d_i - mean(d)) + w_i (e_i - c) / mean(w)``.
    """
    w = _weights(a, p, target)
    d, e = _model_value(target, q_hat), _residual(r, a, q_hat)
    correction = (w * e).sum() / w.sum() if w.sum() > 0 else 0.0
    value = d.mean() + correction
    return value, value + (d - d.mean()) + w * (e - correction) / max(w.mean(), 1e-12)


def _model_value(target, q_hat):
    return (target * q_hat).sum(axis=1)


def _weights(a, p, target):
    return target[np.arange(len(a)), a] / p


def _residual(r, a, q_hat):
    return r - q_hat[np.arange(len(a)), a]


#: each method's (value, per-row influence values) function; the value is their mean
ESTIMATORS = {"dm": dm, "ips": ips, "snips": snips, "dr": dr, "sndr": sndr,
              "switch-dr": switch_dr}


METHODS = tuple(ESTIMATORS)


def _influence(method, r, a, p, target, q_hat, tau):
    """(value, per-row influence values whose mean is the value) of one estimator."""
    return ESTIMATORS[method](r, a, p, target, q_hat, tau)


def estimate(method: str, rewards, actions, propensities, target, q_hat=None, X=None,
             alpha: float = 0.05, *, tau: float = 10.0, bootstrap: int = 0, seed: int = 0,
             folds: int = 2, model=None) -> Estimate:
    """Estimate the value of ``target`` from logged decisions (see module docstring).

    Parameters
    ----------
    method : str
        One of ``METHODS``.
    tau : float
        Switch-DR threshold: rows whose importance weight exceeds it use the model only.
    bootstrap : int
        Number of bootstrap resamples for a percentile interval (0: influence-function interval).
    folds, model
        Cross-fitting folds and an optional scikit-learn-style regressor factory for the reward
        model fitted when DM/DR get no ``q_hat``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    r, a, p, target, q_hat = _check(rewards, actions, propensities, target, q_hat)
    if method not in ("ips", "snips") and q_hat is None:
        if X is None:
            raise ValueError(f"{method} needs a reward model: pass q_hat (n, K) or contexts X")
        q_hat = cross_fit(np.asarray(X, dtype=float), a, r, target.shape[1], folds=folds,
                          seed=seed, model=model)
    n = len(r)
    value, phi = _influence(method, r, a, p, target, q_hat, tau)
    w = target[np.arange(n), a] / p
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    tried = np.bincount(a, minlength=target.shape[1]) > 0
    unsupported = float(target[:, ~tried].sum(axis=1).mean())
    if unsupported > 0.01:
        warnings.warn(f"the target puts {unsupported:.1%} of its probability on actions the "
                      "logger never tried: no estimator can see their rewards; IPS-type values "
                      "count them as 0 and DM/DR extrapolate the reward model", stacklevel=2)
    if bootstrap:
        rng = np.random.default_rng(seed)
        values = np.empty(bootstrap)
        for b in range(bootstrap):
            idx = rng.integers(0, n, n)
            values[b] = _influence(method, r[idx], a[idx], p[idx], target[idx],
                                   None if q_hat is None else q_hat[idx], tau)[0]
        lower, upper = np.quantile(values, [alpha / 2, 1 - alpha / 2])
        kind = f"bootstrap-{bootstrap}"
    else:
        half = stats.norm.ppf(1 - alpha / 2) * phi.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf
        lower, upper = value - half, value + half
        kind = "influence"
    return Estimate(method, float(value), float(lower), float(upper), n, ess,
                    float(w.max()), unsupported, kind)


def difference(method: str, rewards, actions, propensities, target_a, target_b,
               alpha: float = 0.05) -> Estimate:
    """The value of ``target_a`` minus that of ``target_b`` on the same logged decisions, with
    an interval from the difference of the two estimators' influence functions (the two
    estimates are correlated: they share every row). ``ips`` or ``snips`` only (no reward
    model: a segment's uplift should not lean on one).

    >>> import numpy as np
    >>> r = np.array([1.0, 0.0, 1.0, 1.0]); a = np.array([0, 1, 0, 1]); p = np.full(4, 0.5)
    >>> always = lambda k: np.eye(2)[[k] * 4]
    >>> difference("snips", r, a, p, always(0), always(1)).value  # 1.0 - 0.5
    0.5
    """
    if method not in ("ips", "snips"):
        raise ValueError(f"difference supports 'ips' and 'snips', not {method!r}")
    r, a, p, ta, _ = _check(rewards, actions, propensities, target_a, None)
    tb = _check(rewards, actions, propensities, target_b, None)[3]
    n = len(r)
    va, phi_a = _influence(method, r, a, p, ta, None, 0.0)
    vb, phi_b = _influence(method, r, a, p, tb, None, 0.0)
    phi = phi_a - phi_b
    half = stats.norm.ppf(1 - alpha / 2) * phi.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf
    w = ta[np.arange(n), a] / p + tb[np.arange(n), a] / p
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    value = va - vb
    return Estimate(f"{method}-difference", float(value), float(value - half),
                    float(value + half), n, ess, float(w.max()), 0.0, "influence")
