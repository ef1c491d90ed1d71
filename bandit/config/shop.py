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
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import policies
from bandit.config.tables import (
    Table,
    parse_action,
    parse_budget,
    parse_caps,
    parse_feature,
    parse_rule,
)
from bandit.domain.errors import ConfigError
from bandit.domain.features import Feature, FeatureSpace
from bandit.domain.objective import OBJECTIVES, Objective
from bandit.domain.records import ACTION_KINDS, Action
from bandit.domain.rules import Budget, Cap, Rule, statically_empty

SCHEMA_VERSION = 1
#: the longest attribution window: a longer one keeps decisions open for months (a window in
#: milliseconds by mistake would leave a non-additive policy never learning)
MAX_WINDOW_S = 90 * 86400.0
#: the largest request body the endpoint may accept (a decide or outcome body is a few KB)
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Holdout:
    """Share of visitors that always get ``control`` (sticky per hashed visitor)."""

    fraction: float = 0.05
    control: str = "none"


@dataclass(frozen=True, slots=True)
class Attribution:
    """How long an event waits for a conversion, and what it earns if none comes."""

    window_s: float = 86400.0
    default_reward: float = 0.0


@dataclass(frozen=True, slots=True)
class Storage:
    """Where and how durably events and snapshots are kept."""

    path: str = "cartwheel-data"
    synchronous: str = "normal"
    snapshot_every_updates: int = 5000
    snapshot_every_s: float = 300.0


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


@dataclass(frozen=True, slots=True)
class Server:
    """HTTP settings; the token may also come from ``CARTWHEEL_TOKEN``.

    ``allowed_origins``: web origins (``"https://shop.example"``) whose pages may call
    ``POST /v1/decide`` from the browser (CORS), or ``("*",)`` for any; empty: none.
    ``visitor_rate`` / ``visitor_burst``: decisions per second one visitor id may ask for in
    the long run, and at once (a token bucket; 429 beyond); 0 turns the limit off.
    """

    token: str | None = None
    max_body_bytes: int = 64 * 1024
    allowed_origins: tuple[str, ...] = ()
    visitor_rate: float = 5.0
    visitor_burst: int = 30


@dataclass(frozen=True)
class ShopConfig:
    """A validated shop configuration (`cartwheel init` writes every key, commented)."""

    name: str
    actions: tuple[Action, ...]
    features: tuple[Feature, ...]
    objective: Objective = Objective()
    policy_spec: str = "linucb"
    holdout: Holdout = Holdout()
    attribution: Attribution = Attribution()
    storage: Storage = Storage()
    server: Server = Server()
    currency: str = "EUR"
    salt: str | None = None
    rules: tuple[Rule, ...] = ()
    caps: tuple[Cap, ...] = ()
    budget: Budget | None = None
    source: str = "<default>"
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def action_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.actions)

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


_REFUSAL_KEYS = ("valid_min", "valid_max")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_config(data: dict, *, source: str = "<config>") -> ShopConfig:
    """Validate a parsed TOML document into a :class:`ShopConfig`."""
    root = Table(data, "", source)
    root.get("schema_version", int, SCHEMA_VERSION, check=lambda v: v == SCHEMA_VERSION,
             expect=f"{SCHEMA_VERSION}")
    shop = root.table("shop")
    name = shop.get("name", str, "shop")
    currency = shop.get("currency", str, "EUR")
    shop.done()

    obj = root.table("objective")
    objective = Objective(
        obj.get("kind", str, "profit", check=lambda v: v in OBJECTIVES, expect=f"one of {OBJECTIVES}"),
        obj.get("margin", float, 0.35, check=lambda v: 0 < v <= 1, expect="a margin in (0, 1]"),
        obj.get("max_order_value", float, 100_000.0, check=lambda v: 0 < v < 1e15,
                expect="an amount > 0 (the largest order the shop can take)"),
        obj.get("reward_clip", float, 3.0, check=lambda v: v >= 0,
                expect="a multiple >= 0 of a typical conversion's reward (0: no clipping)"))
    obj.done()

    pol = root.table("policy")
    policy_spec = pol.get("spec", str, "linucb")
    try:
        policies.check_spec(policy_spec)
    except ValueError as exc:
        pol.fail("spec", str(exc))
    pol.done()

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
        pol.fail("spec", str(exc))

    if "features" not in data:
        raise ConfigError(f"{source}: [features] is missing: declare at least one context feature",
                          field="features")
    feats = root.table("features")
    features = tuple(parse_feature(k, feats.table(k)) for k in feats.data)
    try:
        FeatureSpace(features)
    except ValueError as exc:
        raise ConfigError(f"{source}: features: {exc}", field="features") from None

    hold = root.table("holdout")
    holdout = Holdout(
        hold.get("fraction", float, 0.05, check=lambda v: 0 <= v < 1, expect="a fraction in [0, 1)"),
        hold.get("control", str, ids[0] if "none" not in ids else "none",
                 check=lambda v: v in ids, expect=f"one of the action ids {ids}"))
    hold.done()

    att = root.table("attribution")
    attribution = Attribution(
        att.get("window_s", float, 86400.0, check=lambda v: 0 < v <= MAX_WINDOW_S,
                expect=f"seconds > 0, at most 90 days ({MAX_WINDOW_S:.0f})"),
        att.get("default_reward", float, 0.0,
                check=lambda v: abs(v) <= objective.max_order_value,
                expect="a reward no larger than one order's (|reward| <= [objective] "
                       "max_order_value)"))
    att.done()

    sto = root.table("storage")
    storage = Storage(
        sto.get("path", str, "cartwheel-data"),
        sto.get("synchronous", str, "normal", check=lambda v: v in ("normal", "full"),
                expect="normal or full"),
        sto.get("snapshot_every_updates", int, 5000, check=lambda v: v > 0, expect="an integer > 0"),
        sto.get("snapshot_every_s", float, 300.0, check=lambda v: v > 0, expect="seconds > 0"))
    sto.done()

    srv = root.table("server")
    server = Server(
        srv.get("token", str, None),
        srv.get("max_body_bytes", int, 64 * 1024, check=lambda v: 1024 <= v <= MAX_BODY_BYTES,
                expect=f"an integer in [1024, {MAX_BODY_BYTES}] (16 MiB)"),
        tuple(srv.get("allowed_origins", list, [], check=lambda v: all(
            isinstance(o, str) and (o == "*" or _ORIGIN.fullmatch(o)) for o in v),
            expect='a list of origins like "https://shop.example" (scheme, host, optional '
                   'port; no path), or ["*"]')),
        srv.get("visitor_rate", float, 5.0, check=lambda v: v >= 0,
                expect="decisions per second >= 0 (0: no limit)"),
        srv.get("visitor_burst", int, 30, check=lambda v: v >= 1, expect="an integer >= 1"))
    srv.done()

    priv = root.table("privacy")
    salt = priv.get("salt", str, None)
    priv.done()

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
        cls = policies.REGISTRY.get(policies.parse_spec(policy_spec)[0])
        if cls is not None and not cls.priceable:
            raise ConfigError(
                f"{source}: budget.pacing: {budget.pacing!r} prices incentives inside the "
                f"policy's choice, and {cls.name} does not choose by estimated rewards; use "
                "linucb, lints, egreedy or profit, or pacing = \"none\" (the hard stop only)",
                field="budget.pacing")
    root.done()
    return ShopConfig(name=name, actions=actions, features=features, objective=objective,
                      policy_spec=policy_spec, holdout=holdout, attribution=attribution,
                      storage=storage, server=server, currency=currency, salt=salt,
                      rules=rules, caps=caps, budget=budget, source=source, raw=copy.deepcopy(data))


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
