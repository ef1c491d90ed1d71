"""The system suites: whole processes, real servers, browsers, faults and hostile input."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/system/" in str(item.path):
            item.add_marker(pytest.mark.system)
