"""Per-placement learning against the visit's oracle, in the simulated shop with placements.

Run: ``python benchmarks/placements.py [--seeds 3] [--sizes 20000,100000] [--shops 3]``
(writes nothing itself: ``> benchmarks/results/placements.txt``).

A visit passes the product page, the cart and, for about a third of visitors, an exit-intent
pop-up (``simulator.make_world("placements")``, :mod:`simulator.worlds.placements`): an upsell
on the product page grows the cart, a second incentive adds less than the first. Per learner,
the mean expected profit per visit of its choices and the captured gain (the share of the
joint oracle's gain over showing nothing anywhere), mean ± SE over seeds (common random
numbers: every learner meets the same visitors):

* ``per-placement:linucb``: what cartwheel does (one model per placement, each crediting the
  visit's order less its own incentive, the pop-up's only when shown);
* ``joint:linucb``: one model over the 48 combinations, learning the visit's whole reward;
* ``best-fixed``: the best single combination for everyone;
* ``equilibrium``: what perfect per-placement models would choose (each placement's best
  response to the others for its own credit): the limit of per-placement learning, so
  ``oracle - equilibrium`` is what choosing per placement costs by construction, and
  ``equilibrium - per-placement`` what learning has not caught up with yet;
* ``uniform``.

The default world runs ``--seeds`` seeds at each size; ``--shops`` random shops with
placements (each coefficient rescaled, ``make_world("placements", seed=s)``) run one seed each
at the largest size.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import simulator
from simulator.worlds.placements_run import run_placements

LEARNERS = ("per-placement:linucb", "joint:linucb", "best-fixed", "equilibrium", "uniform")


def _row(name: str, results) -> str:
    value = np.array([r.value for r in results])
    captured = np.array([r.captured for r in results])
    se = captured.std(ddof=1) / np.sqrt(len(captured)) if len(captured) > 1 else 0.0
    return (f"{name:22s} {value.mean():8.4f} {100 * captured.mean():8.1f} ± {100 * se:4.1f}"
            f"  [{100 * captured.min():5.1f}, {100 * captured.max():5.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--shops", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}; placements world, {args.seeds} seeds per size, "
          f"{args.shops} random shops at {sizes[-1]:,}")
    print("# value: expected profit per visit; captured: % of the joint oracle's gain over "
          "'none' everywhere, mean ± SE [min, max]")
    world = simulator.make_world("placements")
    started = time.perf_counter()
    for n in sizes:
        runs = {name: [run_placements(world, name, visitors=n, seed=s)
                       for s in range(args.seeds)] for name in LEARNERS}
        oracle, base = runs[LEARNERS[0]][0].oracle, runs[LEARNERS[0]][0].baseline
        print(f"\n## default shop with placements, {n:,} visits (oracle {oracle:.4f}, none "
              f"everywhere {base:.4f})")
        print(f"{'learner':22s} {'value':>8s} {'captured %':>15s}  {'range':>14s}")
        for name in LEARNERS:
            print(_row(name, runs[name]))
    n = sizes[-1]
    if args.shops:
        print(f"\n## {args.shops} random shops with placements, {n:,} visits, one seed each")
        print(f"{'learner':22s} {'value':>8s} {'captured %':>15s}  {'range':>14s}")
        shops = [simulator.make_world("placements", seed=s) for s in range(1, args.shops + 1)]
        for name in LEARNERS:
            print(_row(name, [run_placements(w, name, visitors=n, seed=0) for w in shops]))
    print(f"\n# {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
