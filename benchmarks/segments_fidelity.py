"""How faithful readable segments are to the policy, per tree depth.

Run: ``python benchmarks/segments_fidelity.py [--train 200000] [--seeds 3]``. Per seed, linucb
learns from ``--train`` visitors of the default world (profit, batches of 1,000); then, on
50,000 fresh visitors that the trained policy decides (its own log), segments are fitted at
depths 2..6 (at most 2**depth leaves). Printed per depth, mean ± sd over seeds:

* fidelity: share of visitors for whom the tree's segment action is the policy's greedy one;
* gain kept: (value of the rules alone - uniform) / (value of the policy's greedy choice -
  uniform), from the world's exact expected rewards, where "the rules alone" gives each
  segment's preferred action to its visitors (the control where that action is not
  eligible): what a shop keeps by freezing every segment as a rule.
"""

from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
import simulator  # noqa: E402
from bandit.insight.segments import find, members, readable  # noqa: E402
from simulator.worlds.runner import streams  # noqa: E402
from simulator.worlds.simulated_log import simulate_log  # noqa: E402

DEPTHS = (2, 3, 4, 5, 6)


def one_seed(seed: int, train: int, n: int = 50_000) -> dict[int, tuple[float, float]]:
    world = simulator.make_world("default")
    policy = policies.make("linucb", n_actions=world.n_actions, n_features=world.space.dim,
                           seed=seed, feature_names=world.space.names)
    simulate_log(world, policy, train, seed=seed, learn=True)
    fresh = 10_000 + seed
    data = simulate_log(world, policy, n, seed=fresh, keep_contexts=True, batch_size=n)
    batch = world.visitors(n, streams(fresh)[0])
    q = world.expected_rewards(batch)
    P = policy.probabilities(data.X, data.mask)
    greedy = np.where(data.mask, P, -1).argmax(axis=1)
    rows = np.arange(n)
    v_policy = q[rows, greedy].mean()
    v_uniform = (np.where(data.mask, q, 0).sum(axis=1) / data.mask.sum(axis=1)).mean()
    Z, columns = readable(world.space, data.contexts)
    ids, control = list(world.actions), world.actions.index("none")
    out = {}
    for depth in DEPTHS:
        result = find(data, P, world.space, "none", depth=depth)
        rule_action = np.full(n, control)
        for seg in result.segments:
            a = ids.index(seg.action)
            inside = members(seg.conditions, Z, columns)
            rule_action[inside] = np.where(data.mask[inside, a], a, control)
        kept = (q[rows, rule_action].mean() - v_uniform) / (v_policy - v_uniform)
        out[depth] = (result.fidelity, float(kept))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
          f"; linucb trained on {args.train:,} visitors of the default world, {args.seeds} seeds")
    runs = [one_seed(s, args.train) for s in range(args.seeds)]
    print(f"{'depth':>5s} {'leaves ≤':>8s} {'fidelity':>16s} {'gain kept':>16s}")
    for depth in DEPTHS:
        fid = np.array([r[depth][0] for r in runs])
        kept = np.array([r[depth][1] for r in runs])
        print(f"{depth:5d} {2 ** depth:8d} {fid.mean():8.1%} ± {fid.std(ddof=1) if len(fid) > 1 else 0:5.1%} "
              f"{kept.mean():8.1%} ± {kept.std(ddof=1) if len(kept) > 1 else 0:5.1%}")


if __name__ == "__main__":
    main()
