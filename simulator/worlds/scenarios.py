"""Named worlds: ``default``, ``drift`` and ``random`` (a plausible other shop per seed).

>>> sorted(SCENARIOS)
['default', 'drift', 'random']
"""

from __future__ import annotations

import numpy as np

from bandit.config.shop import load_config
from simulator.worlds.response import Response
from simulator.worlds.world import World


def _default(seed, config):
    return World(config, name="default")


def _drift(seed, config, start=100_000, ramp=20_000):
    """Preferences change: a competitor's sale makes discounts count double and banners fade."""
    before = Response.default(config.action_ids)
    conv = before.conv.copy()
    for i, action in enumerate(config.action_ids):
        if action.startswith("discount"):
            conv[i] *= 2.0
        elif action.startswith("banner"):
            conv[i] *= -0.5
        elif action == "free_shipping":
            conv[i] *= 0.3
    after = Response(conv, before.value)
    return World(config, before, drift=(after, start, ramp), name="drift")


def _random(seed, config):
    """The default shop with every coefficient rescaled at random: a family of other shops."""
    rng = np.random.default_rng(np.random.SeedSequence([seed or 0, 0x5EED]))
    return World(config, Response.default(config.action_ids).perturbed(rng), name="random")


SCENARIOS = {"default": _default, "drift": _drift, "random": _random}


def make_world(name: str = "default", seed: int | None = None, config=None, **options) -> World:
    """Build a named world. ``seed`` only matters for worlds that are themselves random;
    ``options`` go to the scenario (``drift``: ``start`` and ``ramp``, in visitors).

    >>> make_world("drift", start=500_000).drift[1]
    500000
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}")
    return SCENARIOS[name](seed, config or load_config(), **options)
