"""The ceiling of the disjoint linear policy class on a world: how much of the oracle's gain over
uniform a per-action linear model of the shop's features can capture at best.

Run: ``python benchmarks/linear_ceiling.py [--scenario default] [--objective profit]``. Fits each
action's *exact* expected reward by least squares on the encoded context (no noise, 400,000
visitors), then scores the greedy policy of that fit on fresh visitors, with and without the
propensity floor. A learner of that class converges to this number as visitors -> infinity.
"""

from __future__ import annotations

import argparse

import numpy as np

import simulator


def ceiling(world, objective=None, n_fit=400_000, n_test=200_000, floor=0.01):
    fit = world.visitors(n_fit, np.random.default_rng(5))
    R = world.expected_rewards(fit, objective)
    theta = np.stack([np.linalg.lstsq(fit.X[fit.mask[:, k]], R[fit.mask[:, k], k], rcond=None)[0]
                      for k in range(world.n_actions)])
    test = world.visitors(n_test, np.random.default_rng(6))
    Rt = world.expected_rewards(test, objective)
    best = np.where(test.mask, Rt, -np.inf).max(axis=1).mean()
    uniform = (np.where(test.mask, Rt, 0).sum(axis=1) / test.mask.sum(axis=1)).mean()
    greedy = np.where(test.mask, test.X @ theta.T, -np.inf).argmax(axis=1)
    onehot = np.eye(world.n_actions)[greedy]
    k = test.mask.sum(axis=1, keepdims=True)
    floored = (1 - floor * k) * onehot + floor * test.mask
    gain = best - uniform
    return ((Rt * onehot).sum(axis=1).mean() - uniform) / gain, \
        ((Rt * floored).sum(axis=1).mean() - uniform) / gain


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
          f"{floored:.1%} with the 0.01 propensity floor")


if __name__ == "__main__":
    main()
