"""What a report costs as the log grows, and what keeping its aggregates costs each write.

Run: ``python benchmarks/report_time.py [--sizes 10000 100000 1000000]``. For each size it
writes a log of that many decisions (a third as many visitors, 30% in the holdout, 4 actions,
one closed row per decision: 12% converted, the rest expired) straight through the
:class:`~bandit.store.events.EventStore`, then times (median of 7) ``build_report`` (what
``GET /v1/report`` and the dashboard read: KPIs, uplift, 48 hours and 30 days of timeline) and,
beside it, the full-scan grouping the report used before the aggregates. Then the write side:
engine decisions/s with group commit (32 per commit) with the aggregates folded at each commit
and with the fold switched off, interleaved in one run (a ratio: the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bandit import Engine, load_config  # noqa: E402
from bandit.domain.records import LoggedEvent  # noqa: E402
from bandit.insight.report import build_report  # noqa: E402
from bandit.store.events import EventStore  # noqa: E402

ACTIONS = ("none", "banner", "free_shipping", "discount_10")
# what the report computed before the aggregates: per-visitor totals grouped over the log
FULL_SCAN = """
WITH v AS (SELECT d.grp AS grp, COUNT(*) AS n, COALESCE(SUM(c.converted), 0) AS c,
                  COALESCE(SUM(c.order_value * c.converted), 0) AS r, COALESCE(SUM(c.cost), 0) AS k
           FROM decisions d LEFT JOIN closed c ON c.event_id = d.event_id
           GROUP BY d.grp, d.visitor_hash)
SELECT grp, COUNT(*), SUM(n), SUM(c), SUM(r), SUM(k), SUM(n * n), SUM(c * c), SUM(r * r),
       SUM(k * k), SUM(c * n), SUM(r * c) FROM v GROUP BY grp
"""
MARGIN = 0.3


def write_log(path: Path, n: int, seed: int = 0, batch: int = 2000) -> EventStore:
    rng = np.random.default_rng(seed)
    store = EventStore(path)
    t0 = 1_700_000_000.0
    visitors = rng.integers(0, max(n // 3, 1), n)
    ts = t0 + np.cumsum(rng.exponential(86400 * 30 / n, n))  # a month of traffic
    for start in range(0, n, batch):
        idx = range(start, min(n, start + batch))
        events = []
        for i in idx:
            holdout = visitors[i] % 10 < 3
            action = "none" if holdout else ACTIONS[int(rng.integers(0, 4))]
            events.append(LoggedEvent(
                f"e{i}", f"h{visitors[i]}", {"cart_value": 1.0}, (True,) * 4,
                ACTIONS.index(action), action, 0.25, "holdout" if holdout else "treatment", 0,
                not holdout, float(ts[i])))
        store.add_decisions(events, [ACTIONS] * len(events))
        for i in idx:
            converted = rng.random() < 0.12
            value = float(rng.gamma(2.0, 40.0)) if converted else 0.0
            store.add_closed(f"e{i}", float(ts[i]) + 60, "converted" if converted else "expired",
                             converted, value, 0.1 * value if converted else 0.0, value, True)
        store.commit()
    return store


def median_ms(fn, reps: int = 7) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def write_rate(aggregates: bool, visitors: int = 6000) -> float:
    config = load_config(None)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        engine = Engine.open(config, d, seed=0)
        if not aggregates:  # the fold switched off, to see what it costs (not an option)
            engine.store._folded = None
        carts = rng.uniform(5, 200, visitors)
        start = time.perf_counter()
        for i in range(visitors):
            d_ = engine.decide(f"v{i % 2000}", {"cart_value": float(carts[i])}, commit=False)
            if i % 10 == 0:
                engine.record_outcome(d_.event_id, True, 50.0, commit=False)
            if i % 32 == 31:
                engine.commit()
        engine.commit()
        rate = visitors / (time.perf_counter() - start)
        engine.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{'decisions':>10s} {'report ms':>10s} {'full scan ms':>13s} {'hourly rows':>12s}")
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            store = write_log(Path(d) / f"log{n}.sqlite3", n)
            report_ms = median_ms(lambda: build_report(store, MARGIN))
            scan_ms = median_ms(lambda: store.db.execute(FULL_SCAN).fetchall(), reps=3)
            hours = len(store.aggregates.hourly(0))
            print(f"{n:10,d} {report_ms:10.2f} {scan_ms:13.1f} {hours:12,d}")
            store.close()
    with_t, without = [], []
    for _ in range(3):  # interleaved, so that a load change hits both
        with_t.append(write_rate(True))
        without.append(write_rate(False))
    a, b = statistics.median(with_t), statistics.median(without)
    print(f"\nengine decisions/s (group commit 32, 10% converted): with aggregates {a:,.0f}, "
          f"without {b:,.0f}: ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
