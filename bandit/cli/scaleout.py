"""Running the scale-out processes: ``cartwheel serve --role decide`` and ``cartwheel train``
(docs/architecture.md, "Scale-out"). Both join the shop's bus first: one config (a process
on another config hash is refused), one salt and one outcome token for all of them.
"""

from __future__ import annotations

import asyncio
import os

from bandit.config.shop import load_config
from bandit.domain.errors import CartwheelError
from bandit.http import dashboard, serving
from bandit.http.serving import run_site
from bandit.http.sessions import Sessions
from bandit.scaleout.bus import RedisBus
from bandit.store.events import EventStore
from bandit.store.keyfiles import HASH_KEY_FILE, read_kept


async def serve_replica(config_path, bus_url: str, host: str, port: int, *, auth: bool = True,
                        timeout: float = 0.5, poll_s: float = 1.0, announce=print) -> None:
    """Serve decisions as one replica of the shop on ``bus_url`` until SIGTERM/SIGINT."""
    from bandit.http.app import make_app
    from bandit.http.routes import METRICS
    from bandit.scaleout.replica import Replica, refresh

    config = load_config(config_path)
    bus = RedisBus(bus_url, config.name, timeout=timeout)
    try:
        salt, shared_token = await bus.join(config.config_hash(), config.source,
                                            salt=config.salt)
        replica = Replica(config, salt.encode())
        await refresh(replica, bus)
    except BaseException:
        await bus.close()
        raise
    token, source = serving.outcome_token(
        config, auth, lambda: (shared_token, "shared by the shop's processes on the bus"))
    app = make_app(replica, bus=bus, token=token, poll_s=poll_s)

    def ready(url: str) -> None:
        auth_line = (f"outcomes: -H 'Authorization: Bearer {token}'   (token {source})"
                     if token else f"outcome token: {source}")
        announce(f"cartwheel replica of shop {config.name!r} deciding at {url} with model "
                 f"{replica.model_version} (bus {bus_url})\n  {auth_line}\n  API: "
                 f"{url}/openapi.json   metrics: {url}/metrics", flush=True)

    await run_site(app, host, port, ready, config.server,
                   on_malformed=app[METRICS].malformed_http.inc,
                   on_refused=app[METRICS].refused_connection)


async def train(config_path, bus_url: str, data_dir, host: str, port: int, *,
                replace_config: bool = False, fresh: bool = False, publish_every_s: float = 1.0, timeout: float = 0.5, announce=print) -> None:
    """Run the shop's trainer on ``bus_url`` until SIGTERM/SIGINT; its store, report and
    metrics are served on ``host:port`` (no decide or outcome route)."""
    from bandit.core.engine import Engine
    from bandit.http.app import make_app
    from bandit.http.routes import METRICS
    from bandit.scaleout.trainer import Trainer, TrainerMetrics

    config = load_config(config_path)
    data_dir = data_dir or config.storage.path
    path = os.path.join(data_dir, "events.sqlite3")
    # an existing log keeps its hash key: the bus takes it (visitor hashes stay comparable)
    kept_salt = None
    if os.path.exists(path):
        store = EventStore.read_only(path)
        kept_salt = store.get_meta("salt") or read_kept(data_dir, HASH_KEY_FILE)
        store.close()
    bus = RedisBus(bus_url, config.name, timeout=timeout)
    try:
        salt, shared_token = await bus.join(config.config_hash(), config.source,
                                            salt=config.salt or kept_salt,
                                            replace=replace_config)
    except BaseException:
        await bus.close()
        raise
    engine = Engine.open(config, data_dir, fresh=fresh, salt=salt)
    try:
        trainer = Trainer(engine, bus, publish_every_s=publish_every_s)
        # the report, the segments and the dashboard are the shop's figures: the shop's token
        token, source = serving.outcome_token(
            config, True, lambda: (shared_token, "shared by the shop's processes on the bus"))
        read, read_source = serving.read_secret(config, True, engine.data_dir)
        sessions = Sessions()
        app = make_app(engine, token=token, trainer=trainer, read_token=read,
                       sessions=sessions)
        TrainerMetrics(trainer, app[METRICS].registry)

        def ready(url: str) -> None:
            announce(f"cartwheel trainer of shop {config.name!r} at {url} (bus {bus_url}): "
                     f"model version {engine.model_version}, reading after entry "
                     f"{trainer.offset}\n  data: {engine.data_dir.resolve()}\n"
                     f"  reads: -H 'Authorization: Bearer {token}'   (token {source})\n"
                     f"  dashboard: {dashboard.link(url, sessions.issue_code())} (one-time; "
                     f"then the read secret, {read_source})\n  report: "
                     f"{url}/v1/report   metrics: {url}/metrics", flush=True)

        await run_site(app, host, port, ready, config.server,
                   on_malformed=app[METRICS].malformed_http.inc,
                   on_refused=app[METRICS].refused_connection)
    finally:
        engine.close()
        await bus.close()


def run(coro) -> int:
    try:
        asyncio.run(coro)
    except OSError as exc:
        raise CartwheelError(f"cannot serve: {exc.strerror or exc}") from None
    return 0
