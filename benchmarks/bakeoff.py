"""The contextual-bandit bake-off (Bietti, Agarwal & Langford, JMLR 2021) on six real datasets.

Run: ``python benchmarks/bakeoff.py [--shuffles 5] [--batches 1,32] [--datasets digits,...]``
(needs ``pip install 'cartwheel[bakeoff]'``; nothing is downloaded). Each multiclass dataset
becomes bandit feedback (class = action, reward 1 for the right label), one pass per shuffle,
scored by progressive validation (``simulator.evaluation.bakeoff``). Cartwheel's policies at their
*defaults* and as reproductions of direct VW (``floor=0``), Vowpal Wabbit used directly with
its own defaults and the paper's 0/1 costs, and MABWiser when it is installed. Mean ± sd over
the shuffles; examples/s is deciding plus learning. The two checks at the end are the ones
the README states: default linucb against the best direct VW per dataset, and the default
``vw`` policy against direct VW with the same exploration (within 1 SE).
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

from simulator.evaluation import bakeoff

CARTWHEEL = ["linucb", "linucb:floor=0", "lints", "egreedy", "vw", "vw:floor=0"]
DIRECT_VW = ["--squarecb", "--epsilon 0.05", "--cover 5 --epsilon 0.05",
             "--bag 5 --epsilon 0.05", "--regcbopt"]
MABWISER = ["LinUCB", "LinTS"]


def learners():
    return bakeoff.available([("cartwheel", spec) for spec in CARTWHEEL]
                             + [("vw", a) for a in DIRECT_VW]
                             + [("mabwiser", name) for name in MABWISER])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, default=5)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--datasets", default=",".join(bakeoff.DATASETS))
    args = parser.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}; {args.shuffles} shuffles; progressive reward "
          "mean ± sd (se = sd / sqrt(shuffles))")
    checks = []
    for batch in (int(b) for b in args.batches.split(",")):
        print(f"\nbatch {batch}")
        for name in args.datasets.split(","):
            data = bakeoff.load(name)
            print(f"{name}: {len(data.y)} rows, {data.X.shape[1]} features, "
                  f"{data.n_actions} actions")
            results = {}
            for kind, config in learners():
                r = bakeoff.evaluate(kind, config, data, shuffles=args.shuffles, batch=batch)
                results[(kind, config)] = r
                print(f"  {r.learner:34s} {r.mean:.3f} ± {r.sd:.3f}  {r.examples_per_s:9,.0f}/s",
                      flush=True)
            checks.append((batch, name, results))
    print("\nchecks (difference, and the larger of the two standard errors)")
    for batch, name, results in checks:
        ours = results[("cartwheel", "linucb")]
        best = max((r for (kind, _), r in results.items() if kind == "vw"), key=lambda r: r.mean)
        se = max(ours.se, best.se)
        verdict = "ok" if ours.mean >= best.mean - se else "BELOW"
        print(f"  batch {batch:2d} {name:14s} linucb {ours.mean:.3f} vs best VW "
              f"({best.learner[3:]}) {best.mean:.3f}: {ours.mean - best.mean:+.3f} "
              f"(se {se:.3f}) {verdict}")
        wrapped, direct = results[("cartwheel", "vw")], results[("vw", "--squarecb")]
        se = max(wrapped.se, direct.se)
        verdict = "ok" if abs(wrapped.mean - direct.mean) <= se or wrapped.mean > direct.mean \
            else "BELOW"
        exact = np.allclose(results[("cartwheel", "vw:floor=0")].rewards, direct.rewards)
        print(f"  batch {batch:2d} {name:14s} vw {wrapped.mean:.3f} vs VW --squarecb "
              f"{direct.mean:.3f}: {wrapped.mean - direct.mean:+.3f} (se {se:.3f}) {verdict}; "
              f"vw:floor=0 reproduces it {'exactly' if exact else 'NOT exactly'}")


if __name__ == "__main__":
    main()
