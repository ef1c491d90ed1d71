"""Config parsing: the default shop, and errors that name the key."""

from __future__ import annotations

import sys
import tomllib

import pytest

from bandit.config.shop import load_config, parse_config
from bandit.domain.errors import ConfigError


def default_doc():
    from importlib import resources
    return tomllib.loads(resources.files("bandit.config").joinpath("default_shop.toml").read_text())


def test_default_shop_matches_the_simulator_world():
    import simulator
    cfg = load_config()
    world = simulator.make_world()
    assert world.actions == cfg.action_ids
    assert set(world.visitors(5, __import__("numpy").random.default_rng(0)).columns) == \
        set(cfg.feature_space().keys)
    assert len(cfg.actions) >= 8


@pytest.mark.parametrize("edit, key", [
    (lambda d: d["objective"].update(kind="sales"), "objective.kind"),
    (lambda d: d["objective"].update(margin=1.5), "objective.margin"),
    (lambda d: d["holdout"].update(control="nothing"), "holdout.control"),
    (lambda d: d["holdout"].update(fraction="5%"), "holdout.fraction"),
    (lambda d: d["actions"][3].update(cost_pct=-1), "actions[3].cost_pct"),
    (lambda d: d["actions"][2].update(kidn="banner"), "actions[2].kidn"),
    (lambda d: d["features"]["cart_value"].update(max=-5), "features.cart_value.max"),
    (lambda d: d["features"]["device"].update(type="text"), "features.device.type"),
    (lambda d: d.update(polciy={}), "polciy"),
    (lambda d: d["attribution"].update(window_s=0), "attribution.window_s"),
    # a window in milliseconds by mistake: decisions open for years, a logistic model waiting
    (lambda d: d["attribution"].update(window_s=86400e3), "attribution.window_s"),
    (lambda d: d.update(caps={"incentives_per_visitor": 1, "incentives_window_s": 1e300}),
     "caps.incentives_window_s"),
    (lambda d: d.update(server={"max_body_bytes": 10**14}), "server.max_body_bytes"),
    # values the policy's constructor refuses, found at load time, not when serving starts
    (lambda d: d.update(policy={"spec": "profit:value_spread=wide"}), "policy.spec"),
    (lambda d: d.update(policy={"spec": "profit:bonus=ridge"}), "policy.spec"),
    (lambda d: d.update(policy={"spec": "fixed:action=teleport"}), "policy.spec"),
    (lambda d: d.update(policy={"spec": "vw:exploration=cover,cb_type=dm"}), "policy.spec"),
    (lambda d: d.update(policy={"spec": "vw:bits=40"}), "policy.spec"),
    # a non-conversion worth more than any order would overflow what the model learns
    (lambda d: d["attribution"].update(default_reward=1e300), "attribution.default_reward"),
    (lambda d: d["actions"][1].update(id="x" * 65), "actions[1].id"),
    (lambda d: d["features"]["device"].update(categories=["tv", "pc", "tv"]),
     "features.device.categories"),
])
def test_errors_name_the_key(edit, key):
    doc = default_doc()
    edit(doc)
    with pytest.raises(ConfigError) as err:
        parse_config(doc, source="shop.toml")
    assert err.value.field == key
    assert str(err.value).startswith(f"shop.toml: {key}:")


def test_duplicate_action_and_pii_feature():
    doc = default_doc()
    doc["actions"].append({"id": "none"})
    with pytest.raises(ConfigError, match="'none' appears twice"):
        parse_config(doc)
    doc = default_doc()
    doc["features"]["email"] = {"type": "boolean"}
    with pytest.raises(ConfigError, match="personal data"):
        parse_config(doc)


def test_features_too_wide_for_the_policies_are_refused_before_any_matrix_is_built():
    """100,000 categories (product ids, say) would give linucb K matrices of 10^10 numbers:
    the config is refused naming the feature, and a schema at the limit loads."""
    from bandit.domain.features import MAX_DIM

    doc = default_doc()
    width = parse_config(doc).feature_space().dim - len(doc["features"]["device"]["categories"])
    doc["features"]["device"]["categories"] = [f"c{i}" for i in range(MAX_DIM - width)]
    assert parse_config(doc).feature_space().dim == MAX_DIM
    doc["features"]["device"]["categories"].append("one_more")
    with pytest.raises(ConfigError, match="513 numbers per visitor.*'device' alone takes"):
        parse_config(doc)
    doc["features"]["device"]["categories"] = [f"p{i}" for i in range(100_000)]
    with pytest.raises(ConfigError, match="'device' alone takes 100,001"):
        parse_config(doc)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[shop\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_schema_hash_ignores_actions_but_not_features():
    doc = default_doc()
    a = parse_config(doc)
    doc["actions"].append({"id": "new_banner", "kind": "banner"})
    b = parse_config(doc)
    assert a.schema_hash() == b.schema_hash() and a.config_hash() != b.config_hash()
    doc["features"]["device"]["categories"].append("tv")
    assert parse_config(doc).schema_hash() != a.schema_hash()


def test_example_shop_loads_and_matches_the_default_shop():
    from pathlib import Path

    example = load_config(Path(__file__).parents[3] / "examples" / "shop.toml")
    default = load_config()
    assert example.action_ids == default.action_ids
    assert example.schema_hash() == default.schema_hash()
    # the example adds guardrails; the embedded default (the simulator's world) has none
    assert example.rules and example.caps and example.budget is not None
    assert not default.rules and not default.caps and default.budget is None


def test_a_vw_spec_loads_where_vowpal_wabbit_is_not_installed(monkeypatch):
    """A host that only reads reports need not have the [vw] extra: the spec's names and types
    are checked, building it is left to serving (which names the extra)."""
    import policies

    doc = default_doc()
    doc["policy"] = {"spec": "vw:exploration=epsilon,epsilon=0.1"}
    monkeypatch.setitem(sys.modules, "vowpalwabbit", None)  # what `import` sees without it
    assert parse_config(doc).policy_spec == "vw:exploration=epsilon,epsilon=0.1"
    with pytest.raises(ImportError, match=r"cartwheel\[vw\]"):
        policies.make(doc["policy"]["spec"], n_actions=2, n_features=1)
    doc["policy"] = {"spec": "vw:exploraton=epsilon"}
    with pytest.raises(ConfigError, match="exploraton"):
        parse_config(doc)
