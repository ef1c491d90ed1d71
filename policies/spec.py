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
    """Split a comma-separated list of specs; a ``key=value`` token joins the spec before it,
    and a gate ``gated(a | b)`` is one spec whatever commas its members hold.

    >>> split_specs("linucb,gated(linucb | profit:conversion=logistic,bonus=ridge),uniform")
    ['linucb', 'gated(linucb | profit:conversion=logistic,bonus=ridge)', 'uniform']
    """
    specs: list[str] = []
    for token in _top_level(text):
        if gate_members(token) is not None:
            for member in gate_members(token):  # each member as a spec of its own
                if len(split_specs(member)) != 1:
                    raise ValueError(f"policy list {text!r}: the gate's member {member!r} is "
                                     "not one spec; members are separated by |")
            specs.append(token)
            continue
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


def _top_level(text: str) -> list[str]:
    """The comma-separated pieces of ``text`` outside parentheses, stripped, empty ones out."""
    pieces, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise ValueError(f"policy list {text!r}: a ')' without its '('")
        if char == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"policy list {text!r}: a '(' without its ')'")
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def format_spec(name: str, params: dict) -> str:
    """The canonical spec string (parameters sorted).

    >>> format_spec("linucb", {"lam": 2, "alpha": 0.5})
    'linucb:alpha=0.5,lam=2'
    """
    if not params:
        return name
    return name + ":" + ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def gate_members(spec: str) -> list[str] | None:
    """The specs of a gate's spec string ``gated(champion | challenger | ...)``, or None
    when ``spec`` names one policy.

    >>> gate_members("gated(linucb | profit:conversion=logistic)")
    ['linucb', 'profit:conversion=logistic']
    >>> gate_members("linucb") is None
    True
    """
    text = spec.strip()
    if not (text.startswith("gated(") and text.endswith(")")):
        return None
    return [part.strip() for part in text[len("gated("):-1].split("|")]


def canonical_spec(spec: str) -> str:
    """The spec a built policy reports as ``.spec`` (parameters sorted; for a gate, each
    member's), without building it.

    >>> canonical_spec("gated(linucb:lam=2,alpha=1 | uniform)")
    'gated(linucb:alpha=1,lam=2 | uniform)'
    """
    members = gate_members(spec)
    if members is None:
        return format_spec(*parse_spec(spec))
    return "gated(" + " | ".join(canonical_spec(m) for m in members) + ")"
