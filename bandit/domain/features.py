"""FeatureSpace: anonymous context dicts -> dense float matrix with a bias column.

A shop declares its context schema (in ``cartwheel.toml`` or in code); each feature encodes a
whole column at once. Categorical features get one-hot columns plus an "unknown" bucket for
values the schema does not list, numeric features are clipped to a declared range (optionally
log-scaled) and mapped to [0, 1], booleans are 0/1 and cyclic features (hour of day) become a
sine/cosine pair. Missing keys take the feature's default; unknown keys, wrong types, non-finite
numbers, numbers outside a declared valid range and anything that looks like personal data
raise a :class:`ContextError` naming the key.

What is stored of a context is what the model sees (:meth:`FeatureSpace.normalize_row`): an
undeclared category as :data:`UNKNOWN`, never the string sent; numbers clipped; cyclic values
modulo their period. Encoding the stored context gives the same row again.

>>> space = FeatureSpace([Categorical("device", ("desktop", "mobile")),
...                       Numeric("cart_value", 0, 100), Boolean("returning")])
>>> space.names
('bias', 'device=desktop', 'device=mobile', 'device=<unknown>', 'cart_value', 'returning')
>>> space.transform([{"device": "mobile", "cart_value": 50.0, "returning": True}]).tolist()
[[1.0, 0.0, 1.0, 0.0, 0.5, 1.0]]
>>> space.normalize_row({"device": "Jane Doe", "cart_value": 4111111111111111})[1]
{'device': '<unknown>', 'cart_value': 100.0}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from bandit.domain.errors import ContextError
from bandit.domain.feature_kinds import (
    MISSING,
    UNKNOWN,
    Boolean,
    Categorical,
    Cyclic,
    Feature,
    Numeric,
)
from bandit.domain.privacy import check_key

#: the most columns a context may encode to: linucb keeps a d x d matrix and its inverse per
#: action, so K = 20 actions at d = 512 hold 84 MB; a categorical with thousands of values
#: (product ids) would take gigabytes before the first decision
MAX_DIM = 512

__all__ = ["FeatureSpace", "Feature", "Categorical", "Numeric", "Boolean", "Cyclic", "UNKNOWN"]


class FeatureSpace:
    """Encodes context dicts with a declared schema into an (n, d) float array.

    Parameters
    ----------
    features : iterable of Feature
        The schema, in column order. Keys that name personal data are refused here already.
    """

    def __init__(self, features: Iterable[Feature]):
        self.features: tuple[Feature, ...] = tuple(features)
        keys = [f.name for f in self.features]
        if len(set(keys)) != len(keys):
            raise ValueError("feature names must be unique")
        for key in keys:
            check_key(key)
        self._keys = frozenset(keys)
        self._slices = []
        start = 1
        for f in self.features:
            self._slices.append(slice(start, start + len(f.columns)))
            start += len(f.columns)
        self.names: tuple[str, ...] = ("bias", *(c for f in self.features for c in f.columns))
        if len(self.names) > MAX_DIM:
            widest = max(self.features, key=lambda f: len(f.columns))
            raise ValueError(
                f"the features encode to {len(self.names):,} numbers per visitor (at most "
                f"{MAX_DIM:,}: the linear policies keep a d x d matrix per action); "
                f"{widest.name!r} alone takes {len(widest.columns):,}: list only the "
                f"categories that matter (other values share the {UNKNOWN!r} bucket)")
        # what the single-row path runs per feature, looked up once
        self._plan = tuple((f.name, f.encode_one, s.start)
                           for f, s in zip(self.features, self._slices))

    @property
    def dim(self) -> int:
        """Number of columns d, including the bias."""
        return len(self.names)

    @property
    def keys(self) -> tuple[str, ...]:
        """Context keys in schema order."""
        return tuple(f.name for f in self.features)

    def check_keys(self, context: Mapping) -> None:
        """Raise :class:`ContextError` for a key the schema does not declare."""
        if not isinstance(context, Mapping):
            raise ContextError(f"context must be an object, got {type(context).__name__}",
                               field="context")
        extra = context.keys() - self._keys
        if extra:
            key = sorted(map(str, extra))[0]
            check_key(key)
            raise ContextError(
                f"unknown context key {key!r}; the schema declares {sorted(self._keys)}",
                field=key)

    def transform(self, contexts: Sequence[Mapping]) -> np.ndarray:
        """Encode a list of context dicts into an (n, d) array."""
        for context in contexts:
            self.check_keys(context)
        if len(contexts) == 1:
            return np.array([self._row(contexts[0])[0]])
        columns = {f.name: [c.get(f.name, MISSING) for c in contexts] for f in self.features}
        return self._encode(columns, len(contexts))

    def transform_columns(self, columns: Mapping[str, Sequence]) -> np.ndarray:
        """Encode columnar context (key -> values); faster for simulated batches."""
        for key in columns:
            self.check_keys({key: None})
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ContextError("all context columns must have the same length")
        n = lengths.pop() if lengths else 0
        filled = {f.name: columns.get(f.name, [MISSING] * n) for f in self.features}
        return self._encode(filled, n)

    def encode_row(self, context: Mapping) -> list[float]:
        """Encode one context dict into a list of d floats (the decide path).

        Faster than :meth:`transform` for one or a few visitors: callers that decide for a
        batch of requests collect the rows and build one array.

        >>> FeatureSpace([Boolean("returning")]).encode_row({"returning": True})
        [1.0, 1.0]
        """
        return self.normalize_row(context)[0]

    def normalize_row(self, context: Mapping) -> tuple[list[float], dict]:
        """The encoded row and the context as stored: only what the model uses (undeclared
        categories as :data:`UNKNOWN`, numbers clipped, cyclic values modulo their period;
        missing keys left out). Encoding the stored context gives the same row.

        >>> space = FeatureSpace([Cyclic("hour", 24)])
        >>> space.normalize_row({"hour": 25})
        ([1.0, 0.25881904510252074, 0.9659258262890683], {'hour': 1})
        """
        self.check_keys(context)
        return self._row(context)

    def normalize_stored(self, context: Mapping) -> dict:
        """A context stored by an older cartwheel as this schema stores it now; values that
        no longer fit (undeclared keys, wrong types, personal-looking strings) are dropped or
        become :data:`UNKNOWN`, never kept as sent (the store migration uses this)."""
        out = {}
        for feature, (name, encode_one, start) in zip(self.features, self._plan):
            value = context.get(name, MISSING)
            if value is MISSING:
                continue
            try:
                value = encode_one(value, [0.0] * self.dim, start)
            except ContextError:
                # an undeclared or personal-looking category: the marker; a number that no
                # longer fits: left out (the default instead)
                value = UNKNOWN if isinstance(feature, Categorical) and isinstance(
                    value, str) else MISSING
            if value is not MISSING:
                out[name] = value
        return out

    def _row(self, context: Mapping) -> tuple[list[float], dict]:
        # plain Python beats per-column numpy calls ~10x for one row
        row = [0.0] * self.dim
        row[0] = 1.0
        stored = {}
        get = context.get
        for name, encode_one, start in self._plan:
            value = encode_one(get(name, MISSING), row, start)
            if value is not MISSING:
                stored[name] = value
        return row, stored

    def _encode(self, columns: Mapping[str, Sequence], n: int) -> np.ndarray:
        X = np.empty((n, self.dim), dtype=float)
        X[:, 0] = 1.0
        for feature, cols in zip(self.features, self._slices):
            feature.encode(columns[feature.name], X[:, cols])
        return X
