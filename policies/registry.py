"""Name -> policy class, filled by the ``@register`` decorator of each policy module."""

from __future__ import annotations

import difflib
import inspect
import keyword
import math

from .spec import format_spec, gate_members, parse_spec

REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a policy available under ``name`` in specs."""

    def wrap(cls):
        if name in REGISTRY:
            raise ValueError(f"policy name {name!r} registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


def accepted_params(cls) -> list[str]:
    """Keyword parameters a policy class accepts (its own and its bases')."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind == p.KEYWORD_ONLY}
    names -= {"feature_names", "action_ids", "action_features", "objective", "seed"}
    # a parameter named after a Python keyword is spelled with a trailing _ in the signature
    return sorted(n[:-1] if n.endswith("_") and keyword.iskeyword(n[:-1]) else n for n in names)


def _keyword_params(cls) -> dict:
    """Keyword-only constructor parameters over the class hierarchy (a subclass's win), by
    their spec names (a keyword's trailing ``_`` dropped)."""
    found = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind == p.KEYWORD_ONLY:
                    found[p.name.rstrip("_")] = p
    return found


def param_info(cls) -> list[tuple[str, object, str]]:
    """(name, default, one-line meaning) of each parameter a spec may set, from the code."""
    params, helps = _keyword_params(cls), {}
    for klass in reversed(cls.__mro__):
        helps.update(vars(klass).get("PARAMS", {}))
    return [(name, params[name].default, helps.get(name, "")) for name in accepted_params(cls)]


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _validated(name: str, params: dict) -> type:
    """The policy class for ``name``, after checking that it is registered and that every
    parameter is accepted and of its default's type (ValueError with a did-you-mean)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown policy {name!r}{_hint(name, REGISTRY)}; registered: "
                         f"{sorted(REGISTRY)}")
    cls = REGISTRY[name]
    allowed, signature = accepted_params(cls), _keyword_params(cls)
    for key, value in params.items():  # the spec string keeps what was written
        if key not in allowed:
            raise ValueError(f"policy {name!r} has no parameter {key!r}{_hint(key, allowed)}; "
                             f"accepted: {allowed}")
        _checked(name, key, value, signature[key].default, str(signature[key].annotation))
    return cls


def _checked(name: str, key: str, value, default, annotation: str = ""):
    """Raise a clear error unless a spec value has the type its default has (an int is a
    number too; a parameter annotated ``... | str`` takes a string as well)."""
    if isinstance(value, str) and "str" in annotation:
        return
    number = (isinstance(default, (int, float)) and not isinstance(default, bool)) or (
        default is None and ("float" in annotation or "int" in annotation))
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ValueError(f"{name}:{key}={value!r}: expected true or false")
    if number and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{name}:{key}={value!r}: expected a number")
    if number and not math.isfinite(value):  # nan passes every `< 0` check downstream
        raise ValueError(f"{name}:{key}={value!r}: expected a finite number")


def make(spec: str, *, n_actions: int, n_features: int, seed: int | None = None, **kwargs):
    """Build a policy from a spec string ``NAME`` or ``NAME:key=value,...``.

    Extra keyword arguments (``feature_names``, ``action_ids``, ``action_features``,
    ``objective``) are passed to the constructor; spec parameters are checked against the class.
    (A gate's spec: :func:`policies.factory.make`, which ``policies.make`` is.)
    """
    name, params = parse_spec(spec)
    cls = _validated(name, params)
    params = {(k + "_" if keyword.iskeyword(k) else k): v for k, v in params.items()}
    try:
        policy = cls(n_actions, n_features, seed=seed, **kwargs, **params)
    except TypeError as exc:
        raise ValueError(f"policy spec {spec!r}: {exc}") from None
    policy.spec = format_spec(name, {k.rstrip("_"): v for k, v in params.items()})
    return policy


def check_spec(spec: str, action_ids=None) -> str:
    """Validate a spec as a user wrote it (CLI or config): a known name, accepted parameters
    of the right types, and ``fixed`` with its ``action=`` (in code ``fixed`` defaults to
    action 0; a shop that writes ``fixed`` means some action, not the first one by accident).
    With the shop's ``action_ids`` the policy is also built once, on one feature, so what its
    constructor refuses (a value out of range, options that do nothing together, an unknown
    action) is refused here, not when the server starts - unless it needs an extra this
    environment lacks (``vw`` without Vowpal Wabbit: a ``report`` host need not have it; serving
    says so). Returns the spec; raises ValueError saying what to write instead.

    >>> check_spec("fixed")
    Traceback (most recent call last):
    ...
    ValueError: fixed needs action=ID: write e.g. fixed:action=none
    >>> check_spec("linucb:alpha=-1", action_ids=["none", "banner"])
    Traceback (most recent call last):
    ...
    ValueError: linucb: alpha must be >= 0, got -1
    """
    members = gate_members(spec)
    if members is not None:
        if len(members) < 2:
            raise ValueError(f"{spec}: a gate needs a champion and at least one challenger: "
                             "gated(CHAMPION | CHALLENGER)")
        for member in members:
            check_spec(member, action_ids)
        return spec
    name, params = parse_spec(spec)
    _validated(name, params)
    if name == "fixed" and "action" not in params:
        raise ValueError("fixed needs action=ID: write e.g. fixed:action=none")
    if action_ids is not None:
        try:
            make(spec, n_actions=len(action_ids), n_features=1, action_ids=list(action_ids))
        except ImportError:
            pass  # the names and types are checked; serving names the missing extra
    return spec
