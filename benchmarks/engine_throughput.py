"""In-process Engine throughput with the durable store: decide + record_outcome per visitor.

Run: ``python benchmarks/engine_throughput.py [--visitors 20000]``. Prints events/s (one event =
a decision and its outcome) and decide latency, committing per call (each call durable before it
returns) and with group commit (one commit per 32 visitors, as the HTTP server does under load),
then with the example shop's guardrails for visitors who come back (caps read their history),
beside a bare SQLite baseline that inserts and commits a row of the same size per event.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import simulator  # noqa: E402
from bandit import Engine, load_config  # noqa: E402
from bandit.config.shop import parse_config  # noqa: E402

EXAMPLE_SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop.toml"


def engine_run(contexts, group: int, spec: str, config_path=None, returning: int = 0):
    """``returning``: draw visitor ids from a pool this size (0: every visitor is new)."""
    cfg = load_config(config_path)
    raw = dict(cfg.raw)
    raw["policy"] = {"spec": spec}
    config = parse_config(raw)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        engine = Engine.open(config, d, seed=0)
        lat = np.empty(len(contexts))
        t0 = time.perf_counter()
        for i, ctx in enumerate(contexts):
            commit = group == 1 or (i + 1) % group == 0
            s = time.perf_counter()
            visitor = f"v{i % returning if returning else i}"
            dec = engine.decide(visitor, ctx, commit=commit)
            lat[i] = time.perf_counter() - s
            engine.record_outcome(dec.event_id, bool(rng.random() < 0.3), 50.0, f"o{i}",
                                  commit=commit)
        engine.commit()
        elapsed = time.perf_counter() - t0
        engine.close()
    return len(contexts) / elapsed, np.percentile(lat, 50) * 1e3, np.percentile(lat, 99) * 1e3


def sqlite_baseline(n: int):
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "b.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)")
        payload = "x" * 300
        t0 = time.perf_counter()
        for i in range(n):
            db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"k{i}", payload))
            db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"o{i}", payload))
        elapsed = time.perf_counter() - t0
        db.close()
    return n / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--policy", default="linucb")
    args = parser.parse_args()
    world = simulator.make_world()
    contexts = world.visitors(args.visitors, np.random.default_rng(1)).contexts
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, sqlite {sqlite3.sqlite_version}; policy {args.policy}, "
          f"{args.visitors:,} visitors, synchronous=NORMAL (WAL)")
    base = sqlite_baseline(args.visitors)
    print(f"{'mode':38s} {'events/s':>10s} {'decide p50 ms':>14s} {'decide p99 ms':>14s} "
          f"{'x sqlite':>9s}")
    for label, group, config, returning in (
            ("engine, commit per call", 1, None, 0),
            ("engine, group commit (32)", 32, None, 0),
            # rules, caps and a budget; 20 ids that keep coming back (1,000 visits each, as a
            # crawler reusing one id would): cap queries must not grow with the history
            ("  + examples/shop.toml, 20 returning", 32, EXAMPLE_SHOP, 20)):
        tput, p50, p99 = engine_run(contexts, group, args.policy, config, returning)
        print(f"{label:38s} {tput:10,.0f} {p50:14.3f} {p99:14.3f} {tput / base:9.2f}")
    print(f"{'bare sqlite, 2 autocommit inserts/event':38s} {base:10,.0f} {'-':>14s} {'-':>14s} "
          f"{1.0:9.2f}")


if __name__ == "__main__":
    main()
