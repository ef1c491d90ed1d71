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

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ContextError
from .privacy import check_key, check_value

_MISSING = object()
#: what an undeclared category is stored as (a config may not declare it as a category)
UNKNOWN = "<unknown>"


def _as_float(v, name: str) -> float:
    """A JSON number as a float; an integer too large for a float is refused (400)."""
    try:
        return float(v)
    except OverflowError:
        raise ContextError(f"context key {name!r}: number too large", field=name) from None


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
        arr = None
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            arr = values.astype(float)
        elif all(type(v) is float or type(v) is int for v in values):
            try:
                arr = np.array(values, dtype=float)  # plain numbers (the common case): at once
            except OverflowError:  # an integer beyond a float's range: the slow path says which
                pass
        if arr is None:
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
        v = _as_float(v, self.name)
        if not math.isfinite(v):
            raise ContextError(f"context key {self.name!r} must be a finite number", field=self.name)
        return v

    @abstractmethod
    def encode_one(self, value, row: list, start: int):
        """Write one value's encoding into ``row[start:start + width]`` (the single-visitor
        path) and return the value as stored (``_MISSING``: not stored)."""


@dataclass(frozen=True)
class Categorical(Feature):
    """One-hot over declared ``categories`` plus an unknown bucket (also used when missing)."""

    name: str
    categories: tuple[str, ...]

    def __post_init__(self):
        if len(set(self.categories)) != len(self.categories) or not self.categories:
            raise ValueError(f"feature {self.name!r}: categories must be distinct and non-empty")
        if UNKNOWN in self.categories:
            raise ValueError(f"feature {self.name!r}: {UNKNOWN!r} is reserved for undeclared "
                             "values and cannot be a category")
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
        if code is not None:
            row[start + code] = 1.0
            return value
        code = self._code(value)
        row[start + code] = 1.0
        return _MISSING if value is _MISSING or value is None else UNKNOWN

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
    #: values outside [valid_low, valid_high] are refused (400), not clipped; None: no bound
    valid_low: float | None = None
    valid_high: float | None = None

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"feature {self.name!r}: need finite min < max")
        if (self.valid_low is not None and self.valid_high is not None
                and not self.valid_low <= self.valid_high):
            raise ValueError(f"feature {self.name!r}: need valid_min <= valid_max")
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

    def _check_valid(self, low, high) -> None:
        # low/high: the smallest and largest value given (ints compare exactly, any size)
        if self.valid_low is not None and low < self.valid_low or (
                self.valid_high is not None and high > self.valid_high):
            bad = low if self.valid_low is not None and low < self.valid_low else high
            raise ContextError(
                f"context key {self.name!r} must be within [{self.valid_low}, "
                f"{self.valid_high}], got {bad!r}", field=self.name)

    def encode_one(self, value, row, start):
        if type(value) is float and math.isfinite(value) or type(value) is int:
            v = value  # the common case, checked inline (bool is not int here: type() is exact)
        elif value is _MISSING or value is None:
            v = self.low if self.default is None else self.default
            row[start] = ((math.log1p(v) if self.log else v) - self._lo) / self._span
            return _MISSING
        else:
            v = self._number(value, 0.0)
        if self.valid_low is not None or self.valid_high is not None:
            self._check_valid(v, v)
        # clipped before any arithmetic (a huge int never becomes a float overflow)
        v = float(min(max(v, self.low), self.high))
        row[start] = ((math.log1p(v) if self.log else v) - self._lo) / self._span
        return v

    def encode(self, values, out):
        default = self.low if self.default is None else self.default
        arr = self._numbers(values, default)
        if self.valid_low is not None or self.valid_high is not None:
            given = arr[[v is not _MISSING and v is not None for v in values]]
            if len(given):  # missing values take the default, which is not refused
                self._check_valid(given.min(), given.max())
        arr = np.clip(arr, self.low, self.high)
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
            return _MISSING
        if value is True or value is False or (type(value) is int and value in (0, 1)):
            row[start] = float(value)
            return bool(value)
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

    def phase(self, value):
        """``value`` modulo the period, exactly (a huge integer never becomes a float first:
        sin(1e308) has no meaning and sin(inf) raises)."""
        if type(value) is int and float(self.period).is_integer():
            return value % int(self.period)
        return _as_float(value, self.name) % self.period

    def _value(self, value):
        """(stored value, value used) of one context value."""
        if value is _MISSING or value is None:
            return _MISSING, self.default
        if type(value) is not int:
            self._number(value, 0.0)  # refuses strings, booleans and non-finite numbers
        stored = self.phase(value)
        return stored, stored

    def encode_one(self, value, row, start):
        stored, v = self._value(value)
        angle = 2 * math.pi * v / self.period
        row[start], row[start + 1] = math.sin(angle), math.cos(angle)
        return stored

    def encode(self, values, out):
        try:
            v = np.mod(self._numbers(values, self.default), self.period)
        except ContextError:  # an integer too large for a float: modulo exactly, one by one
            v = np.array([float(self._value(x)[1]) for x in values])
        angle = 2 * np.pi * v / self.period
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
            return np.array([self._row(contexts[0])[0]])
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
            value = context.get(name, _MISSING)
            if value is _MISSING:
                continue
            try:
                value = encode_one(value, [0.0] * self.dim, start)
            except ContextError:
                # an undeclared or personal-looking category: the marker; a number that no
                # longer fits: left out (the default instead)
                value = UNKNOWN if isinstance(feature, Categorical) and isinstance(
                    value, str) else _MISSING
            if value is not _MISSING:
                out[name] = value
        return out

    def _row(self, context: Mapping) -> tuple[list[float], dict]:
        # plain Python beats per-column numpy calls ~10x for one row
        row = [0.0] * self.dim
        row[0] = 1.0
        stored = {}
        get = context.get
        for name, encode_one, start in self._plan:
            value = encode_one(get(name, _MISSING), row, start)
            if value is not _MISSING:
                stored[name] = value
        return row, stored

    def _encode(self, columns: Mapping[str, Sequence], n: int) -> np.ndarray:
        X = np.empty((n, self.dim), dtype=float)
        X[:, 0] = 1.0
        for feature, cols in zip(self.features, self._slices):
            feature.encode(columns[feature.name], X[:, cols])
        return X
