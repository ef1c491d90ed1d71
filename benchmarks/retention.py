"""Retention at steady traffic: the event database's size day by day with ``keep_days``.

Run: ``python benchmarks/retention.py [--days 60] [--per-day 10000] [--keep-days 30]``.
The default simulated shop decides ``--per-day`` visitors a simulated day through the
engine's bulk API (orders recorded, the day expired, a snapshot taken), then runs retention
(``Engine.compact``) as a server does; every 10 days it prints the database's size (file and
write-ahead log) and the decisions kept. With retention the size stops growing once the
first ``keep_days`` have passed: SQLite reuses the pages the removed rows freed.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import simulator  # noqa: E402
from bandit import Engine, load_config  # noqa: E402

T0 = 1_760_000_000.0
DAY = 86_400.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--keep-days", type=float, default=30)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="retention-"))
    config_path = base / "shop.toml"
    from importlib import resources

    config_path.write_text(resources.files("bandit.config").joinpath("default_shop.toml")
                           .read_text().replace("keep_days = 90", f"keep_days = {args.keep_days}"))
    config = load_config(config_path)
    clock = [T0]
    engine = Engine.open(config, base / "data", seed=0, clock=lambda: clock[0])
    world = simulator.make_world()
    rng = np.random.default_rng(0)
    index = {a: i for i, a in enumerate(world.actions)}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; "
          f"{args.per_day:,} decisions a simulated day, keep_days = {args.keep_days:g}")
    print(f"{'day':>4s} {'decisions kept':>15s} {'removed so far':>15s} {'database MB':>12s}")
    removed = 0
    for day in range(args.days):
        visitors = world.visitors(args.per_day, rng, start=day * args.per_day)
        times = T0 + day * DAY + np.sort(rng.uniform(0, DAY, args.per_day))
        decided = []
        for i in range(0, args.per_day, 500):
            part = range(i, min(i + 500, args.per_day))
            decided += engine.decide_batch([(f"d{day}v{j}", visitors.contexts[j], None)
                                            for j in part], now=float(times[part[-1]]))
        out = world.outcomes(visitors, np.array([index[d.action] for d in decided]), rng)
        for j in np.flatnonzero(out.converted):
            engine.record_outcome(decided[j].event_id, True, float(out.order_value[j]),
                                  now=float(times[j]), commit=False)
        engine.commit()
        clock[0] = T0 + (day + 1) * DAY + 2 * DAY  # the day's window (24 h) has passed
        engine.expire()
        engine.snapshot()
        removed += engine.compact()
        if (day + 1) % 10 == 0:
            size = sum(p.stat().st_size for p in (base / "data").glob("events.sqlite3*"))
            print(f"{day + 1:4d} {engine.store.count('decisions'):15,d} {removed:15,d} "
                  f"{size / 2**20:12,.1f}")
    engine.close()


if __name__ == "__main__":
    main()
