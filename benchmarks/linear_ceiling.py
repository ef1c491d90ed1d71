"""The ceiling of the disjoint linear policy class on a world: how much of the oracle's gain over
uniform a per-action linear model of the shop's features can capture at best.

Run: ``python benchmarks/linear_ceiling.py [--scenario default] [--objective profit]``. Fits each
action's *exact* expected reward by least squares on the encoded context (no noise, 400,000
visitors), then scores the greedy policy of that fit on fresh visitors, with and without the
propensity floor. A learner of that class converges to this number as visitors -> infinity.
With the world's own objective it also prints the ceilings of the ``profit`` policy's class
(:func:`product_ceiling`: a linear probability model of conversion, as ``profit`` learns, and
a logistic one, each times a log-linear order value).
"""

from __future__ import annotations

import argparse

import numpy as np

import simulator


def _floor(mask):
    """linucb's default propensity floor of each row (``Policy.floor_for``: a budget over the
    eligible actions, capped per action); profit's is the same."""
    import policies

    linucb = policies.make("linucb", n_actions=mask.shape[1], n_features=1)
    return linucb.floor_for(mask.sum(axis=1, keepdims=True))


def ceiling(world, objective=None, n_fit=400_000, n_test=200_000):
    """The disjoint linear class's ceiling: greedy on per-action least squares fits of the
    exact expected rewards (without and with the default floor)."""
    fit = world.visitors(n_fit, np.random.default_rng(5))
    R = world.expected_rewards(fit, objective)
    theta = np.stack([np.linalg.lstsq(fit.X[fit.mask[:, k]], R[fit.mask[:, k], k], rcond=None)[0]
                      for k in range(world.n_actions)])
    test = world.visitors(n_test, np.random.default_rng(6))
    return greedy_gain(world, test, test.X @ theta.T, objective)


def greedy_gain(world, test, scores, objective=None):
    """Captured gain of the greedy policy of ``scores`` on ``test``, without and with the floor."""
    Rt = world.expected_rewards(test, objective)
    best = np.where(test.mask, Rt, -np.inf).max(axis=1).mean()
    uniform = (np.where(test.mask, Rt, 0).sum(axis=1) / test.mask.sum(axis=1)).mean()
    onehot = np.eye(world.n_actions)[np.where(test.mask, scores, -np.inf).argmax(axis=1)]
    k, floor = test.mask.sum(axis=1, keepdims=True), _floor(test.mask)
    floored = (1 - floor * k) * onehot + floor * test.mask
    gain = best - uniform
    return ((Rt * onehot).sum(axis=1).mean() - uniform) / gain, \
        ((Rt * floored).sum(axis=1).mean() - uniform) / gain


def _logistic(X, p, iterations=25, lam=1e-6):
    """Coefficients of a logistic model fitted to exact probabilities ``p`` (soft labels) by
    Newton's method (IRLS): the cross-entropy's minimizer."""
    beta = np.zeros(X.shape[1])
    for _ in range(iterations):
        q = 1 / (1 + np.exp(-(X @ beta)))
        H = (X * (q * (1 - q))[:, None]).T @ X + lam * np.eye(X.shape[1])
        beta -= np.linalg.solve(H, X.T @ (q - p) + lam * beta)
    return beta


def product_ceiling(world, link="linear", n_fit=200_000, n_test=200_000):
    """The ceiling of the ``profit`` policy's class: per action a conversion model (``link``
    "linear": the linear probability model it learns; "logistic") fitted to the exact
    conversion probabilities, times ``exp`` of a linear model of the exact mean log order value
    fitted over converted visitors (weights = conversion probability), with the residual
    variance of that fit in the log-normal mean; combined by the world's objective."""
    fit = world.visitors(n_fit, np.random.default_rng(5))
    p, mu = world._moments(fit)
    test = world.visitors(n_test, np.random.default_rng(6))
    p_hat, v_hat = np.zeros((n_test, world.n_actions)), np.zeros((n_test, world.n_actions))
    sigma2 = world.response.value_sigma ** 2
    for k in range(world.n_actions):
        rows = fit.mask[:, k]
        X, pk, mk = fit.X[rows], p[rows, k], mu[rows, k]
        if link == "logistic":
            p_hat[:, k] = 1 / (1 + np.exp(-(test.X @ _logistic(X, pk))))
        else:
            p_hat[:, k] = np.clip(test.X @ np.linalg.lstsq(X, pk, rcond=None)[0], 0, 1)
        w = np.sqrt(pk)
        gamma = np.linalg.lstsq(X * w[:, None], mk * w, rcond=None)[0]
        misfit = np.average((mk - X @ gamma) ** 2, weights=pk)
        v_hat[:, k] = np.exp(test.X @ gamma + 0.5 * (sigma2 + misfit))
    o = world.objective
    scores = o.expected(p_hat, v_hat, world._cost_pct, world._cost_fixed)
    return greedy_gain(world, test, scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--objective", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    world = simulator.make_world(args.scenario, seed=args.seed)
    greedy, floored = ceiling(world, args.objective)
    print(f"{args.scenario} world, objective {args.objective or world.objective.kind}: best "
          f"disjoint-linear policy captures {greedy:.1%} of the oracle gain (greedy), "
          f"{floored:.1%} with the default propensity floor")
    if args.objective is None:
        for link in ("linear", "logistic"):
            greedy, floored = product_ceiling(world, link)
            print(f"  conversion ({link}) x log-value class: {greedy:.1%} greedy, "
                  f"{floored:.1%} with the floor")


if __name__ == "__main__":
    main()
