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
from dataclasses import dataclass, replace
from typing import NamedTuple

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


class Terms(NamedTuple):
    """An estimator's per-row parts: ``phi_i = g_i + theta + w_i (h_i - theta) / mean(w)``
    with ``theta = sum w h / sum w`` (the self-normalized part, absent when ``h`` is None).
    The value is ``mean(g) + theta``; its influence values are ``phi``."""

    g: np.ndarray
    h: np.ndarray | None = None


def ips(w, r, d, e, tau):
    r"""Inverse propensity scoring (Horvitz and Thompson, "A generalization of sampling without
    replacement from a finite universe", JASA 1952; for bandits: Li, Chu, Langford and Wang,
    WSDM 2011).

    ``V = (1/n) sum_i w_i r_i`` with ``w_i = pi(a_i | x_i) / p_i``; influence ``phi_i = w_i r_i``.
    Unbiased when the logger gave every action the target uses a positive probability.
    """
    return Terms(w * r)


def snips(w, r, d, e, tau):
    r"""Self-normalized IPS (Swaminathan and Joachims, "The self-normalized estimator for
    counterfactual learning", NeurIPS 2015).

    ``V = sum_i w_i r_i / sum_i w_i``; influence (delta method for a ratio of means)
    ``phi_i = V + w_i (r_i - V) / mean(w)``. Biased in small samples, far less variable than
    IPS when weights are large.
    """
    return Terms(np.zeros(len(w)), r)


def dm(w, r, d, e, tau):
    r"""Direct method (Beygelzimer and Langford, "The offset tree for learning with partial
    labels", KDD 2009): the reward model's value of the target.

    ``V = (1/n) sum_i sum_k pi(k | x_i) q(x_i, k)``; influence ``phi_i = sum_k pi(k|x_i) q(x_i, k)``.
    Its interval counts sampling noise only, never the model's bias.
    """
    return Terms(d)


def dr(w, r, d, e, tau):
    r"""Doubly robust (Dudik, Langford and Li, "Doubly robust policy evaluation and learning",
    ICML 2011).

    ``phi_i = sum_k pi(k | x_i) q(x_i, k) + w_i (r_i - q(x_i, a_i))``, ``V = mean(phi)``:
    unbiased if either the propensities or the reward model are right.
    """
    return Terms(d + w * e)


def switch_dr(w, r, d, e, tau):
    r"""Switch doubly robust (Wang, Agarwal and Dudik, "Optimal and adaptive off-policy
    evaluation in contextual bandits", ICML 2017).

    ``phi_i = sum_k pi(k | x_i) q(x_i, k) + 1[w_i <= tau] w_i (r_i - q(x_i, a_i))``: rows whose
    weight exceeds ``tau`` trust the model alone (a weight equal to ``tau`` keeps its
    correction); ``V = mean(phi)``.
    """
    return Terms(d + np.where(w <= tau, w * e, 0.0))


def sndr(w, r, d, e, tau):
    r"""Self-normalized doubly robust: DR whose correction is self-normalized like SNIPS
    (as in the Open Bandit Pipeline's ``SelfNormalizedDoublyRobust``; Saito, Aihara, Matsutani
    and Narita, "Open Bandit Dataset and Pipeline", NeurIPS 2021 datasets track).

    ``V = mean(d) + c`` with ``d_i = sum_k pi(k | x_i) q(x_i, k)``, ``e_i = r_i - q(x_i, a_i)``
    and ``c = sum_i w_i e_i / sum_i w_i``; influence
    ``phi_i = V + (d_i - mean(d)) + w_i (e_i - c) / mean(w)``.
    """
    return Terms(d, e)


#: each method's per-row parts (:class:`Terms`) from the weights ``w``, rewards ``r``, the
#: model's values of the target ``d`` and residuals ``e`` (None for ips and snips)
ESTIMATORS = {"dm": dm, "ips": ips, "snips": snips, "dr": dr, "sndr": sndr,
              "switch-dr": switch_dr}


METHODS = tuple(ESTIMATORS)

#: the methods that need a reward model
MODEL_METHODS = ("dm", "dr", "sndr", "switch-dr")


def _terms(method, r, a, p, target, q_hat, tau) -> tuple[Terms, np.ndarray]:
    """(the method's per-row parts, the importance weights)."""
    rows = np.arange(len(a))
    w = target[rows, a] / p
    d = e = None
    if q_hat is not None:
        d, e = (target * q_hat).sum(axis=1), r - q_hat[rows, a]
    return ESTIMATORS[method](w, r, d, e, tau), w


def _influence(terms: Terms, w: np.ndarray) -> tuple[float, np.ndarray]:
    """(value, per-row influence values) of :class:`Terms`."""
    if terms.h is None or w.sum() <= 0:  # no weight at all: nothing to self-normalize
        return float(terms.g.mean()), terms.g
    theta = (w * terms.h).sum() / w.sum()
    return float(terms.g.mean() + theta), terms.g + theta + w * (terms.h - theta) / w.mean()


class RunningEstimate:
    """One estimator over a log read in chunks: running sums, never the rows, so a log of
    any length is estimated in constant memory. :meth:`add` each chunk, then
    :meth:`result`. The value and interval equal :func:`estimate`'s on the whole log: the
    influence values' mean and sum of squares expand in sums of ``g, w, h`` and their
    products (``theta`` enters only at the end), kept relative to the first chunk's means
    so the expansion cancels no digits it needs.

    >>> import numpy as np
    >>> r = np.array([1.0, 0.0, 2.0, 0.0]); a = np.array([0, 1, 0, 1]); p = np.full(4, 0.5)
    >>> run = RunningEstimate("snips", n_actions=2)
    >>> for rows in (slice(0, 3), slice(3, 4)):
    ...     run.add(r[rows], a[rows], p[rows], np.array([[0.7, 0.3]] * 4)[rows])
    >>> one = estimate("snips", r, a, p, np.array([[0.7, 0.3]] * 4))
    >>> (round(run.result().value, 12), round(run.result().lower, 12)) == (
    ...     round(one.value, 12), round(one.lower, 12))
    True
    """

    SUMS = ("g", "gg", "w", "ww", "wh", "wwh", "wwhh", "gw", "gwh")

    def __init__(self, method: str, n_actions: int, *, tau: float = 10.0):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
        self.method, self.tau = method, tau
        self.n, self.max_weight = 0, 0.0
        self.sums = dict.fromkeys(self.SUMS, 0.0)
        self.shift: tuple[float, float] | None = None  # the first chunk's means of g and h
        self.tried = np.zeros(n_actions, dtype=bool)
        self.target_mass = np.zeros(n_actions)  # sum over rows of each action's probability

    def add(self, rewards, actions, propensities, target, q_hat=None) -> None:
        """Add a chunk of logged decisions (arrays as :func:`estimate` takes them)."""
        self._add(*_check(rewards, actions, propensities, target, q_hat))

    def _add(self, r, a, p, target, q_hat) -> None:
        """:meth:`add` of arrays :func:`_check` has checked."""
        if self.method in MODEL_METHODS and q_hat is None:
            raise ValueError(f"{self.method} needs a reward model: pass q_hat (n, K)")
        terms, w = _terms(self.method, r, a, p, target, q_hat, self.tau)
        ratio = terms.h is not None
        if self.shift is None:
            self.shift = (float(terms.g.mean()),
                          float((w * terms.h).sum() / w.sum()) if ratio and w.sum() > 0
                          else 0.0)
        g, sums = terms.g - self.shift[0], self.sums
        sums["g"] += float(g.sum())
        sums["gg"] += float(g @ g)
        sums["w"] += float(w.sum())
        sums["ww"] += float(w @ w)
        if ratio:  # the self-normalized part's products (dot products: one pass each)
            wh = w * (terms.h - self.shift[1])
            sums["wh"] += float(wh.sum())
            sums["wwh"] += float(w @ wh)
            sums["wwhh"] += float(wh @ wh)
            sums["gw"] += float(g @ w)
            sums["gwh"] += float(g @ wh)
        self.n += len(r)
        self.max_weight = max(self.max_weight, float(w.max()))
        self.tried |= np.bincount(a, minlength=len(self.tried)) > 0
        self.target_mass += target.sum(axis=0)

    def result(self, alpha: float = 0.05) -> Estimate:
        """The estimate of everything added (influence-function interval)."""
        if self.n == 0:
            raise ValueError("no logged events to estimate from")
        s, n = self.sums, self.n
        ratio = self.method in ("snips", "sndr") and s["w"] > 0
        theta = s["wh"] / s["w"] if ratio else 0.0  # relative to the shift
        value = self.shift[0] + s["g"] / n + (self.shift[1] + theta if ratio else 0.0)
        squares = s["gg"]  # sum (g + w (h - theta) / mean w)^2, expanded
        if ratio:
            wbar = s["w"] / n
            squares += (2 * (s["gwh"] - theta * s["gw"]) / wbar
                        + (s["wwhh"] - 2 * theta * s["wwh"] + theta**2 * s["ww"]) / wbar**2)
        var = max(squares - s["g"] ** 2 / n, 0.0) / (n - 1) if n > 1 else np.inf
        half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(var / n)
        unsupported = float(self.target_mass[~self.tried].sum() / n)
        _warn_unsupported(unsupported)
        ess = s["w"] ** 2 / s["ww"] if s["ww"] > 0 else 0.0
        return Estimate(self.method, float(value), float(value - half), float(value + half),
                        n, float(ess), self.max_weight, unsupported, "influence")


def _warn_unsupported(unsupported: float) -> None:
    if unsupported > 0.01 + 1e-12:  # summed by column, not row: a rounding's slack
        warnings.warn(f"the target puts {unsupported:.1%} of its probability on actions the "
                      "logger never tried: no estimator can see their rewards; IPS-type values "
                      "count them as 0 and DM/DR extrapolate the reward model", stacklevel=3)


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
    running = RunningEstimate(method, target.shape[1], tau=tau)
    running._add(r, a, p, target, q_hat)  # checked above
    result = running.result(alpha)
    if not bootstrap:
        return result
    terms, w = _terms(method, r, a, p, target, q_hat, tau)
    rng = np.random.default_rng(seed)
    values = np.empty(bootstrap)
    for b in range(bootstrap):
        idx = rng.integers(0, len(r), len(r))
        values[b] = _influence(Terms(terms.g[idx], None if terms.h is None
                                     else terms.h[idx]), w[idx])[0]
    lower, upper = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return replace(result, lower=float(lower), upper=float(upper),
                   interval=f"bootstrap-{bootstrap}")


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
    va, phi_a = _influence(*_terms(method, r, a, p, ta, None, 0.0))
    vb, phi_b = _influence(*_terms(method, r, a, p, tb, None, 0.0))
    phi = phi_a - phi_b
    half = stats.norm.ppf(1 - alpha / 2) * phi.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf
    w = ta[np.arange(n), a] / p + tb[np.arange(n), a] / p
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    value = va - vb
    return Estimate(f"{method}-difference", float(value), float(value - half),
                    float(value + half), n, ess, float(w.max()), 0.0, "influence")
