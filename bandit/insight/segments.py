"""What the policy does, as a few segments a marketer can read and a shop can freeze.

A shallow decision tree (scikit-learn's CART, ``[segments]`` extra) is fitted to the policy's
greedy choice over recent visitors, on the context as the shop declared it (numbers as they
are, one column per category, flags as 0/1), so every split reads as a condition on one key.
Per leaf: its condition in plain words, its share of traffic, the action the policy prefers
there (highest mean probability) and how often it picks it, and the uplift of that action
over the control (over the runner-up where the control is preferred) estimated from the
segment's randomized logged decisions with self-normalized IPS and an influence-function
interval (:func:`simulator.evaluation.estimators.difference`). No reward model enters the uplift: a segment's
number must not be the model's opinion of itself. Small segments say so (``reliable``).

>>> from bandit.domain.rules import Condition
>>> describe([Condition("cart_value", "gt", 40.0), Condition("device", "ne", "mobile"),
...           Condition("cart_value", "le", 120.0), Condition("returning", "eq", True)])
'40 < cart_value ≤ 120 · device ≠ mobile · returning'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bandit.domain.features import UNKNOWN, Boolean, Categorical
from bandit.domain.rules import Condition

DEFAULT_DEPTH = 3
MAX_LEAVES = 8  # at the default depth; a deeper tree may have 2 ** depth
#: fewer randomized rows than this for either action: the uplift is shown but marked
MIN_ROWS = 30


@dataclass(frozen=True)
class Column:
    """One column of the readable matrix: a number or flag (``category`` None) or one
    category of a categorical key."""

    key: str
    category: str | None = None
    flag: bool = False


@dataclass(frozen=True)
class SegmentUplift:
    """Value of ``action`` minus value of ``versus`` over the segment's randomized rows on
    which both were eligible; ``rows_action``/``rows_versus`` of them chose each."""

    difference: float
    lower: float | None
    upper: float | None
    rows: int
    rows_action: int
    rows_versus: int
    reliable: bool


@dataclass(frozen=True)
class Segment:
    condition: str
    conditions: tuple[Condition, ...]
    share: float
    action: str
    picks: float
    versus: str
    uplift: SegmentUplift


@dataclass(frozen=True)
class Segments:
    """What ``cartwheel segments`` and ``GET /v1/segments`` show."""

    status: str  # "ok" or "unavailable"
    reason: str
    segments: tuple[Segment, ...] = ()
    depth: int = DEFAULT_DEPTH
    fidelity: float = 0.0
    control: str = ""
    objective: str = ""
    confidence: float = 0.95
    rows: int = 0
    model_version: int | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        for seg, original in zip(out["segments"], self.segments):
            seg["conditions"] = [asdict(c) for c in original.conditions]
        return out


def unavailable(reason: str, **fields) -> Segments:
    return Segments("unavailable", reason, **fields)


def readable(space, contexts) -> tuple[np.ndarray, list[Column]]:
    """The context as the shop declared it: a column per number, flag and category (cyclic
    values as their phase: splits on 'hour ≤ 12' read, sines do not)."""
    columns: list[Column] = []
    for f in space.features:
        if isinstance(f, Categorical):
            columns += [Column(f.name, c) for c in (*f.categories, UNKNOWN)]
        else:
            columns.append(Column(f.name, flag=isinstance(f, Boolean)))
    Z = np.zeros((len(contexts), len(columns)))
    at = {(c.key, c.category): j for j, c in enumerate(columns)}
    for f in space.features:
        default = 0.0 if isinstance(f, (Boolean, Categorical)) else float(
            getattr(f, "default", None) if getattr(f, "default", None) is not None
            else getattr(f, "low", 0.0))
        for i, ctx in enumerate(contexts):
            v = ctx.get(f.name)
            if isinstance(f, Categorical):
                Z[i, at[(f.name, v if v in f.categories else UNKNOWN)]] = 1.0
            else:
                Z[i, at[(f.name, None)]] = default if v is None else float(v)
    return Z, columns


def _path_conditions(tree, columns: list[Column], space) -> dict[int, list[Condition]]:
    """Per leaf node id, the rule conditions on the way to it (sklearn: left is ``<=``)."""
    t = tree.tree_
    categories = {f.name: f.categories for f in space.features if isinstance(f, Categorical)}
    out: dict[int, list[Condition]] = {}

    def walk(node: int, conds: list[Condition]):
        if t.children_left[node] == -1:
            out[node] = conds
            return
        col, thr = columns[t.feature[node]], float(t.threshold[node])
        if col.category is not None:  # one-hot: left = not this category
            declared = [c for c in categories[col.key]]
            if col.category == UNKNOWN:
                left, right = (Condition(col.key, "in", tuple(declared)),
                               Condition(col.key, "not_in", tuple(declared)))
            else:
                left, right = (Condition(col.key, "ne", col.category),
                               Condition(col.key, "eq", col.category))
        elif col.flag:
            left, right = Condition(col.key, "eq", False), Condition(col.key, "eq", True)
        else:
            left, right = Condition(col.key, "le", thr), Condition(col.key, "gt", thr)
        walk(t.children_left[node], conds + [left])
        walk(t.children_right[node], conds + [right])

    walk(0, [])
    return out


def simplify(conditions: list[Condition]) -> tuple[Condition, ...]:
    """One condition per key and operator: the tightest bound of each side, equality over
    inequalities, several ``ne`` as one ``not_in``."""
    by_key: dict[str, list[Condition]] = {}
    for c in conditions:
        by_key.setdefault(c.key, []).append(c)
    out: list[Condition] = []
    for key, conds in by_key.items():
        eq = [c for c in conds if c.op == "eq"]
        if eq:  # a category or a flag: equality says it all
            out.append(eq[-1])
            continue
        lowers = [c.value for c in conds if c.op == "gt"]
        uppers = [c.value for c in conds if c.op == "le"]
        if lowers:
            out.append(Condition(key, "gt", max(lowers)))
        if uppers:
            out.append(Condition(key, "le", min(uppers)))
        excluded = {c.value for c in conds if c.op == "ne"}
        unknown = [c for c in conds if c.op == "not_in"]  # none of the declared categories
        declared = [c for c in conds if c.op == "in"]  # any declared category
        if unknown:
            out.append(unknown[-1])
        elif declared:
            out.append(Condition(key, "in", tuple(v for v in declared[-1].value
                                                  if v not in excluded)))
        elif len(excluded) == 1:
            out.append(Condition(key, "ne", excluded.pop()))
        elif excluded:
            out.append(Condition(key, "not_in", tuple(sorted(excluded))))
    return tuple(out)


def _number(v: float) -> str:
    return f"{v:.4g}"


def describe(conditions) -> str:
    """Plain words for a leaf's conditions (those of :func:`simplify`, or raw ones)."""
    parts = []
    for key, conds in _grouped(simplify(list(conditions))).items():
        ops = {c.op: c.value for c in conds}
        if "gt" in ops and "le" in ops:
            parts.append(f"{_number(ops['gt'])} < {key} ≤ {_number(ops['le'])}")
        elif "gt" in ops:
            parts.append(f"{key} > {_number(ops['gt'])}")
        elif "le" in ops:
            parts.append(f"{key} ≤ {_number(ops['le'])}")
        elif "eq" in ops and isinstance(ops["eq"], bool):
            parts.append(key if ops["eq"] else f"not {key}")
        elif "eq" in ops:
            parts.append(f"{key} = {ops['eq']}")
        elif "ne" in ops:
            parts.append(f"{key} ≠ {ops['ne']}")
        elif "not_in" in ops:
            parts.append(f"{key} not in {{{', '.join(map(str, ops['not_in']))}}}")
        elif "in" in ops:
            parts.append(f"{key} in {{{', '.join(map(str, ops['in']))}}}")
    return " · ".join(parts) or "all visitors"


def _grouped(conditions) -> dict[str, list[Condition]]:
    out: dict[str, list[Condition]] = {}
    for c in conditions:
        out.setdefault(c.key, []).append(c)
    return out


def members(conditions, Z: np.ndarray, columns: list[Column]) -> np.ndarray:
    """Which rows of a :func:`readable` matrix a segment's conditions select (what the
    written rule selects on the contexts; vectorized)."""
    at = {(c.key, c.category): j for j, c in enumerate(columns)}
    keep = np.ones(len(Z), dtype=bool)
    for c in conditions:
        if (c.key, None) in at:  # a number or a flag
            v = Z[:, at[(c.key, None)]]
            keep &= {"le": v <= c.value, "gt": v > c.value, "eq": v == float(c.value),
                     "ne": v != float(c.value)}[c.op]
        else:
            def one_of(values):
                return Z[:, [at[(c.key, x)] for x in values]].sum(axis=1) > 0
            values = c.value if isinstance(c.value, tuple) else (c.value,)
            keep &= one_of(values) if c.op in ("eq", "in") else ~one_of(values)
    return keep


def uplift(data, rows: np.ndarray, a: int, b: int, alpha: float) -> SegmentUplift:
    """SNIPS value of always-``a`` minus always-``b`` over the randomized ``rows`` of ``data``
    (a :class:`simulator.worlds.simulated_log.LoggedData`) on which both were eligible."""
    from simulator.evaluation.estimators import difference

    sel = rows & data.randomized & data.mask[:, a] & data.mask[:, b]
    n = int(sel.sum())
    acts = data.actions[sel]
    n_a, n_b = int((acts == a).sum()), int((acts == b).sum())
    if n_a == 0 or n_b == 0 or n < 2:
        return SegmentUplift(0.0, None, None, n, n_a, n_b, False)
    K = data.mask.shape[1]
    est = difference("snips", data.rewards[sel], acts, data.propensities[sel],
                     np.eye(K)[np.full(n, a)], np.eye(K)[np.full(n, b)], alpha)
    return SegmentUplift(est.value, est.lower, est.upper, n, n_a, n_b,
                         min(n_a, n_b) >= MIN_ROWS)


def _nothing_to_compare(data, rows) -> SegmentUplift:
    """A shop with one action: there is nothing to be better than."""
    n = int((rows & data.randomized).sum())
    return SegmentUplift(0.0, None, None, n, n, n, False)


def find(data, probabilities: np.ndarray, space, control: str, *, depth: int = DEFAULT_DEPTH,
         max_leaves: int | None = None, alpha: float = 0.05, objective: str = "",
         model_version: int | None = None) -> Segments:
    """Segments of the policy whose action probabilities over ``data``'s rows (a
    :class:`~simulator.worlds.simulated_log.LoggedData` with contexts) are ``probabilities`` (n, K)."""
    try:
        from sklearn.tree import DecisionTreeClassifier
    except ImportError:
        return unavailable("segments need scikit-learn: pip install 'cartwheel[segments]'")
    n = len(data)
    if n < 2 * MIN_ROWS:
        return unavailable(f"too few closed decisions for segments yet ({n}; they need "
                           f"{2 * MIN_ROWS})", rows=n, model_version=model_version)
    ids = list(data.action_ids)
    Z, columns = readable(space, data.contexts)
    choice = probabilities.argmax(axis=1)
    tree = DecisionTreeClassifier(max_depth=depth, max_leaf_nodes=max_leaves or 2 ** depth,
                                  min_samples_leaf=max(MIN_ROWS, n // 100), random_state=0)
    tree.fit(Z, choice)
    leaf = tree.apply(Z)
    paths = _path_conditions(tree, columns, space)
    k_control = ids.index(control)
    fidelity = float((tree.predict(Z) == choice).mean())
    found = []
    for node in sorted(set(leaf), key=lambda v: -(leaf == v).sum()):
        conds = simplify(paths[node])
        rows = members(conds, Z, columns)  # == (leaf == node), by the rule's own semantics
        mean_p = probabilities[rows].mean(axis=0)
        a = int(mean_p.argmax())
        others = [int(j) for j in np.argsort(mean_p)[::-1] if j != a]
        b = k_control if a != k_control else (others[0] if others else a)
        found.append(Segment(describe(conds), conds, float(rows.mean()), ids[a],
                             float(mean_p[a]), ids[b], uplift(data, rows, a, b, alpha)
                             if b != a else _nothing_to_compare(data, rows)))
    return Segments("ok", "", tuple(found), depth, fidelity, control, objective, 1 - alpha, n,
                    model_version)


def unsafe(segment: Segment, control: str) -> str | None:
    """Why freezing ``segment`` as a rule would be a guess (None: its uplift interval lies
    above zero, on enough data, for an action other than the control)."""
    u = segment.uplift
    if segment.action == control:
        return f"it prefers the control ({control}): a rule would change nothing"
    if not u.reliable:
        return (f"it has too few data ({u.rows:,} rows) for its interval to be trusted "
                "(few data)")
    if u.lower is None or u.lower <= 0:
        return (f"its uplift interval [{_bound(u.lower)}, {_bound(u.upper)}] is not above "
                "zero: the segment may lose money under the rule")
    return None


def rules_toml(segments: Segments, chosen: list[int] | None = None,
               force: bool = False) -> str:
    """``[[rules]]`` tables forcing each chosen segment's action (1-based indices; default:
    every segment :func:`unsafe` finds nothing against). A chosen segment that is unsafe is
    refused (ValueError saying why, in one line) unless ``force``."""
    picked = (chosen if chosen is not None else
              [i for i, s in enumerate(segments.segments, 1)
               if unsafe(s, segments.control) is None])
    for i in picked:
        if not 1 <= i <= len(segments.segments):
            raise ValueError(f"segment {i} does not exist (1..{len(segments.segments)})")
        why = unsafe(segments.segments[i - 1], segments.control)
        if why is not None and not force:
            raise ValueError(f"segment {i} is not written: {why}; add --force to write it "
                             "anyway")
    lines = ["# Learned segments frozen as rules (cartwheel segments --write-rules).",
             "# Append to the shop's config (cat this >> shop.toml): each visitor of a segment",
             "# then gets its action outright (p = 1, not randomized: the learner stops",
             "# exploring there). A visitor missing a key of a condition is not matched.", ""]
    for i in picked:
        s = segments.segments[i - 1]
        u = s.uplift
        lines += [f"# segment {i}: {s.share:.1%} of traffic; uplift over {s.versus} "
                  f"{u.difference:+.4g} [{_bound(u.lower)}, {_bound(u.upper)}]",
                  "[[rules]]", f"name = {_toml(f'learned segment {i}: {s.condition}')}",
                  "when = { " + ", ".join(f"{_key(k)} = {{ " + ", ".join(
                      f"{c.op} = {_toml(c.value)}" for c in conds) + " }"
                      for k, conds in _grouped(s.conditions).items()) + " }",
                  f"then = {{ force = {_toml(s.action)} }}", ""]
    return "\n".join(lines)


def _bound(v) -> str:
    return "n/a" if v is None else f"{v:+.4g}"


def _toml(v) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)  # a TOML basic string is a JSON string


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else _toml(k)
