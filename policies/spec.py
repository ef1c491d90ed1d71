"""Policy spec strings: ``NAME`` or ``NAME:key=value,key=value``, the same in CLI, config and code.

>>> parse_spec("linucb:alpha=0.5,lam=2")
('linucb', {'alpha': 0.5, 'lam': 2})
>>> split_specs("linucb,vw:exploration=epsilon,epsilon=0.05,lints")
['linucb', 'vw:exploration=epsilon,epsilon=0.05', 'lints']
"""

from __future__ import annotations


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split a spec into its name and typed parameters (ints, floats, booleans, strings)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty policy spec; expected NAME or NAME:key=value,...")
    name, _, rest = spec.strip().partition(":")
    params: dict = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"policy spec {spec!r}: expected key=value, got {item!r}")
        if key.strip() in params:
            raise ValueError(f"policy spec {spec!r}: parameter {key.strip()!r} given twice")
        params[key.strip()] = _value(value.strip())
    return name.strip(), params


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs; a ``key=value`` token joins the spec before it."""
    specs: list[str] = []
    for token in filter(None, (t.strip() for t in text.split(","))):
        if " " in token:
            fixed = ":".join(token.split(None, 1)) if "=" in token else token.replace(" ", ",")
            raise ValueError(f"policy list {text!r}: {token!r} has a space; parameters follow "
                             f"a colon and specs are separated by commas, e.g. {fixed!r}")
        if "=" in token and ":" not in token:
            if not specs:
                raise ValueError(f"policy list {text!r} starts with a parameter {token!r}; "
                                 "write NAME:key=value")
            joiner = "," if ":" in specs[-1] else ":"
            specs[-1] = f"{specs[-1]}{joiner}{token}"
        else:
            specs.append(token)
    return specs


def format_spec(name: str, params: dict) -> str:
    """The canonical spec string (parameters sorted).

    >>> format_spec("linucb", {"lam": 2, "alpha": 0.5})
    'linucb:alpha=0.5,lam=2'
    """
    if not params:
        return name
    return name + ":" + ",".join(f"{k}={v}" for k, v in sorted(params.items()))
