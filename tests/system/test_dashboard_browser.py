"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real
`cartwheel serve` over a socket: sign-in cookie, every panel's numbers equal to what
GET /v1/report and GET /v1/segments answer, no console error (CSP included) on a busy, a
fresh and a holdout-less shop, a phone-sized layout, and `report --html` as one file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from browser_page import FETCHED, check_numbers, fetched, open_page
from server_helpers import Server, config_file

# where the screenshots go: a temporary folder, unless CARTWHEEL_SCREENSHOTS names one (the
# README's images: CARTWHEEL_SCREENSHOTS=benchmarks/results pytest tests/system/test_dashboard_browser.py)
SCREENSHOTS = os.environ.get("CARTWHEEL_SCREENSHOTS")
TOKEN = "dash-s3cret"
PANELS = ("kpis", "uplift", "action-uplift", "uplift-time", "mix", "spend", "actions",
          "segments", "model")


def _traffic(srv, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        ctx = {"device": str(rng.choice(["desktop", "mobile", "tablet"])),
               "traffic_source": str(rng.choice(["direct", "organic", "email"])),
               "returning": bool(rng.random() < 0.4), "cart_value": float(rng.gamma(2, 30)),
               "page_type": str(rng.choice(["product", "cart", "checkout"]))}
        status, d = srv.post("/v1/decide", {"visitor_id": f"visitor-{seed}-{i}", "context": ctx})
        assert status == 200, d
        converted = rng.random() < (0.35 if ctx["device"] == "desktop" else 0.15)
        if converted:
            status, _ = srv.post("/v1/outcome", {"event_id": d["event_id"], "converted": True,
                                                 "order_value": float(rng.gamma(2, 40))})
            assert status == 200


def _settle(srv, timeout_s: float = 30.0) -> None:
    """Wait until every event has closed (the window is 1 s): the figures stop moving."""
    deadline = time.monotonic() + timeout_s
    while srv.request("GET", "/healthz")[1]["pending_events"]:
        assert time.monotonic() < deadline, "events did not expire"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash")
    srv = Server(tmp / "data", config_file(
        tmp, server={"token": TOKEN}, holdout={"fraction": 0.2}, attribution={"window_s": 1.0},
        budget={"daily_incentive_spend": 40.0, "pacing": "even"}))
    _traffic(srv, 700)
    _settle(srv)
    yield srv, tmp
    srv.stop()


def test_sign_in_sets_a_strict_http_only_cookie_and_nothing_is_readable_without(busy, browser):
    """The read secret goes in a POST body, never a URL; the one-time link works once; the
    session is the server's (a logged-out cookie reads nothing); wrong secrets back off."""
    srv, _ = busy
    read = srv.read_token
    assert read and read != TOKEN and len(read) >= 32  # generated, never the write token
    # the banner: a one-time code, and where the secrets are, never the secrets
    assert read not in srv.announce and TOKEN not in srv.announce
    for path in ("/v1/report", "/v1/segments", "/metrics"):
        status, body = srv.request("GET", path, headers={})
        assert status == 401 and body["error"]["code"] == "unauthorized"
    # the read secret reads the figures with a bearer header, as the write token does
    for secret in (read, TOKEN):
        status, _ = srv.request("GET", "/v1/report", headers={"Authorization": f"Bearer {secret}"})
        assert status == 200
    context, page, problems = open_page(browser, srv.url + "/", loaded=False)
    problems.clear()  # the browser logs the 401 itself
    assert "needs its read secret" in page.content() and not page.query_selector("[data-path]")
    # a secret in the URL never signs in
    page.goto(srv.url + f"/login?token={read}")
    assert "never travels in a URL" in page.inner_text("#message") and context.cookies() == []
    page.goto(srv.url + "/login")
    page.fill("input[name=token]", "wrong")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "not this shop's read secret" in page.inner_text("#message")
    assert context.cookies() == []
    problems.clear()
    # the one-time link from the banner signs in once
    page.goto(srv.url + f"/login?code={srv.sign_in_code}")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.url == srv.url + "/"  # nothing secret left in the address bar
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert read not in cookie["value"] and TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # no script can read it
    assert page.evaluate("fetch('/v1/report').then(r => r.status)") == 200
    session = cookie["value"]
    other = browser.new_context()
    second = other.new_page()
    second.goto(srv.url + f"/login?code={srv.sign_in_code}")  # used: refused
    assert "used already or has expired" in second.inner_text("#message")
    assert other.cookies() == []
    other.close()
    # /logout ends the session on the server: the same cookie, replayed, reads nothing
    page.goto(srv.url + "/logout")
    status, _, _ = srv.exchange("GET", "/v1/report", None,
                                {"Cookie": f"cartwheel_session={session}"})
    assert status == 401
    # a foreign Origin cannot sign in; wrong secrets back off (429 with Retry-After)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = srv.exchange("POST", "/login", f"token={read}".encode(),
                                {**form, "Origin": "https://evil.example"})
    assert status == 403
    # (the wrong secret typed above was the first of five free tries from this address)
    answers = [srv.exchange("POST", "/login", b"token=nope", form) for _ in range(7)]
    codes = [status for status, _, _ in answers]
    assert codes[:4] == [401] * 4 and set(codes[4:]) == {429}, codes
    wait = int(answers[-1][1]["Retry-After"])
    assert 1 <= wait <= 2  # a 429 is no try: the wait does not grow while refused
    time.sleep(wait)  # then the right secret is let in again
    status, headers, _ = srv.exchange("POST", "/login", f"token={read}".encode(), form)
    assert status == 303 and "cartwheel_session=" in headers["Set-Cookie"]
    problems.clear()
    assert not problems
    context.close()


def test_every_panel_shows_the_numbers_of_the_report(busy, browser, tmp_path):
    srv, _ = busy
    context, page, problems = open_page(browser, srv.url, secret=srv.read_token)
    data = fetched(page)
    assert data["report"]["actions"] == srv.request("GET", "/v1/report")[1]["actions"]
    assert data["segments"]["status"] == "ok", data["segments"]
    assert data["report"]["uplift"] and data["report"]["daily_budget"] == 40.0
    assert data["report"]["per_action_uplift"]
    assert check_numbers(page, data) == set(PANELS)
    assert page.is_hidden("#empty")
    # the verdict, in plain words with the shop's currency, is the report's
    verdict = data["report"]["verdict"]
    assert page.inner_text("[data-verdict]") == verdict["sentence"]
    assert page.get_attribute("[data-verdict]", "data-verdict") == verdict["status"]
    assert verdict["status"] == "no_holdout" or "EUR " in verdict["sentence"]
    # under a day of data the uplift is drawn per hour, with its interval band
    assert page.get_attribute("button[data-grain=hour]", "aria-pressed") == "true"
    assert page.query_selector("#uplift-time svg .band")
    # every KPI heading explains itself on focus (keyboard) as on hover
    page.focus("#kpis .tip")
    shown = page.eval_on_selector("#kpis .tip", "e => getComputedStyle(e, '::after').content")
    assert shown.strip('"') == page.get_attribute("#kpis .tip", "data-tip") != ""
    page.click("button[data-grain=day]")
    assert check_numbers(page, data) >= {"uplift-time", "mix"}
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.click("button[data-grain=hour]")
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    assert not problems, problems  # a CSP violation is a console error too
    context.close()
    # a phone: no sideways scroll, and every cell of the uplift tables on screen
    context, page, problems = open_page(browser, srv.url, secret=srv.read_token, width=390)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    right = page.eval_on_selector_all(
        "#uplift td, #action-uplift td", "els => Math.max(...els.map(e => "
        "e.getBoundingClientRect().right))")
    assert 0 < right <= 390, right
    page.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
    assert not problems, problems
    context.close()


def test_colours_say_good_or_bad_for_the_shop(browser, tmp_path):
    """A significant rise in incentive cost is bad (red) though it is an increase; a
    significant profit rise is good; an interval across 0 is neither."""
    from bandit.http.dashboard import render

    def row(kpi, lower, upper):
        return {"kpi": kpi, "treatment": 1.0, "holdout": 0.5, "difference": 0.5,
                "lower": lower, "upper": upper, "relative": 1.0, "method": "welch"}

    report = {"groups": {}, "actions": {}, "pending_events": 0, "confidence": 0.95,
              "generated_at": 1.7e9, "incentive_spend_today": None, "daily_budget": None,
              "shop": "s", "currency": "EUR", "model": None, "timeline": {"hour": [], "day": []},
              "holdout_fraction": 0.1, "per_action_uplift": [], "verdict": None,
              "uplift": [row("cost_per_visitor", 0.1, 0.9), row("profit_per_visitor", 0.1, 0.9),
                         row("revenue_per_visitor", -0.2, 0.9)]}
    page, _ = render({"report": report, "segments": None})
    path = tmp_path / "colours.html"
    path.write_text(page)
    context, tab, problems = open_page(browser, path.as_uri())
    classes = tab.eval_on_selector_all("#uplift tbody tr", "rs => rs.map(r => r.className)")
    assert classes == ["bad", "good", ""]
    colours = tab.eval_on_selector_all("#uplift tbody tr", "rs => rs.map(r => "
                                       "getComputedStyle(r).color)")
    assert colours[0] != colours[1] and len(set(colours)) == 3
    assert "(EUR)" in tab.inner_text("#uplift")
    assert not problems, problems
    context.close()


def test_report_html_is_one_file_that_shows_the_same_numbers(busy, browser, tmp_path):
    srv, tmp = busy
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "bandit.cli", "report", "--data-dir",
                           str(tmp / "data"), "--config", str(tmp / "shop.toml"), "--html",
                           str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    # nothing to fetch: script and style inline, the icon a data: URI
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)
    embedded = re.search(r'id="cartwheel-data">(.*?)</script>', html, re.S).group(1)
    import json

    data = json.loads(embedded)
    context, page, problems = open_page(browser, out.as_uri())
    panels = check_numbers(page, data)
    assert panels >= {"kpis", "uplift", "uplift-time", "mix", "spend", "actions"}
    assert data["report"]["groups"] == srv.request("GET", "/v1/report")[1]["groups"]
    assert not problems, problems
    context.close()


@pytest.mark.parametrize("holdout", [0.0, 0.2])
def test_a_fresh_and_a_holdout_less_shop_render_without_errors(tmp_path, browser, holdout):
    srv = Server(tmp_path / "data", config_file(tmp_path, server={"token": TOKEN},
                                                holdout={"fraction": holdout},
                                                attribution={"window_s": 1.0}))
    try:
        context, page, problems = open_page(browser, srv.url, secret=srv.read_token)
        assert page.is_visible("#empty")  # fresh: says how to start
        assert "No decisions yet" in page.inner_text("#empty")
        assert "segments appear once" in page.inner_text("#segments")
        # hints name the config keys as they are, and only for what is not set
        assert "[budget] daily_incentive_spend" in page.inner_text("#spend")
        assert ("[holdout] fraction" in page.inner_text("#uplift")) == (holdout == 0.0)
        assert ("[holdout] fraction" in page.inner_text("[data-verdict]")) == (holdout == 0.0)
        assert not problems, problems
        context.close()
        if holdout == 0.0:
            _traffic(srv, 120, seed=1)
            _settle(srv)
            context, page, problems = open_page(browser, srv.url, secret=srv.read_token)
            assert "No holdout" in page.inner_text("#uplift")
            assert page.is_hidden("#empty")
            data = fetched(page)
            assert data["report"]["groups"] == srv.request("GET", "/v1/report")[1]["groups"]
            assert "uplift" not in check_numbers(page, data)
            assert not problems, problems
            context.close()
    finally:
        srv.stop()


def test_a_shop_with_placements_shows_each_placements_actions_and_segments(tmp_path, browser):
    import copy

    from engine_helpers import PLACEMENTS

    srv = Server(tmp_path / "data", config_file(
        tmp_path, server={"token": TOKEN}, holdout={"fraction": 0.2},
        attribution={"window_s": 1.0}, placements=copy.deepcopy(PLACEMENTS)))
    try:
        rng = np.random.default_rng(2)
        for i in range(150):
            ctx = {"device": str(rng.choice(["desktop", "mobile"])),
                   "cart_value": float(rng.gamma(2, 30))}
            for placement in ("product", "cart", "exit"):
                status, d = srv.post("/v1/decide", {"visitor_id": f"v{i}", "context": ctx,
                                                    "placement": placement, "activate": True})
                assert status == 200, d
            if rng.random() < 0.3:
                srv.post("/v1/outcome", {"visitor_id": f"v{i}", "converted": True,
                                         "order_value": float(rng.gamma(2, 40))})
        _settle(srv)
        context, page, problems = open_page(browser, srv.url, secret=srv.read_token)
        options = page.eval_on_selector_all("#placement option", "os => os.map(o => o.value)")
        assert options == ["", "product", "cart", "exit"] and page.is_visible("#placement")
        with page.expect_response(lambda r: r.url.endswith("/v1/segments?placement=cart")):
            page.select_option("#placement", "cart")
        page.wait_for_selector("body[data-loaded=true]")  # what it fetched is shown
        assert page.inner_text("#segments-at") == "at cart"
        data = fetched(page)
        assert set(data["report"]["placements"]["cart"]["actions"]) <= {
            "none", "free_shipping", "discount_5", "discount_10"}
        shown = page.eval_on_selector_all("#actions [data-path]", "els => els.map(e => "
                                          "e.dataset.path)")
        assert shown and all(p.startswith("report.placements.cart.actions.") for p in shown)
        assert check_numbers(page, data) >= {"actions", "kpis"}
        # the segments the page asked for are the cart model's, over the cart's actions
        assert FETCHED[page]["segments"].url.endswith("/v1/segments?placement=cart")
        assert not problems, problems
        context.close()
    finally:
        srv.stop()


def test_hostile_names_stay_text_in_the_page(browser, tmp_path):
    """A shop name, action id or segment condition that holds markup (or closes the data's
    <script>) is shown as text and runs nothing."""
    from bandit.http.dashboard import render

    evil = "</script><script>window.pwned = 1</script><img src=x onerror='window.pwned=2'>"
    kpis = {"visitors": 2, "decisions": 2, "conversions": 1, "conversion_rate": 0.5,
            "aov": 10.0, "conversions_per_visitor": 0.5, "revenue_per_visitor": 5.0,
            "profit_per_visitor": 1.0, "cost_per_visitor": 0.0}
    action = {"decisions": 2, "conversions": 1, "conversion_rate": 0.5, "aov": 10.0,
              "revenue_per_decision": 5.0, "profit_per_decision": 1.0,
              "cost_per_decision": 0.0, "cost": 0.0}
    report = {"groups": {"treatment": kpis}, "actions": {evil: action}, "uplift": [],
              "pending_events": 0, "confidence": 0.95, "generated_at": 1.7e9,
              "incentive_spend_today": None, "daily_budget": None, "shop": evil,
              "currency": evil, "model": None,
              "timeline": {"hour": [], "day": [{"start": 1.7e9, "groups": {
                  "treatment": {**action, "profit_per_decision": 1.0}},
                  "treatment_actions": {evil: 2}, "uplift": None}]}}
    segments = {"status": "ok", "reason": "", "depth": 3, "fidelity": 1.0, "control": evil,
                "objective": evil, "confidence": 0.95, "rows": 2, "model_version": 1,
                "segments": [{"condition": evil, "conditions": [], "share": 1.0,
                              "action": evil, "picks": 1.0, "versus": evil,
                              "uplift": {"difference": 0.1, "lower": None, "upper": None,
                                         "rows": 2, "rows_action": 1, "rows_versus": 1,
                                         "reliable": False}}]}
    page, _ = render({"report": report, "segments": segments})
    path = tmp_path / "evil.html"
    path.write_text(page)
    context, tab, problems = open_page(browser, path.as_uri())
    assert tab.evaluate("window.pwned") is None
    assert evil in tab.inner_text("#segments") and evil in tab.inner_text("#shop")
    assert not problems, problems
    context.close()
