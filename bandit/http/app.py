"""The endpoint's one application factory: the same app for every role, filled by the role
(docs/architecture.md, "The endpoint").

=========  ===================================  ==========================================
role       what it is                           filled by
=========  ===================================  ==========================================
one        ``cartwheel serve``: decides, learns  :func:`bandit.http.engine_role.one_process`
process    and reports in one process
trainer    ``cartwheel train``: report, health  :func:`bandit.http.engine_role.one_process`
           and metrics of the trainer's engine  with the trainer
replica    ``cartwheel serve --role decide``:   :func:`bandit.http.replica_role.decide_replica`
           decides, logs to the bus
=========  ===================================  ==========================================

Every role shares the error shape, body checks, decide and outcome over its request group,
metrics, OpenAPI, auth, CORS and the per-visitor limit (:mod:`bandit.http.routes`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bandit.http import api, preview, trust
from bandit.http.auth import READ_TOKEN, TOKEN
from bandit.http.engine_role import one_process
from bandit.http.replica_role import decide_replica
from bandit.http.routes import (
    ADDRESS_LIMIT,
    BODY_TIMEOUT,
    ENGINE,
    GLOBAL_LIMIT,
    GROUP,
    LIMIT,
    MAX_BODY,
    METRICS,
    OPENAPI,
    PROXIES,
    add_routes,
)
from bandit.http.serving import VisitorLimit, run_site
from bandit.http.sessions import SESSIONS, Sessions


def make_app(node, *, token: str | None = None, max_body: int | None = None, trainer=None,
             bus=None, poll_s: float = 1.0, read_token: str | None = None,
             sessions: Sessions | None = None) -> web.Application:
    """The aiohttp application around ``node``: an open :class:`~bandit.core.engine.Engine`
    (one process; with a :class:`~bandit.scaleout.trainer.Trainer`, the trainer's role), or a
    :class:`~bandit.scaleout.replica.Replica` with the ``bus`` it logs to (a decide replica,
    following published models every ``poll_s``). ``read_token``: the secret that reads the
    figures (None: the write token alone); ``sessions``: the dashboard's (its one-time sign-in
    codes are issued before the app is built)."""
    config = node.config
    max_body = max_body or config.server.max_body_bytes
    # aiohttp's own limit sits above ours so that our check answers with the error shape
    app = web.Application(client_max_size=max_body + 1)
    app[ENGINE], app[TOKEN], app[MAX_BODY] = node, token, max_body
    app[READ_TOKEN], app[SESSIONS] = read_token, sessions or Sessions()
    app[BODY_TIMEOUT] = config.server.body_timeout_s
    app[preview.KEY] = preview.key_of(token)
    server = config.server
    app[LIMIT] = VisitorLimit(server.visitor_rate, server.visitor_burst)
    app[GLOBAL_LIMIT] = VisitorLimit(server.global_rate, server.global_burst, field=None,
                                     what="requests from pages overall")
    app[ADDRESS_LIMIT] = VisitorLimit(server.address_rate, server.address_burst, field="address",
                                      what="requests from this address")
    app[PROXIES] = frozenset(server.trusted_proxies)
    app[trust.SIGNING_KEY] = trust.signing_key(token)
    if bus is None:
        group, routes, background = one_process(app, node, trainer)
        title = f"cartwheel: {config.name}"
    else:
        group, routes, background = decide_replica(app, node, bus, poll_s)
        title = f"cartwheel: {config.name} (replica)"
    app[GROUP] = group
    app[OPENAPI] = api.encode(api.openapi(title=title, features=config.features))
    add_routes(app, routes)
    app.cleanup_ctx.append(background)
    return app


async def _serve(engine, host: str, port: int, token: str | None, announce,
                 read_token: str | None, sessions: Sessions | None) -> None:
    # on SIGTERM: stop accepting, let in-flight requests finish, then (serve) flush and snapshot
    app = make_app(engine, token=token, read_token=read_token, sessions=sessions)
    await run_site(app, host, port, announce, engine.config.server,
                   on_malformed=app[METRICS].malformed_http.inc,
                   on_refused=app[METRICS].refused_connection)


def serve(engine, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          announce=print, read_token: str | None = None, sessions: Sessions | None = None):
    """Serve until SIGTERM/SIGINT, then close the engine (flush + snapshot); return the final
    snapshot's path (None if the store could not write it)."""
    try:
        asyncio.run(_serve(engine, host, port, token, announce, read_token, sessions))
    finally:
        final = engine.close()
    return final
