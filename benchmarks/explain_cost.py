"""What ``"explain": true`` costs, and that leaving it off costs nothing.

Run: ``python benchmarks/explain_cost.py [--visitors 20000] [--rounds 5]``. An in-process
engine (durable store, linucb, the default shop) decides groups of 32 requests: requests as
before explanations existed (3-tuples), with ``explain`` false, and with ``explain`` true.
The three take turns in rounds (medians), so machine noise hits them alike; the ratio to the
first row is the cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

from bandit import Engine

CTX = {"device": "mobile", "traffic_source": "paid_search", "returning": False,
       "pages_viewed": 4, "cart_value": 35.5, "page_type": "cart", "hour": 20,
       "region": "north", "channel": "web"}


def run(engine, n: int, make) -> float:
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for start in range(0, n, 32):
        engine.decide_batch([make(f"v{start + i}", {**CTX, "cart_value": float(v)})
                             for i, v in enumerate(rng.uniform(0, 200, 32))], commit=False)
        engine.commit()
    return n / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; linucb, groups "
          f"of 32, {args.visitors:,} decisions per scenario and round, {args.rounds} rounds")
    scenarios = [("no explain field", lambda v, c: (v, c, None)),
                 ("explain: false", lambda v, c: (v, c, None, False)),
                 ("explain: true", lambda v, c: (v, c, None, True))]
    with tempfile.TemporaryDirectory() as data:
        engine = Engine.open(data_dir=data, seed=0)
        run(engine, 2000, scenarios[0][1])  # warm-up
        rates = {name: [] for name, _ in scenarios}
        for _ in range(args.rounds):
            for name, make in scenarios:
                rates[name].append(run(engine, args.visitors // args.rounds, make))
        engine.close()
    base = float(np.median(rates[scenarios[0][0]]))
    print(f"{'scenario':18s} {'decisions/s':>12s} {'of no field':>12s}")
    for name, values in rates.items():
        rate = float(np.median(values))
        print(f"{name:18s} {rate:12,.0f} {rate / base:12.1%}")


if __name__ == "__main__":
    main()
