"""Fixtures of the bandit tests."""

import pytest
from engine_helpers import Clock


@pytest.fixture
def clock():
    """A settable clock for an engine (seconds since the epoch)."""
    return Clock()
