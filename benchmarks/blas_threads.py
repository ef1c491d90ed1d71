"""The policies' speed on a busy machine: the library's own BLAS limit against the user's.

Run: ``python benchmarks/blas_threads.py [--visitors 20000] [--burners 2] [--rounds 3]``.

Starts ``--burners`` CPU-bound processes beside the runs (a busy machine), then times, each in
a fresh interpreter, ``simulator.run`` of linucb and an engine loop (decide and outcome for
2,000 visitors, as a service or a notebook would call it):

* ``library default``: no environment variable: the first policy built limits BLAS to one
  thread (``policies.blas``);
* ``OPENBLAS_NUM_THREADS=1``: the user's own setting before numpy is imported;
* ``threads as numpy picks``: ``CARTWHEEL_BLAS_THREADS`` = the core count, what a library
  user got before the limit.

The runs take turns in rounds (medians), so a noisy neighbour hits all of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

from busy import cpu_bound

RUN = """
import time, simulator
world = simulator.make_world()
policy = world.policy("linucb", seed=0)
t = time.perf_counter()
simulator.run(world, policy, visitors={visitors}, seed=0)
print(time.perf_counter() - t)
"""
ENGINE = """
import tempfile, time
from bandit import Engine
engine = Engine.open(data_dir=tempfile.mkdtemp(), seed=0)
t = time.perf_counter()
for i in range(2000):
    d = engine.decide(f"v{i}", {"device": "mobile", "cart_value": float(i % 200)})
    if i % 10 == 0:
        engine.record_outcome(d.event_id, True, 40.0)
print(time.perf_counter() - t)
engine.close()
"""
MODES = {"library default": {}, "OPENBLAS_NUM_THREADS=1": {"OPENBLAS_NUM_THREADS": "1"},
         "threads as numpy picks": {"CARTWHEEL_BLAS_THREADS": str(os.cpu_count())}}


def timed(code: str, extra: dict) -> float:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "CARTWHEEL_BLAS_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], env={**env, **extra},
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with cpu_bound(args.burners):
        time.sleep(1.0)
        print(f"# {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, load {os.getloadavg()[0]:.1f} with "
              f"{args.burners} CPU-bound processes beside; {args.rounds} rounds, medians")
        jobs = {"simulator.run, linucb, %d visitors" % args.visitors:
                RUN.format(visitors=args.visitors), "engine loop, 2,000 visitors": ENGINE}
        results = {(job, mode): [] for job in jobs for mode in MODES}
        for _ in range(args.rounds):
            for job, code in jobs.items():
                for mode, extra in MODES.items():
                    results[job, mode].append(timed(code, extra))
        print(f"{'run':38s} {'mode':24s} {'seconds':>8s} {'vs OPENBLAS=1':>14s}")
        for job in jobs:
            base = statistics.median(results[job, "OPENBLAS_NUM_THREADS=1"])
            for mode in MODES:
                t = statistics.median(results[job, mode])
                print(f"{job:38s} {mode:24s} {t:8.2f} {t / base:13.2f}x")


if __name__ == "__main__":
    main()
