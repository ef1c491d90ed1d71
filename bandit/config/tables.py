"""Parsing the tables of ``cartwheel.toml``: every error names the file and the dotted key, and
unknown keys get a did-you-mean (the config module assembles them into a ShopConfig)."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from bandit.config.schema import config_error, shown, unknown_key
from bandit.domain.errors import ConfigError
from bandit.domain.features import (
    UNKNOWN,
    Boolean,
    Categorical,
    Cyclic,
    Feature,
    Numeric,
)
from bandit.domain.records import ACTION_KINDS, ACTIVATIONS, Action, Placement
from bandit.domain.rules import EFFECTS, OPERATORS, Budget, Cap, Condition, Rule


class Table:
    """A TOML table with its dotted path, for error messages that point at the key."""

    def __init__(self, data: Any, path: str, source: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{path}] must be a table", field=path)
        self.data, self.path, self.source = data, path, source
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str):
        raise config_error(self.source, self._key(key), message)

    def get(self, key: str, kind: type | tuple, default: Any = ..., *, check=None, expect=""):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                self.fail(key, f"is required ({expect or _kind_name(kind)})")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.fail(key, f"expected {expect or _kind_name(kind)}, got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(key, f"must be a finite number, got {value!r}")
        if check is not None and not check(value):
            self.fail(key, f"expected {expect}, got {shown(value)}")
        return value

    def table(self, key: str) -> "Table":
        self.used.add(key)
        return Table(self.data.get(key, {}), self._key(key), self.source)

    def done(self):
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(unknown[0], unknown_key(unknown[0], self.used))


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({str: "a string", float: "a number", int: "an integer", bool: "true/false",
                        list: "a list", dict: "a table"}[k] for k in kinds)


#: the longest action id a config may declare
MAX_ACTION_ID = 64


def parse_action(t: Table) -> Action:
    kind = t.get("kind", str, "none", check=lambda v: v in ACTION_KINDS,
                 expect=f"one of {ACTION_KINDS}")
    cost_pct = t.get("cost_pct", float, 0.0, check=lambda v: 0 <= v <= 100,
                     expect="a percentage in [0, 100]")
    cost_fixed = t.get("cost_fixed", float, 0.0, check=lambda v: v >= 0, expect="a number >= 0")
    attrs = t.table("attributes")
    attributes = tuple(sorted((k, attrs.get(k, float)) for k in attrs.data))
    # an id is stored with every decision and sent with every answer: a name, not a text
    action_id = t.get("id", str, check=lambda v: bool(v.strip()) and len(v) <= MAX_ACTION_ID,
                      expect=f"a non-empty string of at most {MAX_ACTION_ID} characters")
    t.done()
    return Action(action_id, kind, cost_pct, cost_fixed, attributes)


#: a placement id names a snapshot folder and a metrics label: a short name, not a text
PLACEMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def parse_placement(t: Table, ids: list[str], spec: str, control: str | None,
                    check_spec, challengers: tuple[str, ...] = ()) -> Placement:
    """One ``[[placements]]`` table; ``spec``, ``control`` and ``challengers`` are the
    shop's defaults (``[policy] spec``, ``[holdout] control``, ``[policy] challengers``),
    ``check_spec(spec, action_ids)`` raises ValueError for a spec the placement's actions
    refuse."""
    pid = t.get("id", str, check=lambda v: PLACEMENT_ID.fullmatch(v) is not None,
                expect="1-32 letters, digits, '_' or '-', starting with a letter or digit")
    actions = t.get("actions", list, expect="a non-empty list of action ids")
    unknown = [a for a in actions if a not in ids]
    if unknown or not actions:
        t.fail("actions", f"unknown action {unknown[0]!r}; known: {ids}" if unknown else
               "is empty: list at least one action id")
    if len(set(actions)) != len(actions):
        t.fail("actions", f"{next(a for a in actions if actions.count(a) > 1)!r} is listed twice")
    chosen = set(actions)
    actions = tuple(a for a in ids if a in chosen)  # the shop's order: masks are in it
    own_spec = t.get("spec", str, spec)
    try:
        check_spec(own_spec, list(actions))
    except ValueError as exc:
        t.fail("spec", str(exc))
    if "control" in t.data:
        own_control = t.get("control", str, check=lambda v: v in chosen,
                            expect=f"one of this placement's actions {list(actions)}")
    elif control in chosen:
        own_control = control
    else:
        t.fail("control", f"is required here: the holdout's control {control!r} is not one of "
                          f"this placement's actions {list(actions)}; name the action its "
                          "holdout visitors get here")
    activation = t.get("activation", str, "immediate", check=lambda v: v in ACTIVATIONS,
                       expect=" or ".join(map(repr, ACTIVATIONS)))
    own_challengers = t.get("challengers", list, list(challengers),
                            check=lambda v: all(isinstance(c, str) for c in v),
                            expect="a list of policy specs")
    for i, challenger in enumerate(own_challengers):
        try:
            check_spec(challenger, list(actions))
        except ValueError as exc:
            t.fail(f"challengers[{i}]", str(exc))
    t.done()
    return Placement(pid, actions, own_spec, own_control, activation == "deferred",
                     tuple(own_challengers))


def parse_feature(name: str, t: Table) -> Feature:
    ftype = t.get("type", str, check=lambda v: v in ("categorical", "numeric", "boolean", "cyclic"),
                  expect="categorical, numeric, boolean or cyclic")
    if ftype == "categorical":
        cats = t.get("categories", list, check=lambda v: v and all(
            isinstance(c, str) and c != UNKNOWN for c in v),
            expect=f"a non-empty list of strings ({UNKNOWN!r} is reserved)")
        if len(set(cats)) != len(cats):
            t.fail("categories", f"{next(c for c in cats if cats.count(c) > 1)!r} is listed "
                                 "twice")
        feature: Feature = Categorical(name, tuple(cats))
    elif ftype == "numeric":
        low, high = t.get("min", float), t.get("max", float)
        if not low < high:
            t.fail("max", f"must be greater than min ({low})")
        log = t.get("log", bool, False)
        if log and low <= -1:
            t.fail("min", "must be > -1 when log = true")
        valid_low, valid_high = t.get("valid_min", float, None), t.get("valid_max", float, None)
        if valid_low is not None and valid_high is not None and valid_low > valid_high:
            t.fail("valid_max", f"must be >= valid_min ({valid_low})")
        feature = Numeric(name, low, high, log, t.get("default", float, None), valid_low,
                          valid_high)
    elif ftype == "boolean":
        feature = Boolean(name)
    else:
        feature = Cyclic(name, t.get("period", float, check=lambda v: v > 0, expect="a number > 0"),
                         t.get("default", float, 0.0))
    t.done()
    return feature


def _check_rule_value(when: "Table", key: str, op: str, value, feature: Feature) -> None:
    """A rule value that can never match (a category the schema does not declare, a string
    for a number) is a typo: say so, with the closest declared value."""
    values = value if isinstance(value, list) else [value]
    if isinstance(feature, Categorical):
        for v in values:
            if v not in feature.categories:
                close = difflib.get_close_matches(str(v), feature.categories, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                when.fail(key, f"{v!r} is not a declared category of {key!r} "
                               f"{list(feature.categories)}{hint}")
    elif isinstance(feature, (Numeric, Cyclic)):
        if op in ("in", "not_in", "eq", "ne", "lt", "le", "gt", "ge") and any(
                isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            when.fail(key, f"{key!r} is a number; {value!r} can never match")
    elif isinstance(feature, Boolean) and any(not isinstance(v, bool) for v in values):
        when.fail(key, f"{key!r} is true or false; {value!r} can never match")


def parse_rule(t: Table, ids: list[str], keys: set[str],
                features: dict[str, Feature] | None = None) -> Rule:
    name = t.get("name", str, t.path)
    when = t.table("when")
    conditions = []
    for key, spec in when.data.items():
        if key not in keys:
            when.fail(key, f"not a declared context feature (declared: {sorted(keys)})")
        if not isinstance(spec, dict):
            spec = {"eq": spec}
        for op, value in spec.items():
            if op not in OPERATORS:
                when.fail(key, f"unknown operator {op!r}; use one of {sorted(OPERATORS)}")
            if op in ("in", "not_in") and not isinstance(value, list):
                when.fail(key, f"{op} needs a list")
            if features is not None:
                _check_rule_value(when, key, op, value, features[key])
            conditions.append(Condition(key, op, tuple(value) if isinstance(value, list)
                                        else value))
        when.used.add(key)
    then = t.table("then")
    effects = [e for e in EFFECTS if e in then.data]
    if len(effects) != 1:
        t.fail("then", "needs exactly one of only = [...], exclude = [...], force = \"id\"")
    effect = effects[0]
    value = then.get(effect, str if effect == "force" else list)
    actions = (value,) if effect == "force" else tuple(value)
    for a in actions:
        if a not in ids:
            then.fail(effect, f"unknown action {a!r}; known: {ids}")
    then.done()
    t.done()
    return Rule(name, tuple(conditions), effect, actions)


#: the longest frequency-cap window: a visitor's counts are kept that long
MAX_CAP_WINDOW_S = 366 * 86400.0
_CAP_WINDOW = f"seconds > 0, at most 366 days ({MAX_CAP_WINDOW_S:.0f})"


def parse_caps(t: Table, actions) -> tuple[Cap, ...]:
    caps = []
    ids, kinds = [a.id for a in actions], sorted({a.kind for a in actions})
    window = t.get("incentives_window_s", float, 86400.0,
                   check=lambda v: 0 < v <= MAX_CAP_WINDOW_S, expect=_CAP_WINDOW)
    if "incentives_per_visitor" in t.data:
        caps.append(Cap(t.get("incentives_per_visitor", int, check=lambda v: v >= 0,
                              expect="an integer >= 0"), window, incentives=True))
    for i, raw in enumerate(t.get("limits", list, [])):
        c = Table(raw, f"{t.path}.limits[{i}]", t.source)
        action = c.get("action", str, None, check=lambda v: v in ids, expect=f"one of {ids}")
        kind = c.get("kind", str, None, check=lambda v: v in kinds, expect=f"one of {kinds}")
        if (action is None) == (kind is None):
            c.fail("action", "give exactly one of action = \"id\" or kind = \"kind\"")
        caps.append(Cap(c.get("max_per_visitor", int, check=lambda v: v >= 0,
                              expect="an integer >= 0"),
                        c.get("window_s", float, check=lambda v: 0 < v <= MAX_CAP_WINDOW_S,
                              expect=_CAP_WINDOW),
                        action=action, kind=kind))
        c.done()
    t.done()
    return tuple(caps)


#: the values of ``[budget] pacing`` (:mod:`bandit.core.pacing`)
PACINGS = ("none", "even", "profile")


def parse_budget(t: Table) -> Budget | None:
    if not t.data:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    daily = t.get("daily_incentive_spend", float, check=lambda v: v >= 0, expect="an amount >= 0")
    tz = t.get("timezone", str, "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        t.fail("timezone", f"unknown time zone {tz!r} (use an IANA name like Europe/Berlin)")
    pacing = t.get("pacing", str, "none", check=lambda v: v in PACINGS,
                   expect=" or ".join(map(repr, PACINGS)))
    profile = t.get("profile", list, None, expect="a list of 24 weights, one per local hour")
    if profile is not None:
        if pacing != "profile":
            t.fail("profile", 'is read only with pacing = "profile"')
        if len(profile) != 24 or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
                and w >= 0 for w in profile) or not sum(profile) > 0:
            t.fail("profile", f"expected 24 weights >= 0, one per local hour from midnight, "
                              f"not all zero; got {profile!r}")
        profile = tuple(float(w) for w in profile)
    elif pacing == "profile":
        t.fail("profile", 'is required with pacing = "profile" (24 weights, one per local hour)')
    t.done()
    return Budget(daily, tz, pacing, profile)
