"""The crash suite, again and again, beside busy processes: a flake that only load shows.

Run: ``python benchmarks/crash_under_load.py [--runs 20] [--busy 2]``. Starts ``--busy``
CPU-bound processes (a tight loop each), then runs ``python -m pytest -m crash -x -q`` up to
``--runs`` times in a row, stopping at the first failure; prints one row per run (result,
seconds, the one-minute load average when it ended) and stops the busy processes by pid.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

from busy import cpu_bound


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy", type=int, default=2)
    args = parser.parse_args()
    with cpu_bound(args.busy):
        time.sleep(5)  # the load average catches up
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
              f"{platform.python_version()}; {args.busy} CPU-bound processes beside; "
              f"`python -m pytest -m crash -x -q`", flush=True)
        print(f"{'run':>4s} {'result':>7s} {'seconds':>8s} {'load':>5s}", flush=True)
        passed = 0
        for run in range(1, args.runs + 1):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pytest", "-m", "crash", "-x", "-q",
                                   "-p", "no:cacheprovider"], capture_output=True, text=True)
            ok = done.returncode == 0
            print(f"{run:4d} {'passed' if ok else 'FAILED':>7s} {time.perf_counter() - t0:8.1f} "
                  f"{os.getloadavg()[0]:5.1f}", flush=True)
            if not ok:
                print(done.stdout[-4000:], flush=True)
                break
            passed += 1
        print(f"{passed} of {args.runs} runs passed in a row", flush=True)


if __name__ == "__main__":
    main()
