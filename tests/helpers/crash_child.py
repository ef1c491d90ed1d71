"""Child process for the crash tests: drives an Engine and prints each acknowledgement.

Usage: python crash_child.py DATA_DIR SEED POLICY_SPEC. Prints "ack <outcome_id>" after each outcome is
committed (acknowledged), "decided <event_id>" after each decision; runs until killed.
"""

from __future__ import annotations

import sys

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))

from engine_helpers import Clock, shop  # noqa: E402

import simulator  # noqa: E402
from bandit import Engine  # noqa: E402


def main(data_dir: str, seed: int, spec: str) -> None:
    clock = Clock()
    config = shop(holdout={"fraction": 0.1}, attribution={"window_s": 300},
                  storage={"snapshot_every_updates": 40}, policy={"spec": spec})
    engine = Engine.open(config, data_dir, seed=seed, clock=clock)
    world = simulator.make_world()
    rng = np.random.default_rng(seed)
    open_events = []
    i = 0
    while True:
        batch = world.visitors(50, rng)
        for ctx in batch.contexts:
            i += 1
            d = engine.decide(f"visitor-{rng.integers(5000)}", ctx)
            print(f"decided {d.event_id}", flush=True)
            open_events.append(d.event_id)
            if rng.random() < 0.5 and open_events:
                event = open_events.pop(int(rng.integers(len(open_events))))
                oid = f"o-{seed}-{i}"
                try:
                    engine.record_outcome(event, bool(rng.random() < 0.4),
                                          float(rng.uniform(5, 150)), oid)
                except Exception:  # closed by expiry meanwhile: a 409 in HTTP terms
                    continue
                print(f"ack {oid}", flush=True)
            clock.t += 2.0
            if i % 97 == 0:
                engine.expire()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
