"""Running the scale-out processes: ``cartwheel serve --role decide`` and ``cartwheel train``
(docs/architecture.md, "Scale-out"). Both hold the shop's secrets from the environment or a
``--secrets`` file (:mod:`bandit.scaleout.secrets`; never from Redis) and join the shop's bus
first: one config and one hash key for all of them (a process on another config or key is
refused).
"""

from __future__ import annotations

import asyncio

from bandit.config.shop import load_config
from bandit.domain.errors import CartwheelError
from bandit.http import dashboard, tokens
from bandit.http.serving import run_site
from bandit.http.sessions import Sessions
from bandit.scaleout import secrets as shop_secrets
from bandit.scaleout.bus import RedisBus, fingerprint


def _bus(config, bus_url: str | None, held, timeout: float) -> RedisBus:
    url = bus_url or held.bus_url
    if not url:
        raise CartwheelError("no bus: give --bus URL, or CARTWHEEL_BUS_URL (in the environment "
                             "or the --secrets file: keeps Redis's password off the command "
                             "line)", field="bus")
    return RedisBus(url, config.name, timeout=timeout, key=held.bus_key,
                    previous_key=held.bus_key_previous)


def _token(config, auth: bool, held) -> tuple[str | None, str]:
    """The write token: [server] token, CARTWHEEL_TOKEN, or the --secrets file's (all the
    shop's processes need the same one; never from Redis)."""
    def kept():
        if held.token:
            return held.token, "the --secrets file"
        raise CartwheelError("CARTWHEEL_TOKEN is not set: replicas and the trainer need the "
                             "shop's write token from the environment, the --secrets file or "
                             "[server] token", field="CARTWHEEL_TOKEN")

    return tokens.outcome_token(config, auth, kept)


async def serve_replica(config_path, bus_url: str | None, host: str, port: int, *,
                        auth: bool = True, timeout: float = 0.5, poll_s: float = 1.0,
                        announce=print, secrets_file=None) -> None:
    """Serve decisions as one replica of the shop on its bus until SIGTERM/SIGINT."""
    from bandit.http.app import make_app
    from bandit.http.routes import METRICS
    from bandit.scaleout.replica import Replica, refresh

    config = load_config(config_path)
    held = shop_secrets.load(secrets_file)
    token, source = _token(config, auth, held)
    bus = _bus(config, bus_url, held, timeout)
    try:
        await bus.join(config.config_hash(), config.source,
                       fingerprint=fingerprint(held.hash_key), hash_key=held.hash_key)
        replica = Replica(config, held.hash_key.encode())
        await refresh(replica, bus)
    except BaseException:
        await bus.close()
        raise
    app = make_app(replica, bus=bus, token=token, poll_s=poll_s)

    def ready(url: str) -> None:
        auth_line = (f"outcomes: -H \"Authorization: Bearer {tokens.token_hint(source)}\"   "
                     f"(the write token, {source})"
                     if token else f"outcome token: {source}")
        announce(f"cartwheel replica of shop {config.name!r} deciding at {url} with model "
                 f"{replica.model_version} (bus {bus.url})\n  {auth_line}\n  API: "
                 f"{url}/openapi.json   metrics: {url}/metrics", flush=True)

    await run_site(app, host, port, ready, config.server,
                   on_malformed=app[METRICS].malformed_http.inc,
                   on_refused=app[METRICS].refused_connection)


async def train(config_path, bus_url: str | None, data_dir, host: str, port: int, *,
                replace_config: bool = False, fresh: bool = False,
                publish_every_s: float = 1.0, timeout: float = 0.5, announce=print,
                secrets_file=None) -> None:
    """Run the shop's trainer on ``bus_url`` until SIGTERM/SIGINT; its store, report and
    metrics are served on ``host:port`` (no decide or outcome route)."""
    from bandit.core.engine import Engine
    from bandit.http.app import make_app
    from bandit.http.routes import METRICS
    from bandit.scaleout.trainer import Trainer, TrainerMetrics

    config = load_config(config_path)
    data_dir = data_dir or config.storage.path
    held = shop_secrets.load(secrets_file)
    token, source = _token(config, True, held)
    bus = _bus(config, bus_url, held, timeout)
    try:
        await bus.join(config.config_hash(), config.source,
                       fingerprint=fingerprint(held.hash_key), replace=replace_config,
                       hash_key=held.hash_key)
    except BaseException:
        await bus.close()
        raise
    try:  # the log's own key (an older store, or a single process before) must be this one
        engine = Engine.open(config, data_dir, fresh=fresh, salt=held.hash_key)
    except BaseException:
        await bus.close()
        raise
    try:
        trainer = Trainer(engine, bus, publish_every_s=publish_every_s)
        read, read_source = tokens.read_secret(config, True, engine.data_dir)
        sessions = Sessions()
        app = make_app(engine, token=token, trainer=trainer, read_token=read,
                       sessions=sessions)
        TrainerMetrics(trainer, app[METRICS].registry)

        def ready(url: str) -> None:
            announce(f"cartwheel trainer of shop {config.name!r} at {url} (bus {bus.url}): "
                     f"model version {engine.model_version}, reading after entry "
                     f"{trainer.offset}\n  data: {engine.data_dir.resolve()}\n"
                     f"  reads: -H \"Authorization: Bearer {tokens.token_hint(read_source)}\""
                     f"   (the read secret, {read_source})\n"
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
