"""Name -> policy class, filled by the ``@register`` decorator of each policy module."""

from __future__ import annotations

import inspect
import keyword

from .spec import format_spec, parse_spec

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
    names -= {"feature_names", "action_ids", "action_features", "seed"}
    # a parameter named after a Python keyword is spelled with a trailing _ in the signature
    return sorted(n[:-1] if n.endswith("_") and keyword.iskeyword(n[:-1]) else n for n in names)


def make(spec: str, *, n_actions: int, n_features: int, seed: int | None = None, **kwargs):
    """Build a policy from a spec string ``NAME`` or ``NAME:key=value,...``.

    Extra keyword arguments (``feature_names``, ``action_ids``, ``action_features``) are passed
    to the constructor; spec parameters win over nothing and are checked against the class.
    """
    name, params = parse_spec(spec)
    if name not in REGISTRY:
        raise ValueError(f"unknown policy {name!r}; registered: {sorted(REGISTRY)}")
    cls = REGISTRY[name]
    allowed = accepted_params(cls)
    for key in params:
        if key not in allowed:
            raise ValueError(f"policy {name!r} has no parameter {key!r}; accepted: {allowed}")
    params = {(k + "_" if keyword.iskeyword(k) else k): v for k, v in params.items()}
    try:
        policy = cls(n_actions, n_features, seed=seed, **kwargs, **params)
    except TypeError as exc:
        raise ValueError(f"policy spec {spec!r}: {exc}") from None
    policy.spec = format_spec(name, {k.rstrip("_"): v for k, v in params.items()})
    return policy
