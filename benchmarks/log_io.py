"""Log read throughput: JSON Lines and Parquet (rows/s into LoggedData, contexts encoded).

Run: ``python benchmarks/log_io.py [--rows 200000]``. Writes a uniform log of simulated visitors
in both formats to a temporary directory, then times ``read_log`` on each, beside the bare
parse (``json.loads`` per line; ``pyarrow.parquet.read_table``) as the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import policies  # noqa: E402
import simulator  # noqa: E402
from bandit import load_config  # noqa: E402
from bandit.store.logread import read_log  # noqa: E402
from bandit.store.logwrite import write_log  # noqa: E402
from simulator.worlds.simulated_log import simulate_log  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    world = simulator.make_world()
    logger = policies.make("uniform", n_actions=world.n_actions, n_features=world.space.dim,
                           seed=0)
    log = simulate_log(world, logger, args.rows, seed=0, keep_contexts=True)
    config = load_config()
    print(f"{args.rows:,} logged decisions (9 context keys, 8 actions)")
    print(f"{'format':10s} {'read_log rows/s':>16s} {'bare parse rows/s':>18s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory() as d:
        for fmt in ("jsonl", "parquet"):
            path = os.path.join(d, f"log.{fmt}")
            write_log(log, path)
            t0 = time.perf_counter()
            data, report = read_log(path, config)
            ours = len(data) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            if fmt == "jsonl":
                with open(path) as f:
                    n = sum(1 for line in f if json.loads(line))
            else:
                import pyarrow.parquet as pq
                n = pq.read_table(path).num_rows
            bare = n / (time.perf_counter() - t0)
            print(f"{fmt:10s} {ours:16,.0f} {bare:18,.0f} {ours / bare:6.2f}")


if __name__ == "__main__":
    main()
