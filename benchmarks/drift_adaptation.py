"""Do policies keep adapting when preferences change? Captured gain before and after a drift.

Run: ``python benchmarks/drift_adaptation.py [--visitors 300000] [--seeds 3] [--change-at N]``.
The ``drift`` world changes its true response over 20,000 visitors from visitor N (default
100,000; a competitor's sale: discounts count double, banners turn negative, free shipping
fades). For each policy the table shows the
share of the oracle's gain over uniform it captures in four windows: before the change, during
it (and 10,000 visitors after), after it and at the end, each against the oracle *of that
moment*. A policy that stopped learning
would fall after the change and stay there.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
import simulator  # noqa: E402
from simulator.worlds.runner import run  # noqa: E402


def windows(change: int, visitors: int) -> list[tuple[str, int, int]]:
    """Before the change, during it (and 10k after), the 70k after that, and the last 50k."""
    k = lambda v: f"{v // 1000}k"  # noqa: E731
    return [(f"before {k(change - 50_000)}-{k(change)}", change - 50_000, change),
            (f"change {k(change)}-{k(change + 30_000)}", change, change + 30_000),
            (f"after {k(change + 30_000)}-{k(change + 100_000)}", change + 30_000,
             change + 100_000),
            ("end: last 50k", visitors - 50_000, visitors)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=300_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--policies", default="linucb,lints,egreedy,vw")
    parser.add_argument("--change-at", type=int, default=100_000,
                        help="visitor at which the preferences start to change (over 20,000)")
    args = parser.parse_args()
    specs = policies.split_specs(args.policies)
    spans = windows(args.change_at, args.visitors)
    print(f"drift world, change at visitor {args.change_at:,}, profit objective, "
          f"{args.visitors:,} visitors x {args.seeds} seeds; captured gain against the oracle "
          "of each window (mean over seeds)")
    width = max(len(s) for s in specs)
    print(f"{'policy':{width}s}" + "".join(f" {label:>18s}" for label, *_ in spans))
    for spec in specs:
        rows = []
        for seed in range(args.seeds):
            world = simulator.make_world("drift", seed=seed, start=args.change_at)
            # as the engine builds it: action features and the objective included
            policy = world.policy(spec, seed=seed)
            result = run(world, policy, visitors=args.visitors, seed=seed)
            rows.append([result.captured_gain_between(start, stop) for _, start, stop in spans])
        print(f"{spec:{width}s}" + "".join(f" {v:18.1%}" for v in np.mean(rows, axis=0)),
              flush=True)


if __name__ == "__main__":
    main()
