"""Accuracy of dr, snips and sndr against the simulator's exact values, and estimator speed.

Run: ``python benchmarks/ope_accuracy.py [--visitors 50000] [--seeds 20]``. Prints, per logger,
target and method, the median relative error and the 95% interval coverage over the seeds; then
the throughput of ips, snips and dr (given q_hat) on 1,000,000 logged events, on one core.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import simulator  # noqa: E402
from simulator.evaluation.estimators import estimate  # noqa: E402
from simulator.worlds.groundtruth import ground_truth_setup, run_seeds  # noqa: E402


def speed(n=1_000_000, K=8):
    rng = np.random.default_rng(0)
    a = rng.integers(0, K, n)
    r = rng.normal(size=n)
    p = np.full(n, 1 / K)
    target = rng.dirichlet(np.ones(K), n)
    q = rng.normal(size=(n, K))
    print(f"{'method':10s} {'events/minute (one core)':>26s}")
    for method in ("ips", "snips", "dr"):
        t0 = time.perf_counter()
        estimate(method, r, a, p, target, q_hat=q)
        per_min = n / (time.perf_counter() - t0) * 60
        print(f"{method:10s} {per_min:26,.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    world = simulator.make_world()
    setup = ground_truth_setup(world)
    results = run_seeds(world, *setup, args.visitors, range(args.seeds))
    print(f"default world, profit, {args.visitors:,} logged visitors, {args.seeds} seeds")
    print(f"{'logger':9s} {'target':15s} {'method':7s} {'median rel. error':>18s} "
          f"{'95% CI coverage':>16s}")
    for (logger, target, method), values in results.items():
        errors, covered = zip(*values)
        print(f"{logger:9s} {target:15s} {method:7s} {np.median(errors):18.1%} "
              f"{np.mean(covered):16.0%}")
    speed()


if __name__ == "__main__":
    main()
