"""The promotion gate as a product: linucb alone, the profit spec alone, and the gate of the
two (linucb champion, the profit spec challenger), plus the gate with a ``uniform`` challenger
(what a bad challenger costs), on the default, drift and random shops.

Run: ``python benchmarks/promotion.py run --worlds default,drift --seeds 1-4 --out R.jsonl``
and ``python benchmarks/promotion.py run --shops 200-219 --seeds 1 --out R.jsonl`` (each run
appends one JSON line per world and seed, so long runs can be split and resumed), then
``python benchmarks/promotion.py table R.jsonl [R2.jsonl ...]`` prints the table;
``python benchmarks/promotion.py power`` prints the rows a decision needs by effect and share.
Captured gain (share of the oracle's gain over uniform, from the worlds' exact expected
rewards) at 50,000, 200,000 and 1,000,000 visitors (prefixes of one run), mean over seeds
and the paired difference to linucb alone ± its standard error (one seed: no SE), and when
each gate promoted or retired (rows learned by then). Every policy meets the same visitors
and outcome draws per seed (common random numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
import simulator  # noqa: E402
from simulator.worlds.runner import run  # noqa: E402

PROFIT = "profit:conversion=logistic,bonus=ridge,value_spread=auto"
CHECKPOINTS = (50_000, 200_000, 1_000_000)
ARMS = ("linucb", "profit", "gate", "gate(uniform)")


def gate(world, challenger: str, seed: int):
    """The gate as the engine builds it for this shop (names, action ids, objective)."""
    return policies.gated("linucb", [challenger], n_actions=world.n_actions,
                          n_features=world.space.dim, seed=seed,
                          feature_names=world.space.names, action_ids=world.actions,
                          action_features=world.config.action_features()[0],
                          objective=world.objective_spec(None))


def one(world_name: str, shop: int | None, seed: int, visitors: int, arms) -> dict:
    """Every arm's captured gain at each checkpoint on one world and seed."""
    world = simulator.make_world(world_name, seed=seed if shop is None else shop)
    out = {"world": world_name, "shop": shop, "seed": seed, "visitors": visitors,
           "gain": {}, "events": {}}
    for arm in arms:
        policy = (world.policy("linucb" if arm == "linucb" else PROFIT, seed=seed)
                  if arm in ("linucb", "profit") else
                  gate(world, PROFIT if arm == "gate" else "uniform", seed))
        result = run(world, policy, visitors=visitors, seed=seed)
        gap = result.oracle - result.uniform
        gains = (result.expected - result.uniform) / np.where(gap > 0, gap, np.nan)
        out["gain"][arm] = {n: float(gains[min(len(gains), n // 100) - 1])
                            for n in CHECKPOINTS if n <= visitors}
        if arm.startswith("gate"):
            out["events"][arm] = {
                "promotions": [p._asdict() for p in policy.promotions],
                "retired": [r._asdict() for r in policy.retired]}
    return out


def seeds_of(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def run_command(args) -> None:
    jobs = [(w, None) for w in filter(None, args.worlds.split(","))]
    jobs += [("random", s) for s in (seeds_of(args.shops) if args.shops else [])]
    arms = args.arms.split(",")
    for world_name, shop in jobs:
        for seed in seeds_of(args.seeds):
            t0 = time.perf_counter()
            row = one(world_name, shop, seed, args.visitors, arms)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            row["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, load "
                              f"{os.getloadavg()[0]:.1f}")
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{world_name} {shop} seed {seed}: {row['seconds']} s", file=sys.stderr)


def _fmt(values: list[float]) -> str:
    if not values:
        return "       -      "
    mean = np.mean(values)
    if len(values) < 2:
        return f"{mean:+.3f}        "
    return f"{mean:+.3f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.3f}"


def table_command(args) -> None:
    rows = [json.loads(line) for path in args.files for line in open(path) if line.strip()]
    longest: dict = {}  # a world and seed run again for longer: its longer run counts
    for r in rows:
        key = (r["world"], r["shop"], r["seed"])
        if key not in longest or r["visitors"] > longest[key]["visitors"]:
            longest[key] = r
    rows = list(longest.values())
    print(f"machine: {rows[0]['machine'] if rows else '?'} (first run); captured gain, mean "
          "over seeds; differences paired with linucb alone, ± SE over seeds")
    groups: dict = {}
    for r in rows:
        key = r["world"] if r["shop"] is None else "random shops"
        groups.setdefault(key, []).append(r)
    for key, runs in groups.items():
        print(f"\n{key}: {len(runs)} runs (world, seed)")
        print(f"{'visitors':>9s} {'runs':>5s} {'linucb':>7s} {'profit - linucb':>16s} "
              f"{'gate - linucb':>16s} {'gate(uniform) - linucb':>23s} {'gate - profit':>16s}")
        for n in CHECKPOINTS:
            have = [r for r in runs if str(n) in r["gain"]["linucb"]]
            if not have:
                continue

            def diff(arm, base="linucb"):
                return [r["gain"][arm][str(n)] - r["gain"][base][str(n)] for r in have
                        if arm in r["gain"] and base in r["gain"]]
            lin = np.mean([r["gain"]["linucb"][str(n)] for r in have])
            print(f"{n:9,d} {len(have):5d} {lin:7.3f} {_fmt(diff('profit')):>16s} "
                  f"{_fmt(diff('gate')):>16s} "
                  f"{_fmt(diff('gate(uniform)')):>23s} {_fmt(diff('gate', 'profit')):>16s}")
        if key == "random shops":
            for r in sorted(runs, key=lambda r: r["shop"]):
                print(f"  shop {r['shop']}: gate - linucb " + ", ".join(
                    f"{r['gain']['gate'][str(n)] - r['gain']['linucb'][str(n)]:+.3f} at {n:,}"
                    for n in CHECKPOINTS if str(n) in r["gain"].get("gate", {})))
            for n in CHECKPOINTS:
                worst = [(r["gain"]["gate"][str(n)] - r["gain"]["linucb"][str(n)], r["shop"])
                         for r in runs if str(n) in r["gain"].get("gate", {})]
                if worst:
                    d, shop = min(worst)
                    print(f"  at {n:,}: the gate's worst shop is {shop} ({d:+.3f} vs linucb)")
        for arm in ("gate", "gate(uniform)"):
            for r in runs:
                ev = r["events"].get(arm)
                if ev is None:
                    continue
                what = [f"promoted at {p['row']:,}" for p in ev["promotions"]] + [
                    f"retired {x['spec'].split(':')[0]} at {x['row']:,}" for x in ev["retired"]
                    if x["reason"] == "bound"]
                name = r["world"] if r["shop"] is None else f"shop {r['shop']}"
                print(f"  {arm:13s} {name} seed {r['seed']}: "
                      f"{', '.join(what) or 'no change'} (run to {r['visitors']:,})")


def power_command(args) -> None:
    """Rows a decision needs: the per-row standard deviation of the doubly robust difference
    measured at each share on a shop (a cheap pair of policies: its spread is the outcome
    noise seen through the importance weights), then the rows the confidence sequence needs
    to clear zero at each effect (``policies.confidence.rows_needed``)."""
    from policies.confidence import rows_needed

    effects = [float(x) for x in args.effects.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; world {args.world} (seed 1), linucb champion, egreedy "
          f"challenger, {args.visitors:,} visitors; rows in all (both arms) until the 95% "
          "bound clears zero, if the effect (reward per visitor) held from the first row")
    print(f"{'share':>6s} {'sd of the difference':>20s} " +
          " ".join(f"{'effect ' + format(e, 'g'):>14s}" for e in effects))
    world = simulator.make_world(args.world, seed=1)
    for share in (float(x) for x in args.shares.split(",")):
        policy = policies.gated("linucb", ["egreedy"], n_actions=world.n_actions,
                                n_features=world.space.dim, seed=1, share=share,
                                feature_names=world.space.names, action_ids=world.actions,
                                action_features=world.config.action_features()[0],
                                objective=world.objective_spec(None))
        run(world, policy, visitors=args.visitors, seed=1)
        sd = policy.evidence.difference(1, 0).sd
        cells = [rows_needed(e, sd, 0.05, 100_000) for e in effects]
        print(f"{share:6.2f} {sd:20.2f} " + " ".join(
            f"{c:14,.0f}" if np.isfinite(c) else f"{'never':>14s}" for c in cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--worlds", default="")
    r.add_argument("--shops", default="")
    r.add_argument("--seeds", default="1-4")
    r.add_argument("--visitors", type=int, default=1_000_000)
    r.add_argument("--arms", default=",".join(ARMS))
    r.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("files", nargs="+")
    p = sub.add_parser("power")
    p.add_argument("--world", default="default")
    p.add_argument("--visitors", type=int, default=100_000)
    p.add_argument("--shares", default="0.1,0.2,0.4")
    p.add_argument("--effects", default="0.02,0.05,0.1,0.3")
    args = parser.parse_args()
    {"run": run_command, "table": table_command, "power": power_command}[args.command](args)


if __name__ == "__main__":
    main()
