"""Helpers to build shop configs and drive engines in tests."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

from bandit.config.shop import parse_config

_DEFAULT = tomllib.loads(resources.files("bandit.config").joinpath("default_shop.toml").read_text())


def shop_doc(**sections) -> dict:
    """The default shop's TOML document with sections updated (``holdout={"fraction": 0}``).

    A fixed privacy salt makes holdout assignment, and so every seeded test, reproducible.
    """
    doc = copy.deepcopy(_DEFAULT)
    doc["privacy"] = {"salt": "test-salt"}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return doc


def shop(**sections):
    return parse_config(shop_doc(**sections), source="test.toml")


class Clock:
    """A settable clock for the engine."""

    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t
