"""Storage and snapshot faults: a full store mid-traffic, damaged snapshots, a read-only data
dir. The invariant: every 200 is stored, every 5xx is not, and the server recovers by itself."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from engine_helpers import Clock, shop
from relearn import assert_same_model, relearned

from bandit import Engine
from bandit.domain.errors import StorageError
from bandit.http.app import make_app

# the traffic here comes from one address, as a page's would: not held to the per-address limit
PAGES_UNLIMITED = {"address_rate": 0.0}
CTX = {"device": "mobile", "cart_value": 40.0, "page_type": "cart", "hour": 13}


class InProcessServer:
    """The real app on a real socket, on a loop in a thread of this process, so the test can
    reach the engine's SQLite connection (``PRAGMA max_page_count`` fills the store)."""

    def __init__(self, engine):
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(self._start())

    async def _start(self) -> int:
        self.runner = web.AppRunner(make_app(self.engine, token="tok"), auto_decompress=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def on_loop(self, fn):
        async def run():
            return fn()
        return self.call(run())

    def stop(self) -> None:
        self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


async def traffic(port: int, n: int, tag: str) -> list[tuple[str, int, dict]]:
    """n decides and, for every second one answered, a converted outcome: all at once."""
    out = []
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        async def decide(i):
            async with session.post("/v1/decide", json={"visitor_id": f"{tag}-{i}",
                                                        "context": CTX}) as r:
                out.append(("decide", r.status, await r.json()))
                body = out[-1][2]
                if r.status == 200 and i % 2:
                    async with session.post("/v1/outcome", headers={"Authorization": "Bearer tok"},
                                            json={"event_id": body["event_id"], "converted": True,
                                                  "order_value": 30.0,
                                                  "outcome_id": f"{tag}-o{i}"}) as o:
                        out.append(("outcome", o.status, {**await o.json(),
                                                          "event_id": body["event_id"]}))

        await asyncio.gather(*(decide(i) for i in range(n)))
    return out


def test_store_full_mid_traffic_503s_recovers_and_stores_exactly_the_200s(tmp_path):
    engine = Engine.open(shop(server=PAGES_UNLIMITED, holdout={"fraction": 0.1}), tmp_path / "data", seed=0)
    server = InProcessServer(engine)
    answers = asyncio.run(traffic(server.port, 60, "before"))
    db = engine.store.db
    pages = server.on_loop(lambda: db.execute("PRAGMA page_count").fetchone()[0])
    server.on_loop(lambda: db.execute(f"PRAGMA max_page_count = {pages}").fetchone())  # full
    full = asyncio.run(traffic(server.port, 200, "full"))
    # the last concurrent group may have fitted in a freed page; one at a time until a
    # decision is refused, then the health check right after it (nothing in between)
    for i in range(100):
        full += asyncio.run(traffic(server.port, 1, f"alone-{i}"))
        if full[-1][1] == 503:
            break
    health = asyncio.run(_get(server.port, "/healthz"))
    server.on_loop(lambda: db.execute("PRAGMA max_page_count = 1073741823").fetchone())
    recovered = asyncio.run(_get(server.port, "/healthz"))  # the probe sees the space
    # then the WAL cannot grow (a file-size limit): commits themselves fail
    wal = tmp_path / "data" / "events.sqlite3-wal"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
    try:
        full += asyncio.run(traffic(server.port, 200, "wal-full"))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    asyncio.run(_get(server.port, "/healthz"))
    after = asyncio.run(traffic(server.port, 60, "after"))
    server.stop()

    statuses = [s for _, s, _ in full]
    assert 503 in statuses, "the full store never refused anything: the test did not bite"
    assert all(s in (200, 503) for s in statuses)
    assert all(b["error"]["code"] == "storage_unavailable" for _, s, b in full if s == 503)
    assert health[0] == 503 and health[1]["status"] == "degraded"
    assert recovered[0] == 200 and recovered[1]["status"] == "ok"
    assert all(s == 200 for _, s, _ in after)
    everything = answers + full + after
    acked_events = {b["event_id"] for kind, s, b in everything if kind == "decide" and s == 200}
    acked_orders = {b["event_id"] for kind, s, b in everything if kind == "outcome" and s == 200}
    refused_events = {b.get("event_id") for kind, s, b in everything
                      if kind == "decide" and s == 503}
    engine.close()
    store = sqlite3.connect(tmp_path / "data" / "events.sqlite3")
    events = {r[0] for r in store.execute("SELECT event_id FROM decisions")}
    orders = {r[0] for r in store.execute("SELECT event_id FROM outcomes")}
    assert events == acked_events  # 0 acknowledged-but-missing, 0 refused-but-stored
    assert orders == acked_orders
    assert not refused_events & events
    # the model equals a re-learn of the log: nothing rolled back was learned
    config = shop(server=PAGES_UNLIMITED, holdout={"fraction": 0.1})
    reopened = Engine.open(config, tmp_path / "data", seed=0)
    assert_same_model(reopened, relearned(tmp_path / "data", config))
    reopened.close()


async def _get(port: int, path: str):
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        async with session.get(path) as r:
            return r.status, await r.json()


def test_a_failed_commit_leaves_engine_memory_as_before(tmp_path):
    """The commit itself fails (the WAL cannot grow: a file-size limit, as a full disk does),
    after the group's rows, outcomes and learning were all staged."""
    clock = Clock()
    config = shop(server=PAGES_UNLIMITED, holdout={"fraction": 0.0}, attribution={"window_s": 100})
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    for i in range(100):
        engine.decide(f"v{i}", CTX)
    d = engine.decide("w", CTX)
    engine.flush()
    before = (engine.policy.get_state(), engine.decided_total, engine.joiner.closed_total,
              engine.update_count, engine.open_events, engine.learner.last_learned_seq)
    wal = tmp_path / "data" / "events.sqlite3-wal"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
    try:
        for i in range(300):
            engine.decide(f"x{i}", {**CTX, "hour": i % 24}, commit=False)
        assert engine.record_outcome(d.event_id, True, 80.0, commit=False) == "recorded"
        with pytest.raises(StorageError):
            engine.commit()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    after = (engine.policy.get_state(), engine.decided_total, engine.joiner.closed_total,
             engine.update_count, engine.open_events, engine.learner.last_learned_seq)
    assert before[1:] == after[1:]
    for key in before[0]:
        np.testing.assert_array_equal(before[0][key], after[0][key], err_msg=key)
    assert engine.degraded is not None
    # a write waiting for its group's commit is not committed by the health probe
    pending = engine.decide("waiting", CTX, commit=False)
    assert not engine.probe() and engine.store.pending
    engine.rollback()
    assert engine.store.decision(pending.event_id) is None
    assert engine.probe() and engine.degraded is None  # writes again by itself
    for i in range(50):
        engine.decide(f"y{i}", CTX)
    engine.close()
    reopened = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    assert reopened.store.count("decisions") == 101 + 50
    assert_same_model(reopened, relearned(tmp_path / "data", config))
    reopened.close()


def _damage(kind: str, newest: Path) -> None:
    npz = newest.with_suffix(".npz")
    if kind == "truncated":
        npz.write_bytes(npz.read_bytes()[: len(npz.read_bytes()) // 2])
    elif kind == "empty":
        npz.write_bytes(b"")
        newest.write_text("")
    elif kind == "nan":
        with np.load(npz) as f:
            state = {k: f[k] for k in f.files}
        key = next(k for k, v in state.items() if v.dtype.kind == "f" and v.size)
        state[key] = state[key].copy()
        state[key].flat[0] = np.nan
        np.savez(npz, **state)


@pytest.mark.parametrize("kind", ["truncated", "empty", "nan"])
def test_a_damaged_newest_snapshot_is_skipped_with_a_warning(tmp_path, kind, caplog):
    clock = Clock()
    config = shop(server=PAGES_UNLIMITED, holdout={"fraction": 0.1}, attribution={"window_s": 50},
                  storage={"snapshot_every_updates": 30})
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    rng = np.random.default_rng(1)
    for i in range(300):
        d = engine.decide(f"v{rng.integers(50)}", {**CTX, "cart_value": float(rng.uniform(0, 300)),
                                                   "hour": int(rng.integers(24))})
        if rng.random() < 0.2:
            engine.record_outcome(d.event_id, True, float(rng.uniform(5, 200)))
        clock.t += 1
        if i % 50 == 0:
            engine.expire()
    engine.close()
    newest = sorted((tmp_path / "data" / "snapshots").glob("snapshot-*.json"))[-1]
    _damage(kind, newest)
    with caplog.at_level("WARNING"):
        reopened = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    assert any(newest.name in r.getMessage() and "skipping" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert_same_model(reopened, relearned(tmp_path / "data", config))
    reopened.decide("after", CTX)
    reopened.close()


@contextmanager
def unwritable(paths):
    """Files and directories nothing may change while inside: read-only modes, or immutable
    (chattr +i) for root, whom permissions do not stop."""
    root = os.geteuid() == 0
    if root:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    else:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        if root:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
        else:
            for p in paths:
                p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_read_only_data_dir_gives_a_clear_error(tmp_path):
    data = tmp_path / "data"
    engine = Engine.open(shop(server=PAGES_UNLIMITED), data, seed=0)
    engine.decide("v", CTX)
    engine.close()
    with unwritable([data, *data.rglob("*")]):
        proc = subprocess.run([sys.executable, "-m", "bandit.cli", "serve", "--port", "0",
                               "--data-dir", str(data)], capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(data) in proc.stderr and "cartwheel serve: error:" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_close_says_when_it_could_not_write_the_final_snapshot(tmp_path, caplog):
    engine = Engine.open(shop(server=PAGES_UNLIMITED, holdout={"fraction": 0.0}), tmp_path / "data", seed=0)
    engine.decide("v", CTX)
    engine.snapshot()
    engine.decide("w", CTX)
    engine.flush()
    snapshots = engine.snapshot_dir
    before = sorted(snapshots.iterdir())
    with unwritable([snapshots]), caplog.at_level("ERROR"):
        final = engine.close()
    # None (what `serve` reports as "no final snapshot"), an error logged, nothing half-written
    assert final is None
    assert any("closing without a final snapshot" in r.getMessage() for r in caplog.records)
    assert sorted(snapshots.iterdir()) == before
    reopened = Engine.open(shop(server=PAGES_UNLIMITED, holdout={"fraction": 0.0}), tmp_path / "data", seed=0)
    assert reopened.model_version == 2  # the snapshot's 1, and the rest re-learned from the log
    assert reopened.close().parent == snapshots


def test_a_model_that_turns_non_finite_is_rebuilt_from_snapshot_and_log(tmp_path, caplog):
    clock = Clock()
    config = shop(server=PAGES_UNLIMITED, holdout={"fraction": 0.0}, attribution={"window_s": 50},
                  storage={"snapshot_every_updates": 50})
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    for i in range(200):
        d = engine.decide(f"v{i}", {**CTX, "hour": i % 24})
        if i % 5 == 0:
            engine.record_outcome(d.event_id, True, 40.0 + i)
        clock.t += 1
    engine.flush()
    engine.policy.ridge.theta[0, 0] = np.nan  # as an overflow would leave it
    with caplog.at_level("ERROR"), np.errstate(invalid="ignore"):  # NaN scores, on purpose
        d = engine.decide("after", CTX)
    assert np.isfinite(d.probability)
    assert any("not finite" in r.getMessage() for r in caplog.records)
    assert engine.learner.healthy()
    assert_same_model(engine, relearned(tmp_path / "data", config))
    engine.close()


def test_sigterm_exits_0_while_the_store_cannot_write(tmp_path):
    """A real `cartwheel serve` whose files may not grow (a file-size limit set on the running
    process from outside, as a full disk): 503s, degraded health, and still a clean exit."""
    from server_helpers import Server, config_file, farewell_snapshot

    srv = Server(tmp_path / "data", config_file(tmp_path))
    for i in range(20):
        assert srv.post("/v1/decide", {"visitor_id": f"v{i}", "context": CTX})[0] == 200
    wal = tmp_path / "data" / "events.sqlite3-wal"
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
    statuses = [srv.post("/v1/decide", {"visitor_id": f"w{i}", "context": CTX})[0]
                for i in range(300)]
    assert 503 in statuses and set(statuses) <= {200, 503}
    assert srv.request("GET", "/healthz")[0] == 503
    assert srv.stop() == 0, srv.log_text()
    assert "Traceback" not in srv.log_text()  # storage faults are answered, not crashed on
    # the goodbye is honest: the snapshot it names exists and holds the version it states
    said = farewell_snapshot(srv.farewell)
    assert said and json.loads(said[1].read_text())["model_version"] == said[0], srv.farewell
