"""FeatureSpace: anonymous context dicts -> dense float matrix with a bias column.

A shop declares its context schema (in ``cartwheel.toml`` or in code); each feature encodes a
whole column at once. Categorical features get one-hot columns plus an "unknown" bucket for
values the schema does not list, numeric features are clipped to a declared range (optionally
log-scaled) and mapped to [0, 1], booleans are 0/1 and cyclic features (hour of day) become a
sine/cosine pair. Missing keys take the feature's default; unknown keys, wrong types, non-finite
numbers and anything that looks like personal data raise a :class:`ContextError` naming the key.

>>> space = FeatureSpace([Categorical("device", ("desktop", "mobile")),
...                       Numeric("cart_value", 0, 100), Boolean("returning")])
>>> space.names
('bias', 'device=desktop', 'device=mobile', 'device=<unknown>', 'cart_value', 'returning')
>>> space.transform([{"device": "mobile", "cart_value": 50.0, "returning": True}]).tolist()
[[1.0, 0.0, 1.0, 0.0, 0.5, 1.0]]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ContextError
from .privacy import check_key, check_value

_MISSING = object()


class Feature(ABC):
    """One declared context key and how it becomes columns."""

    name: str

    @property
    @abstractmethod
    def columns(self) -> tuple[str, ...]:
        """Names of the columns this feature produces."""

    @abstractmethod
    def encode(self, values: Sequence, out: np.ndarray) -> None:
        """Write the encoding of ``values`` (one per row; ``_MISSING`` allowed) into ``out``."""

    def _numbers(self, values: Sequence, default: float) -> np.ndarray:
        """Values as a float array, refusing strings, booleans and non-finite numbers."""
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            arr = values.astype(float)
        elif all(type(v) is float or type(v) is int for v in values):
            arr = np.array(values, dtype=float)  # plain numbers (the common case): at once
        else:
            return np.fromiter((self._number(v, default) for v in values), float, len(values))
        if not np.isfinite(arr).all():
            raise ContextError(f"context key {self.name!r} must be a finite number",
                               field=self.name)
        return arr

    def _number(self, v, default: float) -> float:
        """One value as a finite float (missing -> default); strings and booleans refused."""
        if v is _MISSING or v is None:
            return float(default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ContextError(
                f"context key {self.name!r} must be a number, got {type(v).__name__} {v!r}",
                field=self.name)
        v = float(v)
        if not math.isfinite(v):
            raise ContextError(f"context key {self.name!r} must be a finite number", field=self.name)
        return v

    @abstractmethod
    def encode_one(self, value, row: list, start: int) -> None:
        """Write one value's encoding into ``row[start:start + width]`` (the single-visitor path)."""


@dataclass(frozen=True)
class Categorical(Feature):
    """One-hot over declared ``categories`` plus an unknown bucket (also used when missing)."""

    name: str
    categories: tuple[str, ...]

    def __post_init__(self):
        if len(set(self.categories)) != len(self.categories) or not self.categories:
            raise ValueError(f"feature {self.name!r}: categories must be distinct and non-empty")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.categories)})

    @property
    def columns(self):
        return (*(f"{self.name}={c}" for c in self.categories), f"{self.name}=<unknown>")

    def encode(self, values, out):
        if isinstance(values, np.ndarray) and values.dtype.kind == "U":
            # one dict lookup per distinct value instead of per row
            uniq, inverse = np.unique(values, return_inverse=True)
            codes = np.fromiter((self._code(v) for v in uniq), np.intp, len(uniq))[inverse]
        else:  # a dict lookup per value; only values that miss it are looked at closer
            get = self._index.get
            codes = np.array([get(v, -1) if type(v) is str else -1 for v in values], np.intp)
            for i in np.flatnonzero(codes < 0):
                codes[i] = self._code(values[i])
        out[:] = 0.0
        out[np.arange(len(values)), codes] = 1.0

    def encode_one(self, value, row, start):
        # a declared category is the common case: one dict lookup, no further call
        code = self._index.get(value) if type(value) is str else None
        row[start + (self._code(value) if code is None else code)] = 1.0

    def _code(self, v) -> int:
        code = self._index.get(v) if isinstance(v, str) else None
        if code is not None:
            return code
        if v is not _MISSING and v is not None:
            if not isinstance(v, str):
                raise ContextError(
                    f"context key {self.name!r} must be a string, got {type(v).__name__} {v!r}",
                    field=self.name)
            check_value(self.name, v)
        return len(self.categories)


@dataclass(frozen=True)
class Numeric(Feature):
    """A number clipped to [low, high] (finite outliers only), optionally log1p, scaled to [0, 1]."""

    name: str
    low: float
    high: float
    log: bool = False
    default: float | None = None

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"feature {self.name!r}: need finite min < max")
        if self.log and self.low <= -1:
            raise ValueError(f"feature {self.name!r}: log scaling needs min > -1")
        # the scaled range, once: encode_one runs on every decision
        object.__setattr__(self, "_lo", float(self._t(self.low)))
        object.__setattr__(self, "_span", float(self._t(self.high)) - self._lo)

    @property
    def columns(self):
        return (self.name,)

    def _t(self, v):
        return np.log1p(v) if self.log else v

    def encode_one(self, value, row, start):
        if type(value) is float and math.isfinite(value) or type(value) is int:
            v = value  # the common case, checked inline (bool is not int here: type() is exact)
        else:
            v = self._number(value, self.low if self.default is None else self.default)
        v = min(max(v, self.low), self.high)
        row[start] = ((math.log1p(v) if self.log else v) - self._lo) / self._span

    def encode(self, values, out):
        default = self.low if self.default is None else self.default
        arr = np.clip(self._numbers(values, default), self.low, self.high)
        out[:, 0] = (self._t(arr) - self._lo) / self._span


@dataclass(frozen=True)
class Boolean(Feature):
    """A flag: true/false (0/1 accepted); missing is false."""

    name: str

    @property
    def columns(self):
        return (self.name,)

    def encode_one(self, value, row, start):
        if value is _MISSING or value is None:
            return
        if value is True or value is False or (type(value) is int and value in (0, 1)):
            row[start] = float(value)
        else:
            raise ContextError(f"context key {self.name!r} must be true or false, got {value!r}",
                               field=self.name)

    def encode(self, values, out):
        col = out[:, 0]
        if isinstance(values, np.ndarray) and values.dtype.kind == "b":
            col[:] = values
            return
        row = [0.0] * len(values)
        for i, v in enumerate(values):
            self.encode_one(v, row, i)
        col[:] = row


@dataclass(frozen=True)
class Cyclic(Feature):
    """A periodic number (hour of day, weekday) as a sine/cosine pair, so 23h sits next to 0h."""

    name: str
    period: float
    default: float = 0.0

    @property
    def columns(self):
        return (f"{self.name}:sin", f"{self.name}:cos")

    def encode_one(self, value, row, start):
        angle = 2 * math.pi * self._number(value, self.default) / self.period
        row[start], row[start + 1] = math.sin(angle), math.cos(angle)

    def encode(self, values, out):
        angle = 2 * np.pi * self._numbers(values, self.default) / self.period
        out[:, 0] = np.sin(angle)
        out[:, 1] = np.cos(angle)


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
            return np.array([self._encode_row(contexts[0])])
        columns = {f.name: [c.get(f.name, _MISSING) for c in contexts] for f in self.features}
        return self._encode(columns, len(contexts))

    def transform_columns(self, columns: Mapping[str, Sequence]) -> np.ndarray:
        """Encode columnar context (key -> values); faster for simulated batches."""
        for key in columns:
            self.check_keys({key: None})
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ContextError("all context columns must have the same length")
        n = lengths.pop() if lengths else 0
        filled = {f.name: columns.get(f.name, [_MISSING] * n) for f in self.features}
        return self._encode(filled, n)

    def encode_row(self, context: Mapping) -> list[float]:
        """Encode one context dict into a list of d floats (the decide path).

        Faster than :meth:`transform` for one or a few visitors: callers that decide for a
        batch of requests collect the rows and build one array.

        >>> FeatureSpace([Boolean("returning")]).encode_row({"returning": True})
        [1.0, 1.0]
        """
        self.check_keys(context)
        return self._encode_row(context)

    def _encode_row(self, context: Mapping) -> list[float]:
        # plain Python beats per-column numpy calls ~10x for one row
        row = [0.0] * self.dim
        row[0] = 1.0
        get = context.get
        for name, encode_one, start in self._plan:
            encode_one(get(name, _MISSING), row, start)
        return row

    def _encode(self, columns: Mapping[str, Sequence], n: int) -> np.ndarray:
        X = np.empty((n, self.dim), dtype=float)
        X[:, 0] = 1.0
        for feature, cols in zip(self.features, self._slices):
            feature.encode(columns[feature.name], X[:, cols])
        return X
