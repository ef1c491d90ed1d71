"""Do policies keep adapting when preferences change? Captured gain before and after a drift.

Run: ``python benchmarks/drift_adaptation.py [--visitors 300000] [--seeds 3]``. The ``drift``
world changes its true response between visitor 100,000 and 120,000 (a competitor's sale: discounts
count double, banners turn negative, free shipping fades). For each policy the table shows the
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
from simulator.runner import run  # noqa: E402

WINDOWS = (("before 50k-100k", 50_000, 100_000), ("change 100k-130k", 100_000, 130_000),
           ("after 130k-200k", 130_000, 200_000), ("end: last 50k", -50_000, None))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=300_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--policies", default="linucb,lints,egreedy,vw")
    args = parser.parse_args()
    specs = policies.split_specs(args.policies)
    print(f"drift world, profit objective, {args.visitors:,} visitors x {args.seeds} seeds; "
          "captured gain against the oracle of each window (mean over seeds)")
    print(f"{'policy':10s}" + "".join(f" {label:>16s}" for label, *_ in WINDOWS))
    for spec in specs:
        rows = []
        for seed in range(args.seeds):
            world = simulator.make_world("drift", seed=seed)
            policy = policies.make(spec, n_actions=world.n_actions, n_features=world.space.dim,
                                   seed=seed, feature_names=world.space.names,
                                   action_ids=world.actions)
            result = run(world, policy, visitors=args.visitors, seed=seed)
            rows.append([result.captured_gain_between(
                start if start >= 0 else args.visitors + start,
                stop if stop is not None else args.visitors) for _, start, stop in WINDOWS])
        print(f"{spec:10s}" + "".join(f" {v:16.1%}" for v in np.mean(rows, axis=0)), flush=True)


if __name__ == "__main__":
    main()
