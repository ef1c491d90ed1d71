"""The simulated shop's true response: how each intervention moves conversion and basket size.

Derived visitor traits (new, price-sensitive, small cart, ...) are linear inputs ``Z`` (n, m) to
two coefficient tables per action: ``conv`` adds to the conversion logit, ``value`` to the log of
the order value. The heterogeneity is the point: discounts lift price-sensitive new visitors from
paid traffic but give margin away on loyal returning ones, free shipping matters for small
carts and abroad, an upsell bundle raises the basket of large carts and distracts small ones,
an urgency banner nudges new visitors with a cart and irritates loyal ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TRAITS = (
    "one", "returning", "new", "loyal", "paid", "new_paid", "mobile", "tablet", "desktop", "app",
    "has_cart", "small_cart", "large_cart", "log_cart", "browse_page", "product_page",
    "late_funnel", "checkout", "abroad", "log_pages", "evening", "price_sensitive",
    "new_browse", "new_cart", "mobile_late", "loyal_product",
)
_T = {name: i for i, name in enumerate(TRAITS)}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def traits(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(n, m) derived traits of visitors, in the order of ``TRAITS``."""
    src, page, dev = columns["traffic_source"], columns["page_type"], columns["device"]
    cart = columns["cart_value"].astype(float)
    returning = columns["returning"].astype(float)
    new = 1.0 - returning
    loyal = returning * np.isin(src, ("direct", "email"))
    paid = np.isin(src, ("paid_search", "social", "affiliate")).astype(float)
    mobile = (dev == "mobile").astype(float)
    has_cart = (cart > 0).astype(float)
    browse = np.isin(page, ("home", "category")).astype(float)
    late = np.isin(page, ("cart", "checkout")).astype(float)
    product = (page == "product").astype(float)
    hour = columns["hour"].astype(float)
    price_sensitive = np.clip(0.5 * new + 0.4 * paid + 0.25 * mobile
                              + 0.25 * (src == "affiliate") - 0.35 * loyal, 0.0, None)
    z = {
        "one": np.ones_like(cart), "returning": returning, "new": new, "loyal": loyal,
        "paid": paid, "new_paid": new * paid, "mobile": mobile,
        "tablet": (dev == "tablet").astype(float), "desktop": (dev == "desktop").astype(float),
        "app": (columns["channel"] == "app").astype(float), "has_cart": has_cart,
        "small_cart": has_cart * _sigmoid((45.0 - cart) / 10.0),
        "large_cart": has_cart * _sigmoid((cart - 90.0) / 20.0),
        "log_cart": has_cart * (np.log1p(cart) - 3.6), "browse_page": browse,
        "product_page": product, "late_funnel": late, "checkout": (page == "checkout") * 1.0,
        "abroad": (columns["region"] == "abroad").astype(float),
        "log_pages": np.log1p(columns["pages_viewed"].astype(float)),
        "evening": np.cos(2 * np.pi * (hour - 20.0) / 24.0), "price_sensitive": price_sensitive,
        "new_browse": new * browse, "new_cart": new * has_cart, "mobile_late": mobile * late,
        "loyal_product": loyal * product,
    }
    return np.column_stack([z[name] for name in TRAITS])


def _row(**coef) -> np.ndarray:
    row = np.zeros(len(TRAITS))
    for name, value in coef.items():
        row[_T[name]] = value
    return row


# Baseline: conversion logit and log order value without any intervention.
BASE_CONV = _row(one=-4.0, returning=0.5, mobile=-0.35, tablet=-0.1, app=0.25, has_cart=0.45,
                 browse_page=-0.35, late_funnel=0.75, checkout=0.35, log_pages=0.22,
                 evening=0.12, paid=0.05, loyal=0.2)
BASE_VALUE = _row(one=3.75, log_cart=0.4, returning=0.12, desktop=0.08, abroad=0.1)
VALUE_SIGMA = 0.6

# Effects of each intervention (by action id) on the conversion logit and the log order value.
EFFECTS_CONV = {
    "none": _row(),
    "banner_brand": _row(new_browse=0.18, desktop=0.04, mobile_late=-0.12, one=-0.02),
    "banner_urgency": _row(new_cart=0.38, new_paid=0.12, loyal=-0.35, checkout=-0.15,
                           one=-0.04),
    "free_shipping": _row(small_cart=0.6, abroad=0.4, one=0.08, large_cart=-0.05),
    "discount_5": _row(price_sensitive=0.34, one=0.02),
    "discount_10": _row(price_sensitive=0.62, one=0.03),
    "upsell_bundle": _row(large_cart=0.05, small_cart=-0.3, one=-0.05),
    "cross_sell": _row(loyal_product=0.25, returning=0.06, checkout=-0.2, new=-0.05),
}
EFFECTS_VALUE = {
    "upsell_bundle": _row(large_cart=0.3, one=0.03),
    "cross_sell": _row(returning=0.1, one=0.03),
}


@dataclass(frozen=True)
class Response:
    """Coefficient tables (K, m) for conversion logit and log order value, in action order."""

    conv: np.ndarray
    value: np.ndarray
    base_conv: np.ndarray = field(default_factory=BASE_CONV.copy)
    base_value: np.ndarray = field(default_factory=BASE_VALUE.copy)
    value_sigma: float = VALUE_SIGMA

    @classmethod
    def default(cls, action_ids) -> "Response":
        zero = _row()
        missing = [a for a in action_ids if a not in EFFECTS_CONV]
        if missing:
            raise ValueError(f"the simulated response knows no effect for actions {missing}")
        return cls(np.array([EFFECTS_CONV[a] for a in action_ids]),
                   np.array([EFFECTS_VALUE.get(a, zero) for a in action_ids]))

    def perturbed(self, rng: np.random.Generator, scale: float = 0.35) -> "Response":
        """A plausible other shop: every effect and baseline coefficient rescaled at random."""
        def jitter(a):
            return a * rng.lognormal(0.0, scale, a.shape)
        base = self.base_conv.copy()
        base[1:] = jitter(base[1:])
        return Response(jitter(self.conv), jitter(self.value), base,
                        jitter(self.base_value), self.value_sigma)

    def blend(self, other: "Response", w: float) -> "Response":
        """(1 - w) * self + w * other, for gradual drift."""
        def mix(a, b):
            return (1 - w) * a + w * b
        return Response(mix(self.conv, other.conv), mix(self.value, other.value),
                        mix(self.base_conv, other.base_conv),
                        mix(self.base_value, other.base_value), self.value_sigma)

    def conversion_probability(self, Z: np.ndarray) -> np.ndarray:
        """(n, K) true conversion probabilities."""
        return _sigmoid((Z @ self.base_conv)[:, None] + Z @ self.conv.T)

    def log_value_mean(self, Z: np.ndarray) -> np.ndarray:
        """(n, K) mean of log order value given conversion."""
        return (Z @ self.base_value)[:, None] + Z @ self.value.T
