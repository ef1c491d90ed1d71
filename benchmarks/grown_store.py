"""A year of traffic in small: grow a data dir through the engine's bulk API, then time what
grows with history (start-up with and without snapshots, export, the disk).

Run: ``python benchmarks/grown_store.py [--decisions 1000000] [--per-day 100000]
[--dir DIR]``. The shop is the default simulated one (linucb, 24 h attribution window, ~5% of
decisions convert, the rest expire); each simulated day is decided in batches, its orders
recorded, then expired at the day's end (``decide_batch(now=)``, ``record_outcome(now=,
commit=False)``, ``expire(now=)``: the bulk-loading API backfills use). A ``--dir`` that holds
a grown store is reused. Prints one table: size, start-up (snapshot / none), and the time and peak
RSS of the ``cartwheel export``, ``segments``, ``report``, ``replay`` (linucb and uniform under
dr over the whole store) and ``segments --log`` processes, and one erasure.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import simulator  # noqa: E402
from bandit import Engine, load_config  # noqa: E402

T0 = 1_760_000_000.0
DAY = 86_400.0


def grow(data_dir: Path, config, decisions: int, per_day: int, seed: int = 0) -> float:
    """Decide ``decisions`` visitors, ``per_day`` a simulated day; returns the end time."""
    world = simulator.make_world()
    rng = np.random.default_rng(seed)
    index = {a: i for i, a in enumerate(world.actions)}
    engine = Engine.open(config, data_dir, seed=seed, clock=lambda: T0)
    day, done, batch_size = 0, 0, 500
    started = time.perf_counter()
    while done < decisions:
        n = min(per_day, decisions - done)
        visitors = world.visitors(n, rng, start=done)
        times = T0 + day * DAY + np.sort(rng.uniform(0, DAY, n))
        decided = []
        for i in range(0, n, batch_size):
            part = range(i, min(i + batch_size, n))
            decided += engine.decide_batch([(f"d{day}v{j}", visitors.contexts[j], None)
                                            for j in part], now=float(times[part[-1]]))
        shown = np.array([index[d.action] for d in decided])
        out = world.outcomes(visitors, shown, rng)
        for j in np.flatnonzero(out.converted):
            at = float(times[j] + min(out.delay_s[j], DAY - 1))
            engine.record_outcome(decided[j].event_id, True, float(out.order_value[j]),
                                  now=at, commit=False)
        engine.commit()
        engine.expire(now=T0 + (day + 1) * DAY + DAY)  # the day's window has passed
        done += n
        day += 1
        print(f"  grew {done:,} decisions ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr)
    engine.close()
    return T0 + (day + 1) * DAY


def timed_open(config, data_dir: Path) -> float:
    """Seconds ``Engine.open`` takes on the grown store (the process's one-time imports
    are paid by a first open of an empty store, not counted)."""
    with tempfile.TemporaryDirectory() as empty:
        Engine.open(config, Path(empty), seed=0, clock=lambda: T0).close()
    t0 = time.perf_counter()
    engine = Engine.open(config, data_dir, seed=0, clock=lambda: T0)
    took = time.perf_counter() - t0
    engine.close()
    return took


def child(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a command run as a child process (its own rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{argv[3:5]} failed: {proc.stderr.read()[-2000:]}")
    return took, usage.ru_maxrss / 1024


def timed_forget(config, data_dir: Path) -> float:
    """Seconds to erase one visitor with a few decisions among all the others."""
    engine = Engine.open(config, data_dir, seed=0, clock=lambda: T0)
    try:
        engine.decide_batch([("erase-me", {}, None)] * 3)
        t0 = time.perf_counter()
        engine.forget("erase-me")
        return time.perf_counter() - t0
    finally:
        engine.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--reads-only", action="store_true",
                        help="only what reads the whole log (export, replay, segments --log)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="grown-"))
    data_dir, config_path = base / "data", base / "shop.toml"
    base.mkdir(parents=True, exist_ok=True)
    if not config_path.exists():  # the default shop, its data dir beside it
        config_path.write_text(resources.files("bandit.config").joinpath(
            "default_shop.toml").read_text().replace('path = "cartwheel-data"',
                                                     f'path = "{data_dir}"'))
    config = load_config(config_path)
    if not (data_dir / "events.sqlite3").exists():
        grow(data_dir, config, args.decisions, args.per_day)
    size_mb = sum(p.stat().st_size for p in data_dir.glob("events.sqlite3*")) / 2**20
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; grown store: "
          f"{args.decisions:,} decisions, {args.per_day:,} a simulated day, {size_mb:,.0f} MB "
          "of event database; start-up is a warm Engine.open, the others the CLI's process")
    print(f"{'what':36s} {'seconds':>9s} {'peak RSS MB':>12s}")
    cli = [sys.executable, "-m", "bandit.cli"]
    common = ["--data-dir", str(data_dir), "--config", str(config_path)]
    for name, measure in MEASURES.items():
        if args.reads_only and name not in READS:
            continue
        took, mb = measure(cli, common, config, base)
        print(f"{name:36s} {took:9.2f} {'' if mb is None else f'{mb:12,.0f}'}", flush=True)
    print(f"(load average at the end {os.getloadavg()[0]:.1f})")


def _start(config, base: Path, snapshots: bool) -> tuple[float, None]:
    data_dir = base / "data"
    if snapshots:
        return timed_open(config, data_dir), None
    kept = base / "snapshots-kept"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.move(data_dir / "snapshots", kept)
    try:
        return timed_open(config, data_dir), None
    finally:
        shutil.rmtree(data_dir / "snapshots", ignore_errors=True)
        shutil.move(kept, data_dir / "snapshots")


def _export(cli, common, config, base):
    try:
        return child(cli + ["export", *common, "--out", str(base / "log.jsonl")])
    finally:
        (base / "log.jsonl").unlink(missing_ok=True)


def _from_log(command: list[str]):
    def measure(cli, common, config, base):
        return child(cli + command + [str(base / "data"), "--config", str(base / "shop.toml")])
    return measure


#: what is measured, in order: each (cli, common args, config, base dir) -> (s, peak MB)
MEASURES = {
    "start with snapshots": lambda cli, common, config, base: _start(config, base, True),
    "start without (re-learn)": lambda cli, common, config, base: _start(config, base, False),
    "export to JSONL": _export,
    "segments (the snapshot, newest rows)": lambda cli, common, config, base: child(
        cli + ["segments", *common]),
    # replay and segments --log read the whole log, in chunks: a learning policy, a fixed
    # target under dr (the reward model's two reads), and the tree on a sample
    "replay linucb,uniform (dr)": _from_log(["replay", "--policies=linucb,uniform"]),
    "segments --log (trained by replay)": _from_log(["segments", "--log"]),
    "report": lambda cli, common, config, base: child(cli + ["report", *common]),
    "forget one visitor": lambda cli, common, config, base: (timed_forget(config,
                                                                        base / "data"), None),
}
#: the reads of the whole log (--reads-only)
READS = ("export to JSONL", "replay linucb,uniform (dr)", "segments --log (trained by replay)")

if __name__ == "__main__":
    main()
