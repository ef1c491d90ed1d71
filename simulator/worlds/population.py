"""Who visits the simulated shop: anonymous contexts drawn like a mid-sized shop's traffic."""

from __future__ import annotations

import numpy as np

DEVICES = ("desktop", "mobile", "tablet")
SOURCES = ("direct", "organic", "paid_search", "social", "email", "affiliate")
PAGES = ("home", "category", "product", "cart", "checkout")
REGIONS = ("north", "south", "east", "west", "abroad")
CHANNELS = ("web", "app")

# Share of visits by hour of day: a quiet night, a lunch bump and an evening peak.
_HOURLY = np.array([1.0, .6, .4, .3, .3, .4, .8, 1.5, 2.2, 2.6, 2.8, 3.0,
                    3.3, 3.1, 2.9, 2.9, 3.0, 3.3, 3.8, 4.4, 4.8, 4.3, 3.2, 2.0])


def _choice(rng, options, p, n):
    return np.asarray(options)[rng.choice(len(options), size=n, p=np.asarray(p) / np.sum(p))]


def sample_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Columnar contexts of ``n`` visitors with realistic dependencies between keys.

    Returning visitors come more often direct or by e-mail, apps are used by returning mobile
    visitors, people deeper in the funnel have viewed more pages and hold fuller carts.
    """
    returning = rng.random(n) < 0.36
    source = np.where(
        returning,
        _choice(rng, SOURCES, [.36, .22, .12, .06, .20, .04], n),
        _choice(rng, SOURCES, [.14, .34, .26, .16, .02, .08], n))
    device = _choice(rng, DEVICES, [.38, .55, .07], n)
    app = (device == "mobile") & returning & (rng.random(n) < 0.35)
    channel = np.where(app, "app", "web")
    funnel = rng.choice(len(PAGES), size=n, p=[.26, .28, .30, .11, .05])
    page = np.asarray(PAGES)[funnel]
    pages_viewed = np.minimum(1 + rng.negative_binomial(2, 2 / (2 + 2.0 + 1.6 * funnel)), 60)
    has_cart = rng.random(n) < np.array([.18, .22, .33, 1.0, 1.0])[funnel]
    cart_value = np.where(has_cart, np.round(rng.lognormal(np.log(55.0), 0.75, n), 2), 0.0)
    hour = rng.choice(24, size=n, p=_HOURLY / _HOURLY.sum())
    region = _choice(rng, REGIONS, [.27, .24, .2, .21, .08], n)
    return {
        "device": device, "traffic_source": source, "returning": returning,
        "pages_viewed": pages_viewed.astype(np.int64), "cart_value": cart_value,
        "page_type": page, "hour": hour.astype(np.int64), "region": region, "channel": channel,
    }
