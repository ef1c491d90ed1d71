"""Named worlds: ``default``, ``drift``, ``random`` (a plausible other shop per seed) and
``placements`` (a visit passes three placements: :mod:`simulator.worlds.placements`; with a
seed, its response rescaled as ``random``'s).

>>> sorted(SCENARIOS)
['default', 'drift', 'placements', 'random']
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


def _placements(seed, config):
    from simulator.worlds.placements import PlacementsWorld, placements_config

    if seed is None:
        return PlacementsWorld()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    response = Response.default(placements_config().action_ids).perturbed(rng)
    return PlacementsWorld(response, name=f"placements-{seed}")


SCENARIOS = {"default": _default, "drift": _drift, "random": _random,
             "placements": _placements}


def make_world(name: str = "default", seed: int | None = None, config=None, **options) -> World:
    """Build a named world. ``seed`` only matters for worlds that are themselves random;
    ``options`` go to the scenario (``drift``: ``start`` and ``ramp``, in visitors).

    >>> make_world("drift", start=500_000).drift[1]
    500000
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}")
    return SCENARIOS[name](seed, config or load_config(), **options)
