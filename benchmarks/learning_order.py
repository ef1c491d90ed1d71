"""What the order of learning costs a policy: outcomes at once, in closing order, or one
attribution window late in decision order.

Run: ``python benchmarks/learning_order.py [--policies linucb:halflife=50000,...] [--seeds 2]
[--visitors 60000] [--window 20000]``.

The simulator's runner learns each decision's outcome at once. A shop's outcomes arrive late:
a conversion minutes after its decision, a non-conversion only when the attribution window
(``--window`` visitors here) ends. Three feeds of the same visitors and outcome draws (common
random numbers) per seed:

* ``at once``: every outcome with its decision (the runner's feed);
* ``closing order``: conversions at once, non-conversions a window later (how the engine fed
  non-additive policies before 2026-12-05);
* ``decision order, late``: every decision a window later, in decision order (how the engine
  feeds them now: once every earlier decision has closed).

Printed: expected profit per visitor (the world's exact expected reward of each chosen
action), one column per seed and the mean.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections import deque

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
import simulator  # noqa: E402
import simulator.worlds.runner  # noqa: E402
from simulator.worlds.runner import Feedback  # noqa: E402

FEEDS = ("at once", "closing order", "decision order, late")
BATCH = 100


class LateFeed:
    """Feeds the runner's batches as ``feed`` says: the rows due now, plus those held back
    ``window`` visitors ago."""

    def __init__(self, feed: str, window: int):
        self.feed, self.window = feed, window
        self.waiting: deque = deque()  # (visitor count at which they arrive, rows)

    def __call__(self, rows: Feedback, done: int) -> Feedback:
        now = {"at once": np.ones(len(rows), bool), "closing order": rows.converted,
               "decision order, late": np.zeros(len(rows), bool)}[self.feed]
        parts = [rows.take(now)]
        self.waiting.append((done + self.window, rows.take(~now)))
        while self.waiting and self.waiting[0][0] <= done:
            parts.append(self.waiting.popleft()[1])
        return Feedback.concat(parts)


def run(spec: str, seed: int, visitors: int, window: int, feed: str) -> float:
    """Expected profit per visitor of ``spec`` on the default world fed as ``feed`` says."""
    world = simulator.make_world("default", seed=seed)
    result = simulator.worlds.runner.run(world, world.policy(spec, seed), visitors=visitors,
                                  batch_size=BATCH, seed=seed, feed=LateFeed(feed, window))
    return float(result.expected[-1] / result.visitors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="linucb,linucb:halflife=50000,"
                                          "profit:conversion=logistic")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--visitors", type=int, default=60_000)
    ap.add_argument("--window", type=int, default=20_000, help="visitors per attribution window")
    args = ap.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"default world, {args.visitors:,} visitors, window {args.window:,} visitors; "
          "expected profit per visitor, by seed, then the mean")
    for spec in policies.split_specs(args.policies):
        for feed in FEEDS:
            values = [run(spec, s, args.visitors, args.window, feed) for s in range(args.seeds)]
            print(f"{spec:28s} {feed:22s} " + " ".join(f"{v:.3f}" for v in values)
                  + f"   mean {np.mean(values):.3f}", flush=True)


if __name__ == "__main__":
    main()
