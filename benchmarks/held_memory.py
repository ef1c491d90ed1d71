"""Memory of held closings: a non-additive policy learns in decision order, so a conversion
waits ("held") until every earlier decision has closed; with a day's attribution window a
busy shop holds a day of conversions. They wait as their seqs (the rows stay in the log and
are read back when released), not as rows in memory.

Run: ``python benchmarks/held_memory.py [--held 20000,100000]``. One decision is left open
(it holds back the learning order), then ``N`` decisions convert at once: all of them are
held. Prints the memory the engine's process allocated per held closing (tracemalloc, Python
objects) and the RSS growth, for each ``N``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import tracemalloc
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bandit import Engine  # noqa: E402
from bandit.config.shop import parse_config  # noqa: E402

T0 = 1_760_000_000.0
CTX = {"device": "mobile", "traffic_source": "email", "returning": True, "pages_viewed": 4,
       "cart_value": 55.0, "page_type": "cart", "hour": 20, "region": "north", "channel": "web"}


def held_bytes(n: int) -> tuple[int, float, float]:
    """(closings held, bytes allocated per held closing, RSS growth in MB)."""
    import tomllib
    from importlib import resources

    doc = tomllib.loads(resources.files("bandit.config").joinpath("default_shop.toml")
                        .read_text())
    doc["policy"] = {"spec": "linucb:halflife=100000"}  # forgetting: not additive
    doc["holdout"] = {"fraction": 0.0}
    config = parse_config(doc)
    with tempfile.TemporaryDirectory() as d:
        engine = Engine.open(config, Path(d), seed=0, clock=lambda: T0)
        engine.decide_batch([("blocker", CTX, None)], now=T0)  # open for the whole window
        decided = []
        for start in range(0, n, 1000):
            decided += engine.decide_batch([(f"v{i}", CTX, None)
                                            for i in range(start, min(n, start + 1000))],
                                           now=T0 + 1)
        tracemalloc.start()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        before = tracemalloc.take_snapshot()
        for i, d_ in enumerate(decided):
            engine.record_outcome(d_.event_id, True, 40.0, now=T0 + 2, commit=False)
            if i % 1000 == 999:
                engine.commit()
        engine.commit()
        after = tracemalloc.take_snapshot()
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        held = engine.models.held
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        tracemalloc.stop()
        engine.close()
    return held, grown / max(held, 1), (rss1 - rss0) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", default="20000,100000")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; policy "
          "linucb:halflife=100000 (non-additive), one decision left open")
    print(f"{'held closings':>14s} {'bytes per held closing':>23s} {'peak RSS growth MB':>19s}")
    for n in (int(x) for x in args.held.split(",")):
        held, per, rss = held_bytes(n)
        print(f"{held:14,d} {per:23,.0f} {rss:19,.1f}")


if __name__ == "__main__":
    main()
