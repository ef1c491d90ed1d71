"""The system suites: whole processes, real servers, browsers, faults and hostile input."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/system/" in str(item.path):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per test module (tests/helpers/browser_helpers)."""
    from browser_helpers import launch

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'cartwheel[dev]'")
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
