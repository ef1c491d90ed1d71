"""The kinds of context feature a shop declares, each encoding one key into columns.

``Categorical`` (one-hot plus an "unknown" bucket for values the schema does not list),
``Numeric`` (clipped to a declared range, optionally log-scaled, mapped to [0, 1]),
``Boolean`` (0/1) and ``Cyclic`` (a sine/cosine pair, e.g. the hour of day). Each encodes a
whole column at once (``encode``) and a single value on the per-request path
(``encode_one``); :class:`bandit.domain.features.FeatureSpace` puts them together.

>>> Numeric("cart_value", 0, 200).columns
('cart_value',)
>>> Categorical("device", ("desktop", "mobile")).columns
('device=desktop', 'device=mobile', 'device=<unknown>')
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bandit.domain.errors import ContextError
from bandit.domain.privacy import check_value

#: a key the context did not send: its feature's default applies (as for a JSON null)
MISSING = object()
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
        """Write the encoding of ``values`` (one per row; ``MISSING`` allowed) into ``out``."""

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
        if v is MISSING or v is None:
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
        path) and return the value as stored (``MISSING``: not stored)."""


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
        return MISSING if value is MISSING or value is None else UNKNOWN

    def _code(self, v) -> int:
        code = self._index.get(v) if isinstance(v, str) else None
        if code is not None:
            return code
        if v is not MISSING and v is not None:
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
        elif value is MISSING or value is None:
            v = self.low if self.default is None else self.default
            row[start] = ((math.log1p(v) if self.log else v) - self._lo) / self._span
            return MISSING
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
            given = arr[[v is not MISSING and v is not None for v in values]]
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
        if value is MISSING or value is None:
            return MISSING
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
        if value is MISSING or value is None:
            return MISSING, self.default
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
