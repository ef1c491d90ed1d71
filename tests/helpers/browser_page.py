"""A dashboard page in the real browser (Playwright on Debian's chromium): opened (signed in
when asked) with its console problems collected, and every number it shows checked against
the report it was given (``tests/system/test_dashboard*.py``)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def js_fixed(x: float, digits: int) -> str:
    """Number.prototype.toFixed: the exact binary value, ties away from zero."""
    q = Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{q:.{digits}f}"


FORMATS = {"int": lambda x: f"{int(Decimal(x).quantize(Decimal(1), ROUND_HALF_UP)):,}",
           "pct": lambda x: js_fixed(100 * x, 2) + "%", "money": lambda x: js_fixed(x, 2),
           "diff": lambda x: ("+" if x >= 0 else "") + js_fixed(x, 4),
           "mdiff": lambda x: ("+" if x >= 0 else "") + js_fixed(x, 2),
           "pp": lambda x: ("+" if x >= 0 else "") + js_fixed(100 * x, 2),
           "rate3": lambda x: js_fixed(x, 3),
           "d3": lambda x: ("+" if x >= 0 else "") + js_fixed(x, 3),
           "share": lambda x: js_fixed(100 * x, 1) + "%", "price": lambda x: js_fixed(x, 3)}


def at_path(data, path: str):
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def check_numbers(page, data: dict) -> set[str]:
    """Every number on the page is its value in ``data`` formatted; returns the panels that
    showed at least one."""
    shown = page.eval_on_selector_all(
        "[data-path]", "els => els.map(e => [e.dataset.path, e.dataset.format, e.textContent,"
        " e.closest('[data-panel]').dataset.panel])")
    assert shown
    for path, fmt, text, _ in shown:
        value = at_path(data, path)
        expected = "n/a" if value is None else FORMATS[fmt](value)
        assert text == expected, (path, text, expected)
    return {panel for *_, panel in shown}


def open_page(browser, url: str, width: int = 1280, loaded: bool = True,
          secret: str | None = None):
    """A page at ``url``; with ``secret``, signed in first through the /login form (the read
    secret goes in the form's POST body, as a person types it)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: FETCHED.setdefault(page, {}).__setitem__(
        r.url.split("?")[0].rsplit("/", 1)[-1], r)
        if r.url.split("?")[0].endswith(("/v1/report", "/v1/segments")) else None)
    if secret is not None:
        page.goto(url.rstrip("/") + "/login")
        page.fill("input[name=token]", secret)
        page.click("button[type=submit]")
    else:
        page.goto(url)
    if loaded:
        page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
    return context, page, problems


FETCHED: dict = {}  # page -> {"report": its last response, "segments": ...}


def fetched(page) -> dict:
    """The report and segments the page itself received: a second GET would not do, since the
    paced spend target moves with the clock between two requests."""
    return {name: response.json() for name, response in FETCHED[page].items()}
