"""The declarative schema of ``cartwheel.toml``'s settings tables: one msgspec Struct per table,
each field with its type, default, bounds and the words an error (and the reference page) uses.

``[objective]`` is :class:`bandit.domain.objective.Objective` itself; ``[shop]``, ``[policy]``,
``[holdout]``, ``[attribution]``, ``[storage]``, ``[server]`` and ``[privacy]`` are declared here.
The tables of lists and named entries (``[[actions]]``, ``[features.*]``, ``[[rules]]``,
``[caps]``, ``[budget]``) are parsed by :mod:`bandit.config.tables`; checks that join tables
(the holdout's control is an action, the default reward is no larger than an order) are in
:func:`bandit.config.shop.parse_config`.

:func:`read_table` turns msgspec's errors into the config's own: the file, the dotted key,
what was expected (the field's description) and what was found, and a did-you-mean for an
unknown key.

>>> read_table(Holdout, {"fraction": 0.1}, "holdout", "shop.toml")
Holdout(fraction=0.1, control=None)
>>> read_table(Holdout, {"fraction": 1.5}, "holdout", "shop.toml")
Traceback (most recent call last):
...
bandit.domain.errors.ConfigError: shop.toml: holdout.fraction: expected a fraction in [0, 1), got 1.5
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from typing import Annotated

import msgspec
from msgspec import Meta

from bandit.domain.errors import ConfigError

#: the longest attribution window: a longer one keeps decisions open for months (a window in
#: milliseconds by mistake would leave a non-additive policy never learning)
MAX_WINDOW_S = 90 * 86400.0
#: the largest request body the endpoint may accept (a decide or outcome body is a few KB)
MAX_BODY_BYTES = 16 * 1024 * 1024
#: a web origin (scheme, host, optional port), or "*" for any
ORIGIN = r"^(\*|https?://[A-Za-z0-9.-]+(:\d{1,5})?)$"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A settings table (read with :func:`read_table`)."""


class Shop(Settings):
    """Who the shop is."""

    name: Annotated[str, Meta(description="the shop's name, shown on the dashboard")] = "shop"
    currency: Annotated[str, Meta(description="the currency of order values")] = "EUR"


class Promote(Settings):
    """How challengers are measured and promoted (the promotion gate, docs/architecture.md,
    "The promotion gate")."""

    share: Annotated[float, Meta(ge=0, lt=1, description=(
        "the share of treated traffic the challengers split while measured, in [0, 1) "
        "(0: shadow mode, they learn but never act nor are promoted)"))] = 0.2
    confidence: Annotated[float, Meta(ge=0.5, lt=1, description=(
        "confidence of the anytime-valid bounds, in [0.5, 1)"))] = 0.95
    min_effect: Annotated[float, Meta(ge=0, description=(
        "reward per visitor a challenger must be better by, >= 0"))] = 0.0
    mode: Annotated[typing.Literal["auto", "manual"], Meta(description=(
        "auto: the gate promotes; manual: it reports and `cartwheel policies --promote` "
        "promotes"))] = "auto"


class Policy(Settings):
    """The learning algorithm, and the challengers that may replace it."""

    spec: Annotated[str, Meta(description="a policy spec: NAME or NAME:key=value,... "
                                          "(`cartwheel policies` lists them)")] = "linucb"
    challengers: Annotated[tuple[str, ...], Meta(description=(
        "policy specs measured against spec on a share of the traffic; one whose bound "
        "clears becomes the champion"))] = ()
    promote: Annotated[Promote, Meta(description=(
        "a table: share in [0, 1), confidence in [0.5, 1), min_effect >= 0, mode auto or "
        "manual"))] = Promote()


class Holdout(Settings):
    """Share of visitors that always get ``control`` (sticky per hashed visitor)."""

    fraction: Annotated[float, Meta(ge=0, lt=1, description="a fraction in [0, 1)")] = 0.05
    #: one of the action ids (None: "none" if the shop has it, else its first action)
    control: Annotated[str | None, Meta(description="one of the action ids")] = None


class Attribution(Settings):
    """How long an event waits for a conversion, and what it earns if none comes."""

    window_s: Annotated[float, Meta(gt=0, le=MAX_WINDOW_S, description=(
        f"seconds > 0, at most 90 days ({MAX_WINDOW_S:.0f})"))] = 86400.0
    default_reward: Annotated[float, Meta(description=(
        "a reward no larger than one order's (|reward| <= [objective] max_order_value)"))] = 0.0


class Storage(Settings):
    """Where and how durably events and snapshots are kept."""

    path: Annotated[str, Meta(description="a directory")] = "cartwheel-data"
    synchronous: Annotated[typing.Literal["normal", "full"], Meta(
        description="normal or full")] = "normal"
    snapshot_every_updates: Annotated[int, Meta(gt=0, description="an integer > 0")] = 5000
    snapshot_every_s: Annotated[float, Meta(gt=0, description="seconds > 0")] = 300.0
    keep_days: Annotated[float, Meta(ge=0, description="days >= 0 (0: keep everything)")] = 90.0


class Server(Settings):
    """HTTP settings; the token may also come from ``CARTWHEEL_TOKEN``.

    ``allowed_origins``: web origins (``"https://shop.example"``) whose pages may call
    ``POST /v1/decide`` from the browser (CORS), or ``("*",)`` for any; empty: none.
    ``visitor_rate`` / ``visitor_burst``: decisions per second one visitor id may ask for in
    the long run, and at once (a token bucket; 429 beyond); 0 turns the limit off.
    ``address_rate`` / ``address_burst``: the same per client address for untrusted calls
    (pages: decide and activate without the token); the address is the peer's, or the last
    one a ``trusted_proxies`` peer put in ``X-Forwarded-For``. ``signed_requests``: every
    untrusted decide carries a token the shop's backend signed (docs/integration.md).
    ``header_timeout_s``, ``idle_timeout_s``, ``body_timeout_s``, ``max_connections``,
    ``max_header_bytes``: limits on the socket (:mod:`bandit.http.connections`).
    ``global_rate`` / ``global_burst``: all untrusted calls together (off by default: a
    shop's own traffic peaks are not an attack).
    """

    token: Annotated[str | None, Meta(description="a string")] = None
    read_token: Annotated[str | None, Meta(description="a string")] = None
    behind_https_proxy: Annotated[bool, Meta(description="true/false")] = False
    open_metrics: Annotated[bool, Meta(description="true/false")] = False
    max_body_bytes: Annotated[int, Meta(ge=1024, le=MAX_BODY_BYTES, description=(
        f"an integer in [1024, {MAX_BODY_BYTES}] (16 MiB)"))] = 64 * 1024
    allowed_origins: Annotated[tuple[Annotated[str, Meta(pattern=ORIGIN)], ...], Meta(
        description='a list of origins like "https://shop.example" (scheme, host, optional '
                    'port; no path), or ["*"]')] = ()
    visitor_rate: Annotated[float, Meta(ge=0, description=(
        "decisions per second >= 0 (0: no limit)"))] = 5.0
    visitor_burst: Annotated[int, Meta(ge=1, description="an integer >= 1")] = 30
    address_rate: Annotated[float, Meta(ge=0, description=(
        "requests per second >= 0 (0: no limit)"))] = 50.0
    address_burst: Annotated[int, Meta(ge=1, description="an integer >= 1")] = 200
    global_rate: Annotated[float, Meta(ge=0, description=(
        "requests per second >= 0 (0: off)"))] = 0.0
    global_burst: Annotated[int, Meta(ge=1, description="an integer >= 1")] = 1000
    trusted_proxies: Annotated[tuple[str, ...], Meta(description=(
        "a list of IP addresses whose X-Forwarded-For is believed"))] = ()
    signed_requests: Annotated[bool, Meta(description="true/false")] = False
    header_timeout_s: Annotated[float, Meta(gt=0, le=300, description=(
        "seconds in (0, 300]"))] = 10.0
    idle_timeout_s: Annotated[float, Meta(gt=0, le=3600, description=(
        "seconds in (0, 3600]"))] = 15.0
    body_timeout_s: Annotated[float, Meta(gt=0, le=300, description=(
        "seconds in (0, 300]"))] = 10.0
    max_connections: Annotated[int, Meta(ge=0, description=(
        "an integer >= 0 (0: what the descriptor limit leaves)"))] = 0
    max_header_bytes: Annotated[int, Meta(ge=1024, le=1 << 20, description=(
        "an integer in [1024, 1048576]"))] = 16 * 1024


class Privacy(Settings):
    """The key of visitor and outcome id hashes (generated into the store when not set)."""

    salt: Annotated[str | None, Meta(description="a string")] = None


_AT = re.compile(r" - at `\$\.([A-Za-z0-9_]+)")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def config_error(source: str, key: str, message: str) -> ConfigError:
    """The config's one error shape: ``file: dotted.key: message``, with the key as its field."""
    return ConfigError(f"{source}: {key}: {message}", field=key)


def unknown_key(key: str, known) -> str:
    """What an unknown key's error says, with the closest known key when there is one."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key ({hint}`cartwheel init` writes a commented example of every key)"


def shown(value, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (an error repeats what it names, not a
    whole pasted list)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def read_table(cls: type, data, path: str, source: str):
    """``data`` (a parsed TOML table) as ``cls``, or a :class:`ConfigError` naming the key."""
    def fail(key: str | None, message: str):
        raise config_error(source, f"{path}.{key}" if key and path else (key or path), message)

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{path}] must be a table", field=path)
    for info in msgspec.structs.fields(cls):  # a nested table: its errors name its keys
        if isinstance(info.default, Settings) and info.name in data:
            read_table(type(info.default), data[info.name], f"{path}.{info.name}", source)
    try:
        value = msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        text = str(exc)
        unknown = _UNKNOWN.search(text)
        if unknown:
            fail(unknown.group(1), unknown_key(unknown.group(1), cls.__struct_fields__))
        missing = _MISSING.search(text)
        key = missing.group(1) if missing else (_AT.search(text) or [None, None])[1]
        if key is None or key not in cls.__struct_fields__:
            fail(None, text)
        fail(key, f"expected {describe(cls, key)}, got {shown(data.get(key))}")
    for key in cls.__struct_fields__:  # TOML has nan and inf: settings are finite
        number = getattr(value, key)
        if isinstance(number, float) and not math.isfinite(number):
            fail(key, f"must be a finite number, got {number!r}")
    return value


def describe(cls: type, key: str) -> str:
    """What ``cls``'s field ``key`` expects, in words (its ``Meta(description=...)``)."""
    hint = typing.get_type_hints(cls, include_extras=True)[key]
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, Meta) and meta.description:
            return meta.description
    return "a value of the documented type"
