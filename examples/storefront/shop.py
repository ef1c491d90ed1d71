"""The demo storefront's own backend: it serves the shop's pages and, at checkout, sends the
order to cartwheel by the visitor's id (the ``cw_vid`` cookie the page script set), server-side,
with the shop's token (docs/integration.md).

    cartwheel serve --config examples/storefront/shop.toml
    python examples/storefront/shop.py            # http://localhost:8000

Options: ``--cartwheel URL`` (default http://127.0.0.1:8080), ``--token`` (default: the
``CARTWHEEL_TOKEN`` environment variable, else the token file ``cartwheel serve`` wrote in its
data dir), ``--hosted`` (pages load the shop's own copy of the script, ``/js/cartwheel.js``, so
they work with cartwheel down), ``--consent-required`` (nothing is set or sent until the
visitor accepts), ``--port`` (0: any free port, printed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
PRICE = 89.00  # the one product of the demo shop
BUNDLE = 24.00  # what the upsell bundle adds to the cart


# --- the order hook (docs/integration.md shows exactly this function) ---------------------
def send_order(cartwheel: str, token: str, visitor_id: str, order_id: str, total: float,
               redeemed: list[str]) -> dict:
    """Tell cartwheel about an order, by the visitor id the page used (server-side: the
    token never reaches a browser). Returns cartwheel's answer, e.g. {"status": "recorded",
    "events": 3}."""
    body = json.dumps({"visitor_id": visitor_id, "converted": True, "order_value": total,
                       "outcome_id": order_id, "redeemed": redeemed}).encode()
    request = urllib.request.Request(
        f"{cartwheel}/v1/outcome", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())
# -------------------------------------------------------------------------------------------


# --- signed requests (a shop with [server] signed_requests = true) -------------------------
def sign_visitor(token: str, visitor_id: str, trusted: dict, ttl_s: float = 3600.0) -> str:
    """The token a page hands the script (data-token): the visitor id and the context the
    shop vouches for, signed with a key derived from the shop's token."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    key = hmac.new(token.encode(), b"cartwheel signed requests", hashlib.sha256).digest()
    payload = b64(json.dumps({"v": visitor_id, "c": trusted, "exp": time.time() + ttl_s},
                             sort_keys=True, separators=(",", ":")).encode())
    return payload + "." + b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
# -------------------------------------------------------------------------------------------


def page(request: web.Request, name: str, options) -> web.Response:
    """A page of the shop, with the script tag of the chosen mode. Signed mode: the backend
    sets the visitor's cookie itself and renders a token vouching for it (and for where the
    visitor came from, which a page could claim falsely)."""
    html = (HERE / "pages" / name).read_text()
    extra, visitor = options.extra, None
    if options.signed:
        visitor = request.cookies.get("cw_vid") or secrets.token_hex(16)
        source = "email" if request.query.get("utm_medium") == "email" else "direct"
        signed = sign_visitor(options.token, visitor, {"traffic_source": source})
        extra += f' data-signed="required" data-token="{signed}"'
    if options.hosted:
        tag = (f'<script src="/js/cartwheel.js" data-endpoint="{options.cartwheel}"'
               f'{extra}></script>')
    else:
        tag = f'<script src="{options.cartwheel}/v1/client.js"{extra}></script>'
    response = web.Response(text=html.replace("<!--CARTWHEEL-->", tag), content_type="text/html",
                            headers={"Cache-Control": "no-store"})
    if visitor is not None:
        response.set_cookie("cw_vid", visitor, max_age=30 * 86400, samesite="Lax", path="/")
    return response


def make_app(options) -> web.Application:
    app = web.Application()
    client = resources.files("bandit.http").joinpath("assets", "client.js").read_bytes()

    async def product(request):
        return page(request, "product.html", options)

    async def cart(request):
        return page(request, "cart.html", options)

    async def script(request):  # the shop's own copy of the client (--hosted)
        return web.Response(body=client, content_type="application/javascript")

    async def shop_js(request):
        return web.FileResponse(HERE / "pages" / "shop.js")

    async def shop_css(request):
        return web.FileResponse(HERE / "pages" / "shop.css")

    async def checkout(request):
        form = await request.post()
        visitor = request.cookies.get("cw_vid")
        total = PRICE + (BUNDLE if form.get("bundle") == "yes" else 0.0)
        redeemed = [a for a in form.getall("incentive", []) if a and a != "none"]
        order_id = f"order-{secrets.token_hex(6)}"
        answer = {"status": "not sent: the visitor gave no consent (no cw_vid cookie)"}
        if visitor:
            try:
                answer = send_order(options.cartwheel, options.token, visitor, order_id, total,
                                    redeemed)
            except (urllib.error.URLError, OSError) as exc:  # the order stands all the same
                answer = {"status": f"not sent: {exc}"}
        raise web.HTTPSeeOther(f"/thanks?order={order_id}&cartwheel="
                               f"{urllib.request.quote(json.dumps(answer))}")

    async def thanks(request):
        html = (HERE / "pages" / "thanks.html").read_text()
        return web.Response(text=html.replace("ORDER", _escape(request.query.get("order", "?")))
                            .replace("ANSWER", _escape(request.query.get("cartwheel", ""))),
                            content_type="text/html")

    app.router.add_get("/", product)
    app.router.add_get("/cart", cart)
    app.router.add_get("/js/cartwheel.js", script)
    app.router.add_get("/js/shop.js", shop_js)
    app.router.add_get("/css/shop.css", shop_css)
    app.router.add_post("/checkout", checkout)
    app.router.add_get("/thanks", thanks)
    return app


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _token(options) -> str:
    if options.token:
        return options.token
    if os.environ.get("CARTWHEEL_TOKEN"):
        return os.environ["CARTWHEEL_TOKEN"]
    kept = Path(options.token_file)
    if kept.exists():
        return kept.read_text().strip()
    raise SystemExit(f"no token: start `cartwheel serve --config {HERE / 'shop.toml'}` first "
                     f"(it writes {kept}), or pass --token / set CARTWHEEL_TOKEN")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--cartwheel", default="http://127.0.0.1:8080")
    parser.add_argument("--token")
    parser.add_argument("--token-file", default="cartwheel-storefront-data/token")
    parser.add_argument("--hosted", action="store_true")
    parser.add_argument("--consent-required", action="store_true")
    parser.add_argument("--signed", action="store_true",
                        help="sign each visitor's requests (cartwheel with [server] "
                             "signed_requests = true)")
    parser.add_argument("--timeout", type=int, default=300, help="decide's timeout, ms")
    options = parser.parse_args(argv)
    options.cartwheel = options.cartwheel.rstrip("/")
    options.token = _token(options)
    options.extra = f' data-timeout="{options.timeout}"' + (
        ' data-consent="required"' if options.consent_required else "")
    asyncio.run(serve(make_app(options), options.port))


async def serve(app: web.Application, port: int) -> None:
    """Serve on localhost until interrupted; says where (``--port 0``: a free port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))  # "localhost" in the browser: another origin than 127.0.0.1
    await web.SockSite(runner, sock).start()
    print(f"demo shop: http://localhost:{sock.getsockname()[1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
