"""The ``cartwheel`` command (the top floor: nothing imports it)."""

from bandit.cli.main import main

__all__ = ["main"]
