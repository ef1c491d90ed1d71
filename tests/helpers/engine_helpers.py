"""Helpers to build shop configs and drive engines in tests."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

from bandit import Engine
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


#: a context of the default shop that fills every feature
CTX = {"device": "mobile", "traffic_source": "paid_search", "returning": False,
       "pages_viewed": 3, "cart_value": 40.0, "page_type": "cart", "hour": 20,
       "region": "north", "channel": "web"}


def open_engine(tmp_path, clock, **sections):
    sections.setdefault("holdout", {"fraction": 0.0})
    return Engine.open(shop(**sections), tmp_path / "data", seed=0, clock=clock)


def closed_row(engine, event_id):
    return engine.store.db.execute(
        "SELECT reason, reward, learned, cost FROM closed WHERE event_id = ?", (event_id,)).fetchone()


def traffic(engine, n, rng, clock):
    """``n`` decisions, 30% converting, one second apart, committed at the end."""
    for i in range(n):
        d = engine.decide(f"v{rng.integers(1e9)}", CTX, commit=False)
        engine.record_outcome(d.event_id, bool(rng.random() < 0.3), float(rng.uniform(10, 90)),
                              commit=False)
        clock.t += 1
    engine.commit()


#: three decision points of the default shop: a product page, the cart, an exit pop-up shown
#: only on exit intent (deferred: learned once the page says it was shown)
PLACEMENTS = [
    {"id": "product", "actions": ["none", "banner_brand", "upsell_bundle", "cross_sell"]},
    {"id": "cart", "actions": ["none", "free_shipping", "discount_5", "discount_10"]},
    {"id": "exit", "actions": ["none", "banner_urgency", "discount_5"],
     "activation": "deferred"},
]


def placement_shop(**sections):
    """The default shop with :data:`PLACEMENTS`."""
    sections.setdefault("placements", copy.deepcopy(PLACEMENTS))
    return shop(**sections)
