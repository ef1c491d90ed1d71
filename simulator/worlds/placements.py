"""A simulated shop with placements: a visit passes the product page, the cart and, for some
visitors, an exit-intent pop-up; one intervention is shown at each, and they interact.

``make_world("placements")`` builds it. The response is the default world's
(:mod:`simulator.worlds.response`), applied to the visit as a whole:

* the product page's intervention acts on the product page's traits; an upsell bundle shown
  there grows the cart the visitor reaches (x :data:`UPSELL_CART`), which changes what the
  cart's interventions are worth: a larger cart needs free shipping less and makes a
  percentage discount cost more;
* the cart's and the pop-up's interventions act on the cart's traits;
* visitors with exit intent (probability :func:`exit_intent`) were leaving: their baseline
  conversion is lower (:data:`EXIT_BASE` on the logit), and the pop-up is all that is shown to
  them last;
* incentives do not add up: of two incentives shown in one visit the smaller lift counts
  :data:`SECOND_INCENTIVE` of itself, while both are paid for when the visitor buys.

So choosing per placement (each placement's model learning from the visit's order, as the
engine does with orders sent by visitor id) is not the same as choosing the visit's
combination: :func:`simulator.worlds.placements_run.run_placements` measures the gap against
the joint oracle (the best combination per visitor) and the best fixed combination.

>>> import numpy as np, simulator
>>> world = simulator.make_world("placements")
>>> world.placement_ids, world.n_combinations
(('product', 'cart', 'exit'), 48)
>>> visits = world.visits(5, np.random.default_rng(0))
>>> world.expected_rewards(visits).shape  # every visitor, every combination
(5, 48)
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from bandit.config.shop import parse_config
from simulator.worlds.population import sample_columns
from simulator.worlds.response import Response, traits

#: the decision points and their actions (ids of the default shop's actions)
PLACEMENTS = (
    ("product", ("none", "banner_brand", "upsell_bundle", "cross_sell")),
    ("cart", ("none", "free_shipping", "discount_5", "discount_10")),
    ("exit", ("none", "banner_urgency", "discount_5")),
)
#: of two incentives in one visit, the smaller lift (on the conversion logit) counts this much
SECOND_INCENTIVE = 0.4
#: an upsell bundle shown on the product page grows the cart by this factor
UPSELL_CART = 1.35
#: visitors with exit intent were leaving: this much lower conversion logit
EXIT_BASE = -1.2


def exit_intent(columns) -> np.ndarray:
    """Probability that a visitor shows exit intent (the pop-up is shown): more on mobile and
    for new visitors, about a third overall."""
    z = -0.9 + 0.5 * (columns["device"] == "mobile") + 0.4 * (~columns["returning"])
    return 1.0 / (1.0 + np.exp(-z))


def placements_config():
    """The default shop with :data:`PLACEMENTS` (the exit pop-up deferred)."""
    text = resources.files("bandit.config").joinpath("default_shop.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    doc["placements"] = [{"id": pid, "actions": list(actions)} for pid, actions in PLACEMENTS]
    doc["placements"][2]["activation"] = "deferred"
    return parse_config(copy.deepcopy(doc), source="<placements world>")


@dataclass(frozen=True)
class Visits:
    """A batch of visits: the product page's and the cart's contexts (columns), the exit-intent
    probability and whether it happened, and each visitor's index in the timeline."""

    product: dict
    cart: dict  # as reached without an upsell (:meth:`PlacementsWorld.cart_columns`)
    exit_probability: np.ndarray
    exits: np.ndarray
    t: np.ndarray
    #: traits (:func:`~simulator.worlds.response.traits`) at the product page, at the cart,
    #: and at the cart grown by an upsell: computed once, every combination reads them
    z_product: np.ndarray
    z_cart: np.ndarray
    z_cart_upsold: np.ndarray

    def __len__(self) -> int:
        return len(self.exits)


class PlacementsWorld:
    """A shop with three placements (see the module docstring).

    Parameters
    ----------
    response : Response
        The true response of every action (the default world's when None).
    name : str
        Scenario name for reports.
    """

    def __init__(self, response: Response | None = None, name: str = "placements"):
        self.config = placements_config()
        self.space = self.config.feature_space()
        self.name = name
        self.objective = self.config.objective
        self.placement_ids = tuple(pid for pid, _ in PLACEMENTS)
        self.placement_actions = {pid: actions for pid, actions in PLACEMENTS}
        self.response = response or Response.default(self.config.action_ids)
        by_id = {a.id: a for a in self.config.actions}
        self._index = {a: i for i, a in enumerate(self.config.action_ids)}
        self._cost_pct = {a: by_id[a].cost_pct / 100.0 for a in by_id}
        self._cost_fixed = {a: by_id[a].cost_fixed for a in by_id}
        self._costed = {a: by_id[a].costed for a in by_id}
        #: every combination (product, cart, exit action), in a fixed order
        self.combinations = tuple(itertools.product(*(a for _, a in PLACEMENTS)))

    @property
    def n_combinations(self) -> int:
        return len(self.combinations)

    # ------------------------------------------------------------------ visitors
    def visits(self, n: int, rng: np.random.Generator, start: int = 0) -> Visits:
        """``n`` visits: contexts at the product page and the cart, exit intent drawn."""
        columns = sample_columns(n, rng)
        product = {**columns, "page_type": np.full(n, "product")}
        # everyone reaching the cart holds something in it
        basket = np.round(rng.lognormal(np.log(55.0), 0.75, n), 2)
        cart = {**columns, "page_type": np.full(n, "cart"),
                "cart_value": np.where(columns["cart_value"] > 0, columns["cart_value"], basket),
                "pages_viewed": np.minimum(columns["pages_viewed"] + 1, 60)}
        q = exit_intent(columns)
        return Visits(product, cart, q, rng.random(n) < q, start + np.arange(n),
                      traits(product), traits(cart), traits(self._upsold(cart)))

    @staticmethod
    def _upsold(cart: dict) -> dict:
        return {**cart, "cart_value": np.round(cart["cart_value"] * UPSELL_CART, 2)}

    def cart_columns(self, visits: Visits, product_actions) -> dict:
        """The cart's context given what the product page showed (an upsell grows the cart)."""
        upsold = np.asarray([a == "upsell_bundle" for a in product_actions])
        grown = self._upsold(visits.cart)["cart_value"]
        return {**visits.cart, "cart_value": np.where(upsold, grown, visits.cart["cart_value"])}

    def contexts(self, columns: dict) -> list[dict]:
        """Plain dicts with the keys a storefront would send."""
        keys = list(columns)
        return [dict(zip(keys, row)) for row in zip(*(columns[k].tolist() for k in keys))]

    def encode(self, columns: dict) -> np.ndarray:
        return self.space.transform_columns(columns)

    # ------------------------------------------------------------------ the response
    def _visit(self, visits: Visits, product, cart, exit_action, shown,
               charge=("cart", "exit")):
        """Conversion probability, mean order value, and the incentives' percentage and fixed
        cost paid on conversion (those shown at the placements in ``charge``), per visit, for
        actions given per visit (lists of ids)."""
        r, k = self.response, self._index
        zp = visits.z_product
        upsold = np.array([a == "upsell_bundle" for a in product])
        zc = np.where(upsold[:, None], visits.z_cart_upsold, visits.z_cart)
        ip, ic, ie = ([k[a] for a in acts] for acts in (product, cart, exit_action))
        logit = zc @ r.base_conv + np.einsum("nm,nm->n", zp, r.conv[ip])
        lift_cart = np.einsum("nm,nm->n", zc, r.conv[ic])
        lift_exit = np.where(shown, np.einsum("nm,nm->n", zc, r.conv[ie]), 0.0)
        costed_cart = np.array([self._costed[a] for a in cart])
        costed_exit = np.array([self._costed[a] for a in exit_action]) & shown
        both = costed_cart & costed_exit
        # two incentives: the larger lift counts, the smaller one in part
        high, low = np.maximum(lift_cart, lift_exit), np.minimum(lift_cart, lift_exit)
        logit = logit + np.where(both, high + SECOND_INCENTIVE * low, lift_cart + lift_exit)
        logit = logit + np.where(shown, EXIT_BASE, 0.0)
        p = 1.0 / (1.0 + np.exp(-logit))
        log_value = (zc @ r.base_value + np.einsum("nm,nm->n", zp, r.value[ip])
                     + np.einsum("nm,nm->n", zc, r.value[ic]))
        mean_value = np.exp(log_value + 0.5 * r.value_sigma ** 2)
        at_cart, at_exit = "cart" in charge, costed_exit & ("exit" in charge)
        pct = (at_cart * np.array([self._cost_pct[a] for a in cart])
               + np.where(at_exit, [self._cost_pct[a] for a in exit_action], 0.0))
        fixed = (at_cart * np.array([self._cost_fixed[a] for a in cart])
                 + np.where(at_exit, [self._cost_fixed[a] for a in exit_action], 0.0))
        return p, mean_value, log_value, pct, fixed

    def _expected(self, p, mean_value, pct, fixed) -> np.ndarray:
        return self.objective.expected(p, mean_value, 100.0 * pct, fixed)

    def expected_reward(self, visits: Visits, product, cart, exit_action,
                        charge=("cart", "exit")) -> np.ndarray:
        """Expected reward of each visit under the shop's objective for the given actions
        (lists of ids), over exit intent (shown with its probability); ``charge``: whose
        incentives are paid out of it (a placement's credit: its own only)."""
        n = len(visits)
        out = np.zeros(n)
        for shown, weight in ((np.zeros(n, bool), 1 - visits.exit_probability),
                              (np.ones(n, bool), visits.exit_probability)):
            p, v, _, pct, fixed = self._visit(visits, product, cart, exit_action, shown,
                                              charge)
            out += weight * self._expected(p, v, pct, fixed)
        return out

    def equilibrium(self, visits: Visits, rounds: int = 6) -> tuple[list, list, list]:
        """Per visit, the combination per-placement learning aims at: each placement's best
        action for the credit it learns (the visit's order less its own incentive) given the
        others' choices, found by best responses from "none" everywhere. What a perfect
        per-placement model reaches; the oracle's combination may be better (interactions
        and the other placements' incentive costs are not in any one placement's credit)."""
        n = len(visits)
        chosen = {pid: ["none"] * n for pid in self.placement_ids}
        for _ in range(rounds):
            for pid in self.placement_ids:
                actions = self.placement_actions[pid]
                credit = np.column_stack([self.expected_reward(
                    visits, *({**chosen, pid: [a] * n}[q] for q in self.placement_ids),
                    charge=(pid,)) for a in actions])
                chosen[pid] = [actions[i] for i in credit.argmax(axis=1)]
        return chosen["product"], chosen["cart"], chosen["exit"]

    def expected_rewards(self, visits: Visits) -> np.ndarray:
        """(n, combinations) expected reward of every combination for every visit."""
        n = len(visits)
        return np.column_stack([self.expected_reward(visits, [c[0]] * n, [c[1]] * n,
                                                     [c[2]] * n) for c in self.combinations])

    def outcomes(self, visits: Visits, product, cart, exit_action, rng: np.random.Generator):
        """Sampled (converted, order value) of each visit for the actions shown (the pop-up's
        only where exit intent happened)."""
        p, _, log_value, _, _ = self._visit(visits, product, cart, exit_action, visits.exits)
        converted = rng.random(len(visits)) < p
        value = np.exp(log_value + self.response.value_sigma * rng.standard_normal(len(visits)))
        return converted, np.where(converted, np.round(value, 2), 0.0)

    def reward_of(self, action: str, converted, order_value) -> np.ndarray:
        """What one decision earns from its visit's order, as the engine credits an order sent
        by visitor id: the order's value, less the decision's own incentive."""
        cost = np.where(converted, self._cost_pct[action] * order_value
                        + self._cost_fixed[action], 0.0)
        return self.objective.reward(converted, order_value, cost)
