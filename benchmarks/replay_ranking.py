"""Does replay on a uniform log rank learning policies as the online simulation does?

Run: ``python benchmarks/replay_ranking.py [--log-size 2000000] [--seeds 3]``. Logs uniformly
chosen interventions for ``--log-size`` simulated visitors (profit objective), replays each
learning policy through every log (Li et al. 2011: only matching events count and are learned,
about one in seven here), and runs the same policies online for as many visitors as replay
learned from. Prints both rankings with their values per visitor.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
import simulator  # noqa: E402
from simulator.evaluation.replay import evaluate  # noqa: E402
from simulator.worlds.simulated_log import simulate_log  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-size", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--policies", default="uniform,egreedy,linucb")
    parser.add_argument("--objective", default="profit")
    args = parser.parse_args()
    world = simulator.make_world()
    specs = policies.split_specs(args.policies)
    replayed, matched = {s: [] for s in specs}, []
    for seed in range(args.seeds):
        logger = policies.make("uniform", n_actions=world.n_actions, n_features=world.space.dim,
                               seed=seed)
        log = simulate_log(world, logger, args.log_size, seed=seed, objective=args.objective)
        for r in evaluate(log, specs, seed=seed):
            replayed[r.spec].append((r.value, r.upper - r.value))
            if r.kind.startswith("replay"):
                matched.append(r.n)
    online_n = int(np.mean(matched))
    print(f"{args.objective}, uniform logs of {args.log_size:,} visitors x {args.seeds} seeds; "
          f"replay learned from ~{online_n:,} matched events; online runs of {online_n:,}")
    print(f"{'policy':10s} {'replay value':>13s} {'± 95%':>8s} {'online value':>13s}")
    rows = []
    for spec in specs:
        online = np.mean([
            simulator.run(world, policies.make(spec, n_actions=world.n_actions,
                                               n_features=world.space.dim, seed=s),
                          visitors=online_n, seed=s, objective=args.objective).expected[-1]
            / online_n for s in range(args.seeds)])
        value = np.mean([v for v, _ in replayed[spec]])
        half = np.sqrt(np.mean([h**2 for _, h in replayed[spec]]) / args.seeds)
        rows.append((spec, value, half, online))
        print(f"{spec:10s} {value:13.4f} {half:8.4f} {online:13.4f}")
    print("replay ranking:", " > ".join(s for s, *_ in sorted(rows, key=lambda r: -r[1])))
    print("online ranking:", " > ".join(s for s, *_ in sorted(rows, key=lambda r: -r[3])))


if __name__ == "__main__":
    main()
