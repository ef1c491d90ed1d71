"""``[[placements]]``: parsed, defaulted and refused with errors that name the key."""

from __future__ import annotations

import copy
import tomllib

import pytest
from engine_helpers import PLACEMENTS, shop, shop_doc

from bandit.config.reference import example_text, placements_text
from bandit.config.shop import parse_config
from bandit.domain.errors import ConfigError


def _with(placements, **sections):
    return parse_config(shop_doc(placements=placements, **sections), source="shop.toml")


def test_the_example_placements_parse_with_the_example_shop():
    doc = tomllib.loads(example_text() + "\n" + placements_text())
    config = parse_config(doc, source="example")
    assert config.placement_ids == ("product", "cart", "exit")
    exit_ = config.placements[2]
    assert exit_.deferred and exit_.control == "none" and exit_.spec == config.policy_spec


def test_a_config_without_placements_has_one_default_placement_of_every_action():
    config = shop()
    (only,) = config.placements
    assert (only.id, only.actions, only.spec, only.control, only.deferred) == (
        "default", config.action_ids, config.policy_spec, "none", False)
    assert not config.declares_placements


def test_placements_take_the_shops_order_and_their_own_spec_and_control():
    config = _with([{"id": "cart", "actions": ["discount_5", "none"], "spec": "egreedy",
                     "control": "discount_5"}])
    (cart,) = config.placements
    assert cart.actions == ("none", "discount_5")  # the shop's order: masks are in it
    assert (cart.spec, cart.control) == ("egreedy", "discount_5")


@pytest.mark.parametrize("placements, message", [
    ([], "placements: is empty"),
    ([{"id": "cart", "actions": ["coupon"]}], "placements[0].actions: unknown action 'coupon'"),
    ([{"id": "cart", "actions": []}], "placements[0].actions: is empty"),
    ([{"id": "cart", "actions": ["none", "none"]}], "'none' is listed twice"),
    ([{"id": "a b", "actions": ["none"]}], "placements[0].id: expected 1-32 letters"),
    ([{"id": "cart", "actions": ["none"]}, {"id": "cart", "actions": ["none"]}],
     "placements: id 'cart' appears twice"),
    ([{"id": "cart", "actions": ["discount_5"]}], "placements[0].control: is required here"),
    ([{"id": "cart", "actions": ["none"], "control": "discount_5"}],
     "placements[0].control: expected one of this placement's actions"),
    ([{"id": "cart", "actions": ["none"], "activation": "later"}],
     "placements[0].activation: expected 'immediate' or 'deferred'"),
    ([{"id": "cart", "actions": ["none"], "spec": "linucb:alpha=-1"}], "placements[0].spec"),
    ([{"id": "cart", "actions": ["none"], "actoins": []}],
     "placements[0].actoins: unknown key (did you mean 'actions'?"),
])
def test_bad_placements_are_refused_naming_the_key(placements, message):
    with pytest.raises(ConfigError) as err:
        _with(copy.deepcopy(placements))
    assert message in str(err.value)
    assert str(err.value).startswith("shop.toml: ")


def test_the_test_shops_placements_parse():
    assert _with(copy.deepcopy(PLACEMENTS)).placement_ids == ("product", "cart", "exit")
