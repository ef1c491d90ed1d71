"""Soak: `cartwheel serve` on a grown store at a fixed request rate for a set time; per window,
the latency percentiles, errors and the server's resident memory.

Run: ``python benchmarks/soak.py --data-dir DIR --config FILE [--minutes 30] [--rate 100]
[--window-s 60]``, with a store grown by ``benchmarks/grown_store.py --dir DIR`` (its
``DIR/data`` and ``DIR/shop.toml``). Open loop: requests are sent on schedule whatever the
answers take (a slow server shows as latency, not as a lower rate), over a few keep-alive
connections carrying the shop backend's token; each visitor decides, and one in twenty then
reports an order for that decision. Latency is measured from the scheduled send time, so
queueing counts. RSS is the server's ``VmRSS`` at each window's end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np

TOKEN = "soak-benchmark-token-0123456789abcdef"
CTX = {"device": "mobile", "traffic_source": "paid_search", "returning": False,
       "pages_viewed": 4, "cart_value": 35.5, "page_type": "cart", "hour": 20}


class Connection:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.lock = reader, writer, asyncio.Lock()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        async with self.lock:  # one request at a time on a keep-alive connection
            self.writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                              b"application/json\r\nAuthorization: Bearer %s\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (path.encode(), TOKEN.encode(),
                                                                  len(body), body))
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            return int(head[9:12]), await self.reader.readexactly(length)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def soak(port: int, pid: int, minutes: float, rate: float, window_s: float) -> None:
    conns = [Connection(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(16)]
    start = time.perf_counter()
    end = start + minutes * 60
    latencies: list[float] = []
    errors = sent = 0
    window_end = start + window_s
    n = 0

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = conns[i % len(conns)]
        try:
            status, body = await conn.post("/v1/decide", json.dumps(
                {"visitor_id": f"soak-{i}", "context": CTX}).encode())
            if status == 200 and i % 20 == 0:
                event = json.loads(body)["event_id"]
                status, _ = await conn.post("/v1/outcome", json.dumps(
                    {"event_id": event, "converted": True, "order_value": 40.0}).encode())
            errors += status != 200
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        latencies.append(time.perf_counter() - due)

    print(f"{'minute':>7s} {'requests':>9s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} "
          f"{'errors':>6s} {'server RSS MB':>14s}", flush=True)
    tasks = set()
    while True:
        due = start + n / rate
        now = time.perf_counter()
        if due >= end:
            break
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(one(n, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        sent += 1
        if time.perf_counter() >= window_end:
            lat = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
            print(f"{(window_end - start) / 60:7.1f} {sent:9,d} {np.percentile(lat, 50):7.2f} "
                  f"{np.percentile(lat, 99):7.2f} {lat.max():7.1f} {errors:6d} "
                  f"{rss_mb(pid):14.1f}", flush=True)
            latencies, errors, sent = [], 0, 0
            window_end += window_s
    await asyncio.gather(*tasks)
    if latencies:  # the last window, cut short by the end of the run
        lat = np.array(latencies) * 1e3
        print(f"{(time.perf_counter() - start) / 60:7.1f} {sent:9,d} "
              f"{np.percentile(lat, 50):7.2f} {np.percentile(lat, 99):7.2f} {lat.max():7.1f} "
              f"{errors:6d} {rss_mb(pid):14.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0, help="visitors a second")
    parser.add_argument("--window-s", type=float, default=60.0)
    args = parser.parse_args()
    decisions = None
    import sqlite3

    db = sqlite3.connect(f"file:{os.path.join(args.data_dir, 'events.sqlite3')}?mode=ro",
                         uri=True)
    decisions = db.execute("SELECT COALESCE(MAX(seq), 0) FROM decisions").fetchone()[0]
    db.close()
    server = subprocess.Popen(
        [sys.executable, "-m", "bandit.cli", "serve", "--port", "0", "--data-dir",
         args.data_dir, "--config", args.config], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CARTWHEEL_TOKEN": TOKEN, "OPENBLAS_NUM_THREADS": "1"})
    try:
        banner = ""
        for line in server.stdout:
            banner += line
            if "metrics:" in line:
                break
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", banner).group(1))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
              f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; a store of "
              f"{decisions:,} decisions served at {args.rate:g} visitors/s (1 in 20 with an "
              f"order) for {args.minutes:g} minutes, open loop", flush=True)
        asyncio.run(soak(port, server.pid, args.minutes, args.rate, args.window_s))
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
