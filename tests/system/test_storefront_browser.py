"""The storefront client in a real browser (Debian's chromium driven by Playwright): the demo
shop (examples/storefront) on one origin, `cartwheel serve` on another. Visitors browse, see
interventions, trigger the exit pop-up and check out; the shop's backend sends the order by the
``cw_vid`` cookie and exactly that visitor's open, shown decisions close. With cartwheel down
or slow, pages keep their defaults within the timeout; without consent nothing is sent."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from server_helpers import STARTED, Server

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "storefront"
TOKEN = secrets.token_hex(16)
# where the screenshots go: a temporary folder, unless CARTWHEEL_SCREENSHOTS names one (the
# guide's images: CARTWHEEL_SCREENSHOTS=docs/images pytest tests/system/test_storefront_browser.py)
SCREENSHOTS = os.environ.get("CARTWHEEL_SCREENSHOTS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Shop:
    """``python examples/storefront/shop.py`` on a free port (stopped by its pid)."""

    def __init__(self, cartwheel: str, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, str(DEMO / "shop.py"), "--port", "0", "--cartwheel", cartwheel,
             "--token", TOKEN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        STARTED.append(self.proc)
        line = self.proc.stdout.readline()
        match = re.search(r"http://localhost:(\d+)", line)
        assert match, line + self.proc.stdout.read()
        self.url = match.group(0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def start_cartwheel(tmp_path: Path, shop_url: str, port: int, signed: bool = False) -> Server:
    """cartwheel serve with the demo's shop.toml, the shop's origin allowed."""
    text = (DEMO / "shop.toml").read_text().replace('"http://localhost:8000"', f'"{shop_url}"')
    if signed:
        text = text.replace("signed_requests = false", "signed_requests = true")
    config = tmp_path / "shop.toml"
    config.write_text(text)
    return Server(tmp_path / "data", config, env={"CARTWHEEL_TOKEN": TOKEN},
                  args=("--port", str(port)))


def open_page(browser):
    context = browser.new_context()
    page = context.new_page()
    seen = {"requests": [], "problems": [], "decided": [], "activated": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("pageerror", lambda e: seen["problems"].append(str(e)))
    # the browser itself logs a refused connection ("Failed to load resource"); anything else
    # on the console came from a script
    page.on("console", lambda m: seen["problems"].append(m.text)
            if m.type in ("error", "warning") and "Failed to load resource" not in m.text
            else None)

    def answered(response):
        if response.url.endswith("/v1/decide") and response.status == 200:
            seen["decided"].append(response.json())
        if response.url.endswith("/v1/activate") and response.status == 200 and \
                response.json()["status"] == "activated":
            seen["activated"].append(json.loads(response.request.post_data)["event_id"])

    page.on("response", answered)
    return context, page, seen


def ready(page, timeout_ms: int = 10_000) -> None:
    page.wait_for_selector("body[data-cartwheel=ready]", timeout=timeout_ms)


def closed(data_dir: Path) -> dict[str, str]:
    """event id -> why it closed, read from the live store (read-only)."""
    db = sqlite3.connect(f"{(data_dir / 'events.sqlite3').resolve().as_uri()}?mode=ro",
                         uri=True)
    try:
        return dict(db.execute("SELECT event_id, reason FROM closed"))
    finally:
        db.close()


def pair(tmp: Path, *shop_args: str) -> tuple[Shop, Server]:
    """The demo shop and a cartwheel that allows its origin (signed requests when the shop
    signs)."""
    port = free_port()
    shop = Shop(f"http://127.0.0.1:{port}", *shop_args)
    return shop, start_cartwheel(tmp, shop.url, port, signed="--signed" in shop_args)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("storefront")
    shop, srv = pair(tmp)
    yield shop, srv, tmp
    shop.stop()
    srv.stop()


def test_a_visitor_browses_sees_the_pop_up_and_the_order_closes_exactly_their_decisions(
        live, browser, tmp_path):
    shop, srv, tmp = live
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    cartwheel_host = urlparse(srv.url).netloc
    for _ in range(12):  # until a visitor's exit pop-up has something to show (2 in 3 do)
        context, page, seen = open_page(browser)
        page.goto(shop.url + "/")
        ready(page)
        assert page.get_attribute("#slot-product", "data-state") == "decided"
        page.screenshot(path=str(shots / "storefront-product.png"))
        vid = {c["name"]: c["value"] for c in context.cookies()}["cw_vid"]
        assert re.fullmatch(r"[0-9a-f]{32}", vid)
        page.reload()
        ready(page)
        assert {c["name"]: c["value"] for c in context.cookies()}["cw_vid"] == vid  # kept
        page.goto(shop.url + "/cart")
        ready(page)
        page.screenshot(path=str(shots / "storefront-cart.png"))
        exit_action = page.get_attribute("#exit-popup", "data-state")
        assert exit_action == "decided"
        page.evaluate("window.shopShowExit()")  # exit intent (awaits the activation)
        if page.get_attribute("#exit-popup", "data-shown") == "yes":
            page.screenshot(path=str(shots / "storefront-exit.png"))
            break
        context.close()
    else:
        pytest.fail("no visitor's exit pop-up had anything to show in 12 tries")
    assert len(seen["decided"]) == 6  # two placements per page load, three loads
    assert [d["placement"] for d in seen["decided"]].count("exit") == 3
    assert len(seen["activated"]) == 1
    page.click("#exit-close")
    page.click("#buy")
    page.wait_for_selector("body[data-page=thanks]")
    answer = json.loads(unquote(page.inner_text("#answer")))
    # the decisions shown: product twice, the cart, and the one exit pop-up activated
    shown = {d["event_id"] for d in seen["decided"] if d["placement"] != "exit"}
    shown |= set(seen["activated"])
    assert answer == {"status": "recorded", "events": len(shown)} and len(shown) == 4
    now = closed(tmp / "data")
    assert {e for e, why in now.items() if why == "converted"} == shown
    hidden = {d["event_id"] for d in seen["decided"]} - shown
    assert len(hidden) == 2 and not hidden & now.keys()  # never shown: still open
    # the page spoke only to the shop and to cartwheel, and threw nothing
    hosts = {urlparse(u).netloc for u in seen["requests"] if not u.startswith("data:")}
    assert hosts == {urlparse(shop.url).netloc, cartwheel_host}
    assert not seen["problems"], seen["problems"]
    context.close()
    # the report counts the order once
    status, report = srv.request("GET", "/v1/report", headers={
        "Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert sum(g["conversions"] for g in report["groups"].values()) == 1
    assert sorted(report["placements"]) == ["cart", "exit", "product"]


def test_client_js_is_small_cacheable_and_served_with_cors(live):
    shop, srv, _ = live
    status, headers, body = srv.exchange("GET", "/v1/client.js", headers={"Origin": shop.url})
    assert status == 200 and headers["Content-Type"].startswith("application/javascript")
    assert headers["Access-Control-Allow-Origin"] == shop.url
    assert len((ROOT / "bandit/http/assets/client.js").read_bytes()) <= 12_000
    status, again, _ = srv.exchange("GET", "/v1/client.js",
                                    headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and again["ETag"] == headers["ETag"]


@pytest.mark.parametrize("down", ["stopped", "silent"])
def test_with_cartwheel_down_a_hosted_copy_keeps_every_default_within_the_timeout(
        browser, down):
    """Stopped: nothing listens (connection refused). Silent: a socket that takes the
    connection and never answers (the timeout)."""
    listener = None
    port = free_port()
    if down == "silent":
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
    shop = Shop(f"http://127.0.0.1:{port}", "--hosted", "--timeout", "300")
    try:
        for path, slot in (("/", "#slot-product"), ("/cart", "#slot-cart")):
            context, page, seen = open_page(browser)
            started = time.monotonic()
            page.goto(shop.url + path)
            ready(page, timeout_ms=5_000)
            took = time.monotonic() - started
            reason = "timeout" if down == "silent" else "error"
            assert page.get_attribute(slot, "data-state") == f"default:{reason}"
            assert page.get_attribute("#exit-popup", "data-state") == f"default:{reason}"
            assert page.inner_text(slot) in ("Waterproof, 40 litres, 1.1 kg.",
                                             "Delivery in 2-3 days.")
            # resolved to the default: a few timeouts' worth at most, whatever the wait
            assert took < 3.0, took
            decision = page.evaluate("cartwheel.decide('cart', {})")
            assert decision == {"action": None, "eventId": None, "placement": "cart",
                                "fallback": True, "reason": reason}
            page.evaluate("window.shopShowExit()")  # nothing to show: nothing happens
            assert page.is_hidden("#exit-popup")
            assert not seen["problems"], seen["problems"]
            context.close()
    finally:
        shop.stop()
        if listener is not None:
            listener.close()


def test_without_consent_no_cookie_is_set_and_nothing_is_sent(browser, tmp_path):
    shop, srv = pair(tmp_path, "--hosted", "--consent-required")
    try:
        context, page, seen = open_page(browser)
        page.goto(shop.url + "/cart")
        ready(page)
        assert page.get_attribute("#slot-cart", "data-state") == "default:consent"
        assert "cw_vid" not in {c["name"] for c in context.cookies()}
        cartwheel_host = urlparse(srv.url).netloc
        assert not [u for u in seen["requests"] if urlparse(u).netloc == cartwheel_host]
        # the visitor accepts: from then on the page asks cartwheel
        page.evaluate("cartwheel.consent(true)")
        decision = page.evaluate("cartwheel.decide('cart', {})")
        assert decision["eventId"] and decision["placement"] == "cart"
        assert "cw_vid" in {c["name"] for c in context.cookies()}
        page.evaluate("cartwheel.consent(false)")  # withdrawn: the cookie goes
        assert "cw_vid" not in {c["name"] for c in context.cookies()}
        assert page.evaluate("cartwheel.decide('cart', {})")["reason"] == "consent"
        assert not seen["problems"], seen["problems"]
        context.close()
    finally:
        shop.stop()
        srv.stop()


def test_the_guides_order_hooks_are_the_ones_that_run(live):
    """docs/integration.md's order hooks each close a visitor's decision (PHP where the
    machine has it: not on the CI machine)."""
    _, srv, _ = live
    guide = (ROOT / "docs" / "integration.md").read_text()
    hooks = dict(re.findall(r"<!-- hook: (\w+) -->\n```\w+\n(.*?)```", guide, re.S))
    assert set(hooks) == {"python", "node", "php", "curl"}
    env = {**os.environ, "CARTWHEEL_URL": srv.url, "CARTWHEEL_TOKEN": TOKEN}
    runs = {"python": [sys.executable, "-c"], "node": ["node", "-e"], "curl": ["sh", "-c"],
            "php": ["php", "-r"]}
    ran = set()
    for lang, code in hooks.items():
        if shutil.which(runs[lang][0]) is None:
            continue  # not on this machine (the CI machine has all three)
        visitor = f"guide-{lang}"
        status, d = srv.post("/v1/decide", {"visitor_id": visitor, "placement": "cart",
                                            "context": {}})
        assert status == 200
        if lang == "php":
            code = code.removeprefix("<?php\n")  # php -r takes the code without its tag
        done = subprocess.run([*runs[lang], code], env={**env, "VISITOR_ID": visitor,
                                                        "ORDER_ID": f"order-{lang}"},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (lang, done.stderr)
        assert json.loads(done.stdout) == {"status": "recorded", "events": 1}, (lang, done.stdout)
        ran.add(lang)
    assert ran >= {"python", "curl"}  # node too where it is installed (the CI machine's is)


def test_the_guides_script_tags_are_the_ones_the_demo_shop_renders(live):
    """The two script tags the guide shows (cartwheel's copy, and the shop's own with
    data-endpoint) are what the demo shop's pages carry, its options aside."""
    import urllib.request

    shop, srv, _ = live
    guide = (ROOT / "docs" / "integration.md").read_text()
    hosted = Shop(srv.url, "--hosted")
    try:
        for url, example in (
                (shop.url, '<script src="https://cw.shop.example/v1/client.js"></script>'),
                (hosted.url, '<script src="/js/cartwheel.js" data-endpoint='
                             '"https://cw.shop.example"></script>')):
            assert example in guide
            html = urllib.request.urlopen(url + "/", timeout=10).read().decode()
            tag = re.search(r"<script src=[^>]*cartwheel[^>]*></script>|"
                            r"<script src=\"[^\"]*/v1/client\.js\"[^>]*></script>", html).group(0)
            tag = re.sub(r' data-(timeout|consent)="[^"]*"', "", tag)
            assert tag == example.replace("https://cw.shop.example", srv.url)
    finally:
        hosted.stop()


def test_in_signed_mode_the_page_decides_with_its_token_and_a_forged_visitor_is_refused(
        browser, tmp_path):
    shop, srv = pair(tmp_path, "--signed")
    try:
        context, page, seen = open_page(browser)
        page.goto(shop.url + "/cart?utm_medium=email")
        ready(page)
        assert page.get_attribute("#slot-cart", "data-state") == "decided"
        vid = {c["name"]: c["value"] for c in context.cookies()}["cw_vid"]  # the backend's
        (cart,) = [d for d in seen["decided"] if d["placement"] == "cart"]
        db = sqlite3.connect(f"{(tmp_path / 'data' / 'events.sqlite3').as_uri()}?mode=ro",
                             uri=True)
        stored = json.loads(db.execute("SELECT context FROM decisions WHERE event_id = ?",
                                       (cart["event_id"],)).fetchone()[0])
        db.close()
        assert stored["traffic_source"] == "email"  # vouched for by the backend's token
        # the page's own script cannot decide for another visitor, nor claim a source
        forged = page.evaluate("""async () => {
            const token = document.querySelector('script[data-token]').dataset.token;
            const ask = (body) => fetch(cartwheel.endpoint + '/v1/decide', {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})
                .then((r) => r.status);
            return [await ask({visitor_id: 'someone-else', placement: 'cart', token}),
                    await ask({visitor_id: '%s', placement: 'cart', token,
                               context: {traffic_source: 'affiliate'}}),
                    await ask({visitor_id: '%s', placement: 'cart'})];
        }""" % (vid, vid))
        assert forged == [401, 401, 401]
        context.close()
    finally:
        shop.stop()
        srv.stop()
