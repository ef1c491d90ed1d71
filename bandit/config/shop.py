"""``cartwheel.toml`` -> :class:`ShopConfig`, validated, with errors that name the offending key.

The embedded default shop ships as package data (``bandit/config/default_shop.toml``) and is what
:func:`load_config` returns without a path; it is also the simulator's default world.

>>> cfg = load_config()
>>> cfg.action_ids[:3]
('none', 'banner_brand', 'banner_urgency')
>>> cfg.objective.kind, cfg.holdout.control
('profit', 'none')
>>> parse_config({"actions": [{"id": "a"}]}, source="x.toml")
Traceback (most recent call last):
...
bandit.domain.errors.ConfigError: x.toml: [features] is missing: declare at least one context feature
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import msgspec

import policies
from bandit.config.schema import (
    Attribution,
    Holdout,
    Policy,
    Privacy,
    Promote,
    Server,
    Shop,
    Storage,
    config_error,
    describe,
    read_table,
)
from bandit.config.tables import (
    Table,
    parse_action,
    parse_budget,
    parse_caps,
    parse_feature,
    parse_placement,
    parse_rule,
)
from bandit.domain.errors import ConfigError, UnknownPlacementError
from bandit.domain.features import Feature, FeatureSpace
from bandit.domain.objective import Objective
from bandit.domain.records import ACTION_KINDS, DEFAULT_PLACEMENT, Action, Placement
from bandit.domain.rules import Budget, Cap, Rule, statically_empty

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ShopConfig:
    """A validated shop configuration (`cartwheel init` writes every key, commented)."""

    name: str
    actions: tuple[Action, ...]
    features: tuple[Feature, ...]
    objective: Objective
    policy_spec: str
    holdout: Holdout
    attribution: Attribution
    storage: Storage
    server: Server
    currency: str
    salt: str | None
    rules: tuple[Rule, ...]
    caps: tuple[Cap, ...]
    budget: Budget | None
    source: str
    raw: dict = field(repr=False, compare=False)
    #: the decision points, in config order; a config without ``[[placements]]`` has one,
    #: ``"default"``, holding every action
    placements: tuple[Placement, ...] = ()
    #: context keys marked ``trusted = true``: with signed requests, only a signed token sets them
    trusted_features: tuple[str, ...] = ()
    #: how challengers are measured and promoted (``[policy] promote``)
    promote: Promote = Promote()

    @property
    def action_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.actions)

    @property
    def retention_s(self) -> float | None:
        """How long decisions are kept (None: for ever): ``[storage] keep_days``, raised to the
        longest frequency-cap window and the attribution window, which read those rows
        (:mod:`bandit.store.retention`)."""
        if not self.storage.keep_days:
            return None
        return max(self.storage.keep_days * 86400.0, self.attribution.window_s,
                   *(cap.window_s for cap in self.caps))

    @property
    def costed_ids(self) -> frozenset[str]:
        """The ids of the actions that can cost money (incentives): their spend is budgeted
        and the report shows how much of it was cannibalized."""
        return frozenset(a.id for a in self.actions if a.costed)

    @property
    def placement_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.placements)

    @property
    def declares_placements(self) -> bool:
        """Whether the config has ``[[placements]]`` (then a request must name one)."""
        return "placements" in self.raw

    def placement(self, placement_id: str | None) -> Placement:
        """The placement a request names (None: the shop's only one, when it declares none);
        :class:`UnknownPlacementError` (field ``placement``) listing the shop's placements."""
        if placement_id is None and not self.declares_placements:
            return self.placements[0]
        for p in self.placements:
            if p.id == placement_id:
                return p
        if placement_id is None:
            raise UnknownPlacementError(f"placement is required: this shop decides at "
                                        f"{list(self.placement_ids)}", field="placement")
        raise UnknownPlacementError(f"unknown placement {str(placement_id)[:64]!r}; this shop's "
                          f"placements: {list(self.placement_ids)}", field="placement")

    def action_index(self, action_id: str) -> int:
        """Index of an action id (ValueError naming the known ids when absent)."""
        try:
            return self.action_ids.index(action_id)
        except ValueError:
            raise ValueError(f"unknown action {action_id!r}; known: {list(self.action_ids)}") from None

    def feature_space(self) -> FeatureSpace:
        return FeatureSpace(self.features)

    def action_features(self):
        """(K, p) numeric description of actions: kind one-hot plus declared attributes."""
        import numpy as np

        attr_names = sorted({k for a in self.actions for k, _ in a.attributes})
        rows = []
        for a in self.actions:
            attrs = dict(a.attributes)
            rows.append([float(a.kind == k) for k in ACTION_KINDS]
                        + [attrs.get(k, 0.0) for k in attr_names])
        names = [f"kind={k}" for k in ACTION_KINDS] + attr_names
        return np.asarray(rows, dtype=float), tuple(names)

    def schema_hash(self) -> str:
        """Hash of what a learned model depends on: the feature schema (not actions or policy).

        ``valid_min``/``valid_max`` only refuse requests, they do not change what the model
        sees: they stay out of the hash, so adding them keeps existing snapshots."""
        features = {name: {k: v for k, v in table.items() if k not in _REFUSAL_KEYS}
                    if isinstance(table, dict) else table
                    for name, table in self.raw.get("features", {}).items()}
        return _digest(features)

    def config_hash(self) -> str:
        """Hash of the whole configuration, for snapshot metadata."""
        return _digest(self.raw)


#: feature keys that do not change what a model sees (refusals, who may set a value)
_REFUSAL_KEYS = ("valid_min", "valid_max", "trusted")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_config(data: dict, *, source: str = "<config>") -> ShopConfig:
    """Validate a parsed TOML document into a :class:`ShopConfig`."""
    root = Table(data, "", source)
    root.get("schema_version", int, SCHEMA_VERSION, check=lambda v: v == SCHEMA_VERSION,
             expect=f"{SCHEMA_VERSION}")

    def settings(cls, name):
        root.used.add(name)
        return read_table(cls, data.get(name, {}), name, source)

    shop = settings(Shop, "shop")
    objective = settings(Objective, "objective")
    policy = settings(Policy, "policy")
    policy_spec = policy.spec
    try:
        policies.check_spec(policy_spec)
    except ValueError as exc:
        raise config_error(source, "policy.spec", str(exc))

    if "actions" not in data:
        raise ConfigError(f"{source}: [[actions]] is missing: declare at least one action",
                          field="actions")
    raw_actions = root.get("actions", list, expect="an array of tables [[actions]]")
    actions = tuple(parse_action(Table(a, f"actions[{i}]", source))
                    for i, a in enumerate(raw_actions))
    ids = [a.id for a in actions]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"{source}: actions: id {dup!r} appears twice", field="actions")
    try:  # now that the actions are known, what the policy's constructor refuses
        policies.check_spec(policy_spec, action_ids=ids)
    except ValueError as exc:
        raise config_error(source, "policy.spec", str(exc))
    for i, challenger in enumerate(policy.challengers):
        try:
            policies.check_spec(challenger, action_ids=ids)
        except ValueError as exc:
            raise config_error(source, f"policy.challengers[{i}]", str(exc))

    if "features" not in data:
        raise ConfigError(f"{source}: [features] is missing: declare at least one context feature",
                          field="features")
    feats = root.table("features")
    features, trusted = [], []
    for name in feats.data:
        table = feats.table(name)
        if isinstance(table.data, dict) and table.get("trusted", bool, False):
            trusted.append(name)  # taken only from a signed token in signed mode
        features.append(parse_feature(name, table))
    features = tuple(features)
    try:
        FeatureSpace(features)
    except ValueError as exc:
        raise ConfigError(f"{source}: features: {exc}", field="features") from None

    holdout = settings(Holdout, "holdout")
    if holdout.control is None:
        holdout = msgspec.structs.replace(holdout, control="none" if "none" in ids else ids[0])
    elif holdout.control not in ids:
        raise config_error(source, "holdout.control",
                           f"expected one of the action ids {ids}, got {holdout.control!r}")
    attribution = settings(Attribution, "attribution")
    if not abs(attribution.default_reward) <= objective.max_order_value:
        raise config_error(source, "attribution.default_reward",
                           f"expected {describe(Attribution, 'default_reward')}, got "
                           f"{attribution.default_reward!r}")
    storage = settings(Storage, "storage")
    server = settings(Server, "server")
    salt = settings(Privacy, "privacy").salt

    keys = {f.name for f in features}
    by_name = {f.name: f for f in features}
    rules = tuple(parse_rule(Table(r, f"rules[{i}]", source), ids, keys, by_name) for i, r in
                  enumerate(root.get("rules", list, [], expect="an array of tables [[rules]]")))
    empty = statically_empty(rules, ids)
    if empty is not None:
        raise ConfigError(f"{source}: rules: after rule {empty!r}, which applies to every "
                          "visitor, no action is left; loosen it", field="rules")
    caps = parse_caps(root.table("caps"), actions)
    budget = parse_budget(root.table("budget"))
    if budget is not None and budget.pacing != "none":
        unpriced = [policies.REGISTRY.get(policies.parse_spec(s)[0])
                    for s in (policy_spec, *policy.challengers)]
        cls = next((c for c in unpriced if c is not None and not c.priceable), None)
        if cls is not None:
            raise ConfigError(
                f"{source}: budget.pacing: {budget.pacing!r} prices incentives inside the "
                f"policy's choice, and {cls.name} does not choose by estimated rewards; use "
                "linucb, lints, egreedy or profit, or pacing = \"none\" (the hard stop only)",
                field="budget.pacing")
    placements = _placements(root, ids, policy_spec, holdout.control, policy.challengers)
    root.done()
    return ShopConfig(name=shop.name, actions=actions, features=features, objective=objective,
                      policy_spec=policy_spec, holdout=holdout, attribution=attribution,
                      storage=storage, server=server, currency=shop.currency, salt=salt,
                      rules=rules, caps=caps, budget=budget, source=source, raw=copy.deepcopy(data),
                      placements=placements, trusted_features=tuple(trusted),
                      promote=policy.promote)


def _placements(root: Table, ids: list[str], spec: str, control: str,
                challengers: tuple[str, ...]) -> tuple[Placement, ...]:
    """``[[placements]]``, or the one implicit placement of a config without them."""
    if "placements" not in root.data:
        root.used.add("placements")
        placement = Placement(DEFAULT_PLACEMENT, tuple(ids), spec, control,
                              challengers=challengers)
        _check_gate(placement, root.source, "policy.challengers")
        return (placement,)
    raw = root.get("placements", list, expect="an array of tables [[placements]]")
    if not raw:
        root.fail("placements", "is empty: declare at least one [[placements]] table, or "
                                "none at all (then every action is decided at one placement)")

    def check(own_spec, action_ids):
        policies.check_spec(own_spec, action_ids=action_ids)

    placements = tuple(parse_placement(Table(p, f"placements[{i}]", root.source), ids, spec,
                                       control, check, challengers) for i, p in enumerate(raw))
    for i, placement in enumerate(placements):
        _check_gate(placement, root.source, f"placements[{i}].challengers")
    seen = [p.id for p in placements]
    if len(set(seen)) != len(seen):
        dup = next(i for i in seen if seen.count(i) > 1)
        raise ConfigError(f"{root.source}: placements: id {dup!r} appears twice",
                          field="placements")
    return placements



def _check_gate(placement: Placement, source: str, key: str) -> None:
    """A placement's champion and challengers are different policies."""
    specs = [policies.canonical_spec(s) for s in (placement.spec, *placement.challengers)]
    twice = next((s for s in specs if specs.count(s) > 1), None)
    if twice is not None:
        where = "" if placement.id == DEFAULT_PLACEMENT else f" at placement {placement.id!r}"
        raise config_error(source, key, f"{twice!r} is both the policy{where} and a challenger "
                                        "(or listed twice): each policy may appear once")


def load_config(path: str | Path | None = None) -> ShopConfig:
    """Read and validate a ``cartwheel.toml``; None gives the embedded default shop."""
    if path is None:
        text = resources.files("bandit.config").joinpath("default_shop.toml").read_text("utf-8")
        source = "<default shop>"
    else:
        path = Path(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source=source)
