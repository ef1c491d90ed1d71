"""Does learning the structure of profit beat learning the scalar? linucb vs lints vs profit
(its linear conversion model) vs the structured policy the README recommends,
``profit:conversion=logistic,bonus=ridge,value_spread=auto``.

Run: ``python benchmarks/profit_learning.py [--seeds 6] [--random-shops 10] [--big 1]``;
``--policies linucb,profit:conversion=logistic --first-seed 12 --last-quarter`` compares other
specs on other seeds and adds each run's last quarter (how well it has learned by then);
``--parts per-shop --shops 200-219 --first-seed 1 --sizes 50000`` runs each of those random
shops over ``--seeds`` seeds and flags a shop where a policy trails linucb by more than 2 SE;
``--greedy`` adds what each learned model is worth without its exploration (its greedy choice
for 20,000 fresh visitors, scored by the world's exact expected rewards).
Captured gain (share of the oracle's gain over uniform, from the worlds' exact expected
rewards) at 50,000 and 200,000 visitors on the default world, the drift world and
``--random-shops`` shops of the ``random`` scenario (one seed each, their own responses), at
1,000,000 on the default world (``--big`` seeds), and the class ceilings (the best policy each
model class can express, ``linear_ceiling.py``) on the default world and the random shops.
Every policy meets the same visitors and outcome draws per seed (common random numbers), so
differences are paired: each row shows mean ± sd over seeds and the paired difference to
linucb ± its standard error.
"""

from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
import simulator  # noqa: E402
from simulator.worlds.runner import run  # noqa: E402

SPECS = ("linucb", "lints", "profit", "profit:conversion=logistic,bonus=ridge,value_spread=auto")


def gains(world_name: str, seeds, visitors: int, specs=SPECS, last_quarter: bool = False,
          greedy: bool = False, shop: int | None = None) -> dict[str, np.ndarray]:
    """Captured gain per spec and seed; with ``last_quarter`` also ``"<spec> last quarter"``,
    that of the run's last quarter of visitors; with ``greedy`` also ``"<spec> greedy"``.
    The world is built from each seed, or from ``shop`` for all of them (one shop, its
    visitors and outcomes drawn anew per seed)."""
    out: dict[str, list] = {}
    for seed in seeds:
        world = simulator.make_world(world_name, seed=seed if shop is None else shop)
        for spec in specs:
            policy = world.policy(spec, seed=seed)
            result = run(world, policy, visitors=visitors, seed=seed)
            out.setdefault(spec, []).append(result.captured_gain)
            if last_quarter:
                out.setdefault(f"{spec} last quarter", []).append(
                    result.captured_gain_between(visitors - visitors // 4, visitors))
            if greedy:
                out.setdefault(f"{spec} greedy", []).append(model_worth(world, policy, visitors))
    return {s: np.array(v) for s, v in out.items()}


def model_worth(world, policy, start: int, n: int = 20_000) -> float:
    """Captured gain of the learned model's greedy choice (its estimated means, no bonus, no
    floor) for ``n`` fresh visitors after visitor ``start``: the model's worth apart from its
    exploration."""
    from linear_ceiling import greedy_gain

    batch = world.visitors(n, np.random.default_rng(999), start=start)
    if hasattr(policy, "means_and_se"):
        means = policy.means_and_se(batch.X)[0]
    else:
        means = policy.ridge.means(batch.X)  # the linear policies
    return float(greedy_gain(world, batch, means)[0])


def table(title: str, result: dict[str, np.ndarray]) -> None:
    """Mean ± sd per spec, and the paired difference to linucb (of the same quarter)."""
    print(f"\n{title}")
    for spec, g in result.items():
        suffix = next((f" {k}" for k in ("last quarter", "greedy") if spec.endswith(k)), "")
        base = result["linucb" + suffix]
        d = g - base
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        sd = g.std(ddof=1) if len(g) > 1 else float("nan")
        diff = "" if spec.startswith("linucb") else \
            f"   vs linucb {d.mean():+.3f} ± {se:.3f} ({d.mean() / se:+.1f} SE)"
        print(f"  {spec:8s} {g.mean():.3f} ± {sd:.3f}{diff}")


def per_shop(shops, seeds, visitors: int, specs) -> None:
    """Each random shop on its own: paired difference to linucb over ``seeds`` (visitors and
    outcomes drawn anew, the shop fixed), flagging a shop where a spec trails by > 2 SE."""
    print(f"\nrandom shops one by one, {visitors:,} visitors, seeds {seeds.start}-"
          f"{seeds.stop - 1} each: paired difference to linucb ± SE")
    for shop in shops:
        result = gains("random", seeds, visitors, specs, shop=shop)
        base = result["linucb"]
        for spec in specs[1:]:
            d = result[spec] - base
            se = d.std(ddof=1) / np.sqrt(len(d))
            flag = "   <- trails by more than 2 SE" if d.mean() < -2 * se else ""
            print(f"  shop {shop} linucb {base.mean():.3f}  {spec}: {d.mean():+.3f} ± "
                  f"{se:.3f}{flag}")


def ceilings(world_names_seeds) -> None:
    """The class ceilings (benchmarks/linear_ceiling.py): greedy / with the floor, averaged
    over the worlds given."""
    from linear_ceiling import ceiling, product_ceiling

    rows = {"disjoint linear (linucb, lints)": [], "linear conversion x log-value (profit)": [],
            "logistic conversion x log-value": []}
    for name, seed in world_names_seeds:
        world = simulator.make_world(name, seed=seed)
        rows["disjoint linear (linucb, lints)"].append(ceiling(world))
        rows["linear conversion x log-value (profit)"].append(product_ceiling(world, "linear"))
        rows["logistic conversion x log-value"].append(product_ceiling(world, "logistic"))
    for label, values in rows.items():
        greedy, floored = np.mean(values, axis=0)
        print(f"  {label:40s} {greedy:6.1%} greedy, {floored:6.1%} with the floor")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--random-shops", type=int, default=10)
    ap.add_argument("--big", type=int, default=1, help="seeds at 1M visitors (0: skip)")
    ap.add_argument("--parts", default="ceilings,worlds,random,big",
                    help="which tables: ceilings, worlds (default, drift), random, big, "
                         "per-shop (each of --shops over --seeds seeds; not by default)")
    ap.add_argument("--policies", default=",".join(SPECS),
                    help="comma-separated specs, as `cartwheel simulate --policies` takes them "
                         "(linucb, the reference, is always run)")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds of the worlds start here")
    ap.add_argument("--last-quarter", action="store_true",
                    help="also the captured gain of each run's last quarter")
    ap.add_argument("--greedy", action="store_true",
                    help="also each learned model's greedy worth on fresh visitors")
    ap.add_argument("--sizes", default="50000,200000", help="visitors of the worlds' tables")
    ap.add_argument("--worlds", default="default,drift",
                    help="the worlds part's worlds (default, drift)")
    ap.add_argument("--shops", default="200-219",
                    help="the per-shop part's random shops, FIRST-LAST (`--parts per-shop`)")
    args = ap.parse_args()
    specs = policies.split_specs(args.policies)
    specs = ["linucb", *(s for s in specs if s != "linucb")]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    parts = set(args.parts.split(","))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}; captured gain, mean ± sd over seeds, paired differences")
    if "ceilings" in parts:
        print("\nclass ceilings (captured gain at infinite data), default world")
        ceilings([("default", 0)])
        print(f"class ceilings, mean over the {args.random_shops} random shops")
        ceilings([("random", s) for s in range(100, 100 + args.random_shops)])
    for visitors in (int(v) for v in args.sizes.split(",")):
        for world in args.worlds.split(",") if "worlds" in parts else ():
            table(f"{world} world, {visitors:,} visitors, seeds {seeds.start}-{seeds.stop - 1}",
                  gains(world, seeds, visitors, specs, args.last_quarter, args.greedy))
        if "random" in parts:
            table(f"random shops, {visitors:,} visitors, {args.random_shops} shops",
                  gains("random", range(100, 100 + args.random_shops), visitors, specs,
                        args.last_quarter, args.greedy))
    if "per-shop" in parts:
        first, last = (int(x) for x in args.shops.split("-"))
        for visitors in (int(v) for v in args.sizes.split(",")):
            per_shop(range(first, last + 1), seeds, visitors, specs)
    if args.big and "big" in parts:
        table(f"default world, 1,000,000 visitors, {args.big} seed(s)",
              gains("default", range(args.first_seed, args.first_seed + args.big), 1_000_000,
                    specs, args.last_quarter))


if __name__ == "__main__":
    main()
