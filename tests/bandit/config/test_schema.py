"""The declarative settings tables: types, bounds and defaults come from the Structs, errors
name the file and the dotted key with what the field expects."""

from __future__ import annotations

import math

import msgspec
import pytest

from bandit.config.schema import Attribution, Holdout, Server, Storage, describe, read_table
from bandit.domain.errors import ConfigError
from bandit.domain.objective import Objective


@pytest.mark.parametrize("cls, table, data, key, expected", [
    (Holdout, "holdout", {"fraction": 1.0}, "holdout.fraction", "a fraction in [0, 1)"),
    (Holdout, "holdout", {"fraction": True}, "holdout.fraction", "a fraction in [0, 1)"),
    (Holdout, "holdout", {"fraction": "5%"}, "holdout.fraction", "a fraction in [0, 1)"),
    (Objective, "objective", {"kind": "sales"}, "objective.kind", "one of ('conversion'"),
    (Objective, "objective", {"margin": 0}, "objective.margin", "a margin in (0, 1]"),
    (Storage, "storage", {"synchronous": "off"}, "storage.synchronous", "normal or full"),
    (Storage, "storage", {"snapshot_every_updates": 2.5}, "storage.snapshot_every_updates",
     "an integer > 0"),
    (Server, "server", {"allowed_origins": ["shop.example"]}, "server.allowed_origins",
     'a list of origins like "https://shop.example"'),
    (Server, "server", {"visitor_burst": 0}, "server.visitor_burst", "an integer >= 1"),
    (Attribution, "attribution", {"window_s": 86400e3}, "attribution.window_s",
     "seconds > 0, at most 90 days"),
])
def test_a_bad_setting_names_its_key_and_what_it_expects(cls, table, data, key, expected):
    with pytest.raises(ConfigError) as err:
        read_table(cls, data, table, "shop.toml")
    assert err.value.field == key
    assert str(err.value).startswith(f"shop.toml: {key}: expected {expected}")
    assert f"got {next(iter(data.values()))!r}"[:20] in str(err.value)


def test_an_unknown_setting_gets_a_did_you_mean():
    with pytest.raises(ConfigError, match=r"holdout.fractoin: unknown key \(did you mean "
                                          r"'fraction'\?"):
        read_table(Holdout, {"fractoin": 0.1}, "holdout", "shop.toml")


def test_settings_are_finite():
    # TOML has inf: a rate of inf passes ">= 0" and would turn the limit into a no-op
    with pytest.raises(ConfigError, match="server.visitor_rate: must be a finite number"):
        read_table(Server, {"visitor_rate": math.inf}, "server", "shop.toml")
    with pytest.raises(ConfigError, match="server.visitor_rate: expected decisions per second"):
        read_table(Server, {"visitor_rate": -math.inf}, "server", "shop.toml")
    with pytest.raises(ConfigError, match="holdout.fraction: expected a fraction"):
        read_table(Holdout, {"fraction": math.nan}, "holdout", "shop.toml")


def test_defaults_live_in_the_schema_only():
    assert read_table(Server, {}, "server", "x") == Server()
    assert Server().visitor_rate == 5.0 and Storage().synchronous == "normal"
    assert msgspec.convert({}, Objective) == Objective()
    assert describe(Holdout, "fraction") == "a fraction in [0, 1)"
    # an int where a float is expected is the same number
    assert read_table(Holdout, {"fraction": 0}, "holdout", "x").fraction == 0.0
