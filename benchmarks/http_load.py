"""Loopback HTTP load: decisions/s and latency of `cartwheel serve` vs a bare aiohttp JSON echo.

Run: ``python benchmarks/http_load.py [--requests 20000] [--concurrency 32]``. Bounded: a fixed
number of requests at a fixed concurrency against servers it starts itself on 127.0.0.1, then it
stops them. The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams (far
lighter than a full client library), running in this process while each server runs in its own.
Scenarios: decide-only; a mixed stream where each decision is followed by its outcome; and the
same request count against a bare aiohttp endpoint that parses and echoes JSON (the ceiling).
The scenarios take turns in rounds and report medians, so a noisy neighbour hits all of them.
"mean group" is how many requests the server decided and committed together (from /metrics);
"loop lag p99 ms" is the p99 of the server's event-loop lag during the scenario (its
``cartwheel_event_loop_lag_seconds`` histogram; the upper bound of the bucket, so conservative).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

CTX = {"device": "mobile", "traffic_source": "paid_search", "returning": False,
       "pages_viewed": 4, "cart_value": 35.5, "page_type": "cart", "hour": 20,
       "region": "north", "channel": "web"}


def echo_server(port_file: str) -> None:
    """A bare aiohttp app: POST /echo parses the JSON body and returns it."""
    import msgspec
    from aiohttp import web

    async def echo(request):
        body = msgspec.json.decode(await request.read())
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    async def main():
        app = web.Application()
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class Connection:
    """Minimal keep-alive HTTP/1.1 client connection."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port):
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        # the shop's backend's calls (the token): one load generator from one address would
        # trip the per-address limit that pages are held to
        auth = b"Authorization: Bearer %s\r\n" % TOKEN.encode()
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                          b"\r\n%sContent-Length: %d\r\n\r\n%s" % (path.encode(), auth, len(body),
                                                                   body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        return status, await self.reader.readexactly(length)


async def load(port: int, requests: int, concurrency: int, make_request) -> dict:
    """Run ``requests`` calls of ``make_request(conn, i)`` on ``concurrency`` connections."""
    latencies, decisions, sent, errors = [], 0, 0, 0
    counter = iter(range(requests))

    async def worker():
        nonlocal decisions, sent, errors
        conn = await Connection.open(port)
        for i in counter:
            t0 = time.perf_counter()
            ok, n_requests, n_decisions = await make_request(conn, i)
            latencies.append(time.perf_counter() - t0)
            decisions += n_decisions
            sent += n_requests
            errors += not ok
        conn.writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1e3
    return {"requests/s": sent / elapsed, "decisions/s": decisions / elapsed,
            "p50 ms": float(np.percentile(lat, 50)), "p99 ms": float(np.percentile(lat, 99)),
            "errors": errors}


async def decide_only(conn, i):
    body = json.dumps({"visitor_id": f"v{i}", "context": CTX}).encode()
    status, _ = await conn.post("/v1/decide", body)
    return status == 200, 1, 1


ORDER_IDS = itertools.count()


async def mixed(conn, i):
    """One decision and then its outcome (the latency is of the pair)."""
    status, resp = await conn.post("/v1/decide", json.dumps(
        {"visitor_id": f"m{i}", "context": CTX}).encode())
    event_id = json.loads(resp)["event_id"]
    # an order id is used once (another event with the same id is a 409 conflict)
    status2, _ = await conn.post("/v1/outcome", json.dumps(
        {"event_id": event_id, "converted": i % 25 == 0, "order_value": 50.0,
         "outcome_id": f"o{next(ORDER_IDS)}"}).encode())
    return status == 200 and status2 == 200, 2, 1


async def echo(conn, i):
    body = json.dumps({"visitor_id": f"v{i}", "context": CTX}).encode()
    status, _ = await conn.post("/echo", body)
    return status == 200, 1, 0


async def group_totals(port: int) -> tuple[float, float, dict[float, float]]:
    """(requests, groups, event-loop lag histogram {upper bound: count}) so far, from the
    server's /metrics."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                 b"Connection: close\r\n\r\n" % TOKEN.encode())
    text = (await reader.read()).decode()
    writer.close()
    found = dict(re.findall(r"^cartwheel_group_size_(sum|count) ([0-9.e+]+)$", text, re.M))
    lag = {float(le.replace("+Inf", "inf")): float(n) for le, n in re.findall(
        r'^cartwheel_event_loop_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', text, re.M)}
    return float(found.get("sum", 0)), float(found.get("count", 0)), lag


def lag_p99(before: dict, after: dict) -> float:
    """p99 of the event-loop lag samples taken between two readings, in ms (the upper bound
    of the histogram bucket it falls in: a conservative figure)."""
    counts = {le: after[le] - before.get(le, 0.0) for le in after}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return 0.0
    for le in sorted(counts):
        if counts[le] >= 0.99 * total:
            return le * 1e3
    return float("inf")


TOKEN = "benchmark-token"


def start(args: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1",
                                 "CARTWHEEL_TOKEN": TOKEN})
    port = int(re.search(r"127\.0\.0\.1:(\d+)", proc.stdout.readline()).group(1))
    return proc, port


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5,
                        help="the scenarios take turns in this many rounds, so that the machine's "
                             "noise hits them alike")
    parser.add_argument("--config", metavar="FILE", help="shop config for cartwheel serve")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        return echo_server("")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; {args.requests:,} requests per scenario at concurrency "
          f"{args.concurrency}, interleaved in {args.rounds} rounds; client and each server in "
          "separate processes")
    per_round = args.requests // args.rounds
    with tempfile.TemporaryDirectory() as data:
        config = ["--config", args.config] if args.config else []
        servers = [start([sys.executable, "-m", "bandit.cli", "serve", "--port", "0",
                          "--data-dir", data, *config]),
                   start([sys.executable, __file__, "--echo-server"])]
        try:
            (_, port), (_, echo_port) = servers
            scenarios = [("cartwheel decide", port, decide_only, per_round),
                         ("cartwheel decide+outcome", port, mixed, per_round // 2),
                         ("bare aiohttp JSON echo", echo_port, echo, per_round)]
            for _, p, fn, _ in scenarios:  # warm-up
                asyncio.run(load(p, 500, args.concurrency, fn))
            results = {name: [] for name, *_ in scenarios}
            for _ in range(args.rounds):
                for name, p, fn, n in scenarios:
                    before = asyncio.run(group_totals(p)) if p == port else (0, 0, {})
                    result = asyncio.run(load(p, n, args.concurrency, fn))
                    after = asyncio.run(group_totals(p)) if p == port else (0, 0, {})
                    # mean requests per group (decided and committed together) in this round
                    groups = after[1] - before[1]
                    result["mean group"] = (after[0] - before[0]) / groups if groups else 0.0
                    result["loop lag p99 ms"] = lag_p99(before[2], after[2])
                    results[name].append(result)
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(timeout=30)
    rows = []
    for name, rounds in results.items():
        # throughput: median over rounds; latency percentiles: median of the rounds' values
        rows.append((name, {key: float(np.median([r[key] for r in rounds]))
                            for key in ("requests/s", "decisions/s", "p50 ms", "p99 ms",
                                        "mean group", "loop lag p99 ms")}
                     | {"errors": sum(r["errors"] for r in rounds)}))
    ceiling = rows[-1][1]["requests/s"]
    print(f"{'scenario':26s} {'requests/s':>11s} {'decisions/s':>12s} {'p50 ms':>8s} "
          f"{'p99 ms':>8s} {'errors':>7s} {'mean group':>11s} {'of ceiling':>11s} "
          f"{'loop lag p99 ms':>16s}")
    for name, r in rows:
        group = f"{r['mean group']:11.1f}" if r["mean group"] else f"{'-':>11s}"
        lag = f"{r['loop lag p99 ms']:16.1f}" if r["mean group"] else f"{'-':>16s}"
        print(f"{name:26s} {r['requests/s']:11,.0f} {r['decisions/s']:12,.0f} {r['p50 ms']:8.2f} "
              f"{r['p99 ms']:8.2f} {r['errors']:7d} {group} {r['requests/s'] / ceiling:11.0%} "
              f"{lag}")


if __name__ == "__main__":
    main()
