"""Scale-out on Redis Streams: decisions/s of one process vs decide replicas, the trainer's
ingest rate, and how long an outcome takes to reach the replicas' model.

Run: ``python benchmarks/scaleout.py [--requests 20000] [--concurrency 32]``. Bounded: it starts
its own redis-server (Debian package, ``appendfsync everysec``), a single ``cartwheel serve``,
a ``cartwheel train`` and two ``cartwheel serve --role decide`` replicas on 127.0.0.1, runs a
fixed number of requests, then stops them all by pid.

* decisions/s: the scenarios take turns in rounds (medians), so a noisy neighbour hits all of
  them. "2 replicas" splits the same concurrency over both. The trainer runs all the while
  (it ingests what the replicas log), as in production.
* trainer ingest: an in-process trainer on a stream pre-filled with request groups of 32
  decisions plus one outcome per 4 decisions (4% of them conversions): events (decisions +
  outcomes) per second from the first read to the last commit, snapshots and publishing on.
* outcome -> model: on an otherwise idle shop, the time from an acknowledged conversion until
  a replica decides with a model that learned it, at the trainer's default
  ``--publish-every 1`` (what bounds it: the publication interval).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from http_load import CTX, TOKEN, Connection, decide_only, load  # noqa: E402


def start_redis(directory: str) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", directory, "--appendonly", "yes", "--appendfsync",
                             "everysec", "--save", "", "--pidfile", f"{directory}/redis.pid",
                             "--maxmemory-policy", "noeviction"],
                            stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start(args: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "bandit.cli", *args], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1",
                                            "CARTWHEEL_TOKEN": TOKEN})
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline()).group(1))
    return proc, port


async def get_json(port: int, path: str) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


async def split_load(ports: list[int], requests: int, concurrency: int) -> dict:
    parts = await asyncio.gather(*(load(p, requests // len(ports), concurrency // len(ports),
                                        decide_only) for p in ports))
    return {"decisions/s": sum(p["decisions/s"] for p in parts),
            "p50 ms": float(np.median([p["p50 ms"] for p in parts])),
            "p99 ms": max(p["p99 ms"] for p in parts), "errors": sum(p["errors"] for p in parts)}


def ingest_rate(url: str, data_dir: str, decisions: int) -> tuple[float, float]:
    """(events/s, decisions/s) of an in-process trainer over a pre-filled stream."""
    from bandit import Engine
    from bandit.config.shop import load_config
    from bandit.scaleout.bus import RedisBus
    from bandit.scaleout.records import BusDecision, BusEntry, BusOutcome, encode_entry
    from bandit.scaleout.trainer import Trainer

    config = load_config(None)
    rng = np.random.default_rng(0)

    async def main():
        bus = RedisBus(url, "ingest-bench")
        salt, _ = await bus.join(config.config_hash(), config.source)
        engine = Engine.open(config, data_dir, salt=salt, seed=0)
        space, ids = engine.space, list(config.action_ids)
        events, earlier, now = 0, [], time.time()
        for g in range(decisions // 32):
            ds = []
            for i in range(32):
                _, ctx = space.normalize_row({**CTX, "cart_value": float(rng.uniform(0, 200))})
                action = ids[int(rng.integers(len(ids)))]
                ds.append(BusDecision(f"{g:08d}{i:04d}", now, f"h{g}-{i}", ctx, ids, action,
                                      1 / len(ids), "treatment", 0, True))
            outs = [BusOutcome(e, now, k % 25 == 0, 50.0 if k % 25 == 0 else 0.0, None)
                    for k, e in enumerate(earlier[:8])]
            earlier = [d.event_id for d in ds]
            await bus.append(encode_entry(BusEntry(ds, outs, "bench")), [])
            events += len(ds) + len(outs)
        trainer = Trainer(engine, bus, batch=2000)
        started = time.perf_counter()
        while await trainer.step(block_ms=None):
            pass
        elapsed = time.perf_counter() - started
        engine.close()
        await bus.close()
        return events / elapsed, trainer.totals.decisions / elapsed

    return asyncio.run(main())


async def outcome_delay(replica: int, trainer: int, samples: int) -> list[float]:
    """Seconds from an acknowledged conversion until ``replica`` decides with a model that
    learned it. No other traffic meanwhile, so the trainer's model version tells exactly when
    (it grows by one for the decision's row and one for the conversion's relabel)."""
    conn = await Connection.open(replica)
    rng = np.random.default_rng(0)
    delays = []
    for k in range(samples * 2):
        if len(delays) == samples:
            break
        before = (await get_json(trainer, "/healthz"))["model_version"]
        _, resp = await conn.post("/v1/decide", json.dumps(
            {"visitor_id": f"d{k}", "context": CTX}).encode())
        decision = json.loads(resp)
        if decision["group"] != "treatment" or decision["probability"] >= 1.0:
            continue  # holdout and forced decisions are never learned: another visitor
        await conn.post("/v1/outcome", json.dumps(
            {"event_id": decision["event_id"], "converted": True, "order_value": 60.0}).encode())
        t0 = time.perf_counter()
        while (await get_json(replica, "/healthz"))["model_version"] < before + 2:
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("the replica did not get a model with the conversion in 30 s")
            await asyncio.sleep(0.005)
        delays.append(time.perf_counter() - t0)
        # probes at random phases of the publication interval (not in step with it)
        await asyncio.sleep(float(rng.uniform(0.0, 1.0)))
    return delays


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ingest", type=int, default=100_000, help="decisions to ingest")
    parser.add_argument("--delay-samples", type=int, default=40)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("needs redis-server (apt-get install redis-server)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; "
          f"{args.requests:,} decide requests per scenario at concurrency {args.concurrency}, "
          f"{args.rounds} rounds; client, redis and every cartwheel process share the machine")
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(tmp)
        procs = []
        try:
            procs.append(start(["serve", "--port", "0", "--data-dir", f"{tmp}/single"]))
            procs.append(start(["train", "--bus", url, "--port", "0", "--data-dir",
                                f"{tmp}/trainer"]))
            procs += [start(["serve", "--role", "decide", "--bus", url, "--port", "0"])
                      for _ in range(2)]
            (_, single), (_, trainer), (_, rep_a), (_, rep_b) = procs
            scenarios = [("1 process (SQLite)", [single]), ("1 replica (Redis)", [rep_a]),
                         ("2 replicas (Redis)", [rep_a, rep_b])]
            for _, ports in scenarios:
                asyncio.run(split_load(ports, 1000, args.concurrency))
            results = {name: [] for name, _ in scenarios}
            per_round = args.requests // args.rounds
            for _ in range(args.rounds):
                for name, ports in scenarios:
                    results[name].append(asyncio.run(split_load(ports, per_round,
                                                                args.concurrency)))
            time.sleep(2.0)  # the trainer catches up with the load
            delays = np.array(asyncio.run(outcome_delay(rep_a, trainer, args.delay_samples)))
        finally:
            for proc, _ in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
        events_s, ingest_s = ingest_rate(url, f"{tmp}/ingest", args.ingest)
        redis.terminate()
        redis.wait(timeout=30)
    base = float(np.median([r["decisions/s"] for r in results["1 process (SQLite)"]]))
    print(f"\n{'scenario':22s} {'decisions/s':>12s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'errors':>7s} {'of 1 process':>13s}")
    for name, rounds in results.items():
        rate = float(np.median([r["decisions/s"] for r in rounds]))
        print(f"{name:22s} {rate:12,.0f} {np.median([r['p50 ms'] for r in rounds]):8.2f} "
              f"{np.median([r['p99 ms'] for r in rounds]):8.2f} "
              f"{sum(r['errors'] for r in rounds):7d} {rate / base:13.0%}")
    replica = float(np.median([r["decisions/s"] for r in results["1 replica (Redis)"]]))
    print(f"\ntrainer ingest: {events_s:,.0f} events/s ({ingest_s:,.0f} decisions/s, groups of "
          "32 decisions + 8 outcomes)")
    print(f"outcome -> replica's model: p50 {np.percentile(delays, 50) * 1e3:.0f} ms, p99 "
          f"{np.percentile(delays, 99) * 1e3:.0f} ms ({len(delays)} conversions on an idle shop, "
          "trainer --publish-every 1)")
    per_decision = 1.25  # events per decision: itself plus one outcome per 4 decisions
    limit = events_s / (replica * per_decision)
    print(f"\n16 replicas on 16 cores: 16 x {replica:,.0f} = {16 * replica:,.0f} decisions/s "
          f"offered, {16 * replica * per_decision:,.0f} events/s for the trainer, which ingests "
          f"{events_s:,.0f}: the trainer is the limit from ~{limit:.1f} replicas on (trainer "
          "rate / replica rate). Lifting it: ingest on a second core (decode and feature "
          "encoding of the next batch while the current one commits), or shard the stream by "
          "visitor hash with one trainer per shard (models merged by their additive sums).")


if __name__ == "__main__":
    main()
