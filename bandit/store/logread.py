"""Read logged decisions: the engine's SQLite store, JSON Lines, Parquet, VW DSJSON (writing:
:mod:`bandit.store.logwrite`).

One row per decision, with these fields (JSON Lines and Parquet; Parquet keeps ``context`` and
``eligible`` as JSON strings so that any shop's context fits one schema):

=============  =========================================================================
field          meaning
=============  =========================================================================
event_id       string, optional
ts             seconds since the epoch, optional
context        object of context features (as sent to ``/v1/decide``)
eligible       list of eligible action ids, optional (default: every action)
action         the action id chosen
probability    the probability it was chosen with, in (0, 1]
reward         the reward, or instead: ``converted`` (bool) and ``order_value`` (number),
               turned into a reward with the shop's objective and the action's cost (both:
               they must agree)
randomized     bool, optional (default: probability < 1); forced decisions are not evaluable
placement      string, optional (default: ``"default"``): where on the site it was decided
group          ``"treatment"`` or ``"holdout"``, optional
would_have_    on a holdout row, optional: the action id a treated visitor would have got
action         (never shown), drawn with ``would_have_probability`` in (0, 1]
=============  =========================================================================

Read for one placement (``placement=``), a log's rows at other placements are passed over
(counted) and the actions are that placement's; read for all, the actions are the shop's.
A deferred decision never activated (closed "inactive") was never shown: passed over, counted.

**Censoring.** A decision of an event store counts only once its outcome is final for every
decision made beside it: once its attribution window has passed at ``now``, whether or not it
converted early (a conversion reported early must not enter before the non-conversions decided
in the same minutes: the estimates of a young log would be made of its conversions). Decisions
still inside their window are left out and counted (:attr:`LoadReport.pending`); one past its
window that expiry has not closed yet is final with the default reward. A file row marked
``"open": true`` (``cartwheel export --include-open``) is left out the same way.

Bad rows (missing or out-of-range probability, unknown action, action not eligible, a context
that does not fit the schema, a reward no order could make - beyond the shop's
``max_order_value`` plus its largest fixed incentive cost, or not finite -, an outcome the
endpoint would refuse, a reward the outcome beside it does not earn, a ``randomized`` that is
not a bool, a line that is not JSON) are never
silently dropped or used: they are left out of the returned data and listed, with their line
numbers, in the :class:`LoadReport`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from datetime import datetime
from pathlib import Path

import numpy as np

from bandit.config.shop import ShopConfig
from bandit.domain.errors import CartwheelError
from bandit.domain.logged import LoggedData
from bandit.domain.outcomes import check_order
from bandit.domain.records import DEFAULT_PLACEMENT
from bandit.store import logformats
from bandit.store.events import EventStore
from bandit.store.load_report import LoadReport, nothing_usable

FORMATS = ("sqlite", "jsonl", "parquet", "dsjson")


def detect_format(path: Path) -> str:
    if path.is_dir() or path.suffix in (".sqlite3", ".sqlite", ".db"):
        return "sqlite"
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix == ".dsjson":
        return "dsjson"
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path}: use .sqlite3 (or a data dir), .jsonl, "
                     ".parquet or .dsjson")


class _Builder:
    """Validates records one by one and stacks the good ones."""

    def __init__(self, config: ShopConfig, report: LoadReport, unknown_keys: str = "refuse",
                 placement: str | None = None, keep_open: bool = False):
        if unknown_keys not in ("refuse", "ignore"):
            raise ValueError(f"unknown_keys is 'refuse' or 'ignore', not {unknown_keys!r}")
        self.config, self.report = config, report
        self.ignore_unknown = unknown_keys == "ignore"
        self.space = config.feature_space()
        self.keys = frozenset(self.space.keys)
        self.placement, self.keep_open = placement, keep_open
        self.ids = (config.action_ids if placement is None
                    else config.placement(placement).actions)
        self._actions = {a.id: a for a in config.actions}
        self.index = {a: i for i, a in enumerate(self.ids)}
        self._all = tuple(range(len(self.ids)))
        #: the largest |reward| one order can make (a bigger one is a unit or typing error,
        #: and one such row would overflow a model's sums of squares)
        self.reward_limit = config.objective.max_order_value + max(
            a.cost_fixed for a in config.actions)
        self._eligible_codes = functools.lru_cache(maxsize=4096)(self._codes)
        self.rows: list = []

    def add(self, line: int, rec: dict) -> None:
        self.report.read += 1
        if isinstance(rec, dict) and rec.get("open") is True and not self.keep_open:
            self.report.pending += 1  # exported with --include-open: not final
            return
        if self.placement is not None and isinstance(rec, dict) and rec.get(
                "placement", DEFAULT_PLACEMENT) != self.placement:
            self.report.elsewhere += 1
            return
        try:
            self.rows.append((line, *self._row(rec)))
        except (CartwheelError, ValueError, TypeError, KeyError) as exc:
            self._refuse(line, exc)

    def _refuse(self, line: int, exc: Exception) -> None:
        reason = f"missing field {exc.args[0]!r}" if type(exc) is KeyError else str(exc)
        self.report.refuse(line, reason)

    def _row(self, rec: dict):
        if not isinstance(rec, dict):
            raise ValueError("not an object")
        action = rec.get("action")
        if action not in self.index:
            raise ValueError(f"unknown action {action!r}")
        p = rec.get("probability")
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise ValueError("missing probability")
        if not 0 < p <= 1:
            raise ValueError(f"probability {p!r} outside (0, 1]")
        eligible = self._eligible(rec.get("eligible"))
        if self.index[action] not in eligible:
            raise ValueError(f"action {action!r} is not in its eligible list")
        reward = rec.get("reward")
        if reward is None and "converted" not in rec:
            raise ValueError("no reward and no converted/order_value")
        if reward is not None and not isinstance(reward, (bool, int, float)):
            raise ValueError(f"reward must be a number, got {reward!r}")
        if "converted" in rec:
            earned = self._earned(rec["converted"], rec.get("order_value"), action)
            # both given: they must agree (to half a cent), or which one the shop meant is a
            # guess (a reward logged under another objective, a stale order value)
            if reward is not None and not math.isclose(reward, earned, rel_tol=1e-6,
                                                       abs_tol=0.005):
                raise ValueError(f"reward {reward!r} is not what converted/order_value earn "
                                 f"under the shop's objective ({earned:g}): keep one of them")
            reward = earned
        # the range test refuses NaN and infinity too
        if not abs(reward) <= self.reward_limit:
            raise ValueError(f"reward {reward!r} is more than one order can earn or cost "
                             f"(|reward| <= {self.reward_limit:g}: [objective] "
                             "max_order_value plus the largest fixed incentive cost)")
        reward = float(reward)
        context = rec.get("context") or {}
        if not isinstance(context, dict):
            raise ValueError("context must be an object")
        if self.ignore_unknown and not self.keys.issuperset(context):
            for key in context.keys() - self.keys:
                self.report.ignored_keys[key] = self.report.ignored_keys.get(key, 0) + 1
            context = {k: v for k, v in context.items() if k in self.keys}
        randomized = rec.get("randomized", p < 1)
        if not isinstance(randomized, bool):
            raise ValueError(f"randomized must be true or false, got {randomized!r}")
        placement = rec.get("placement", DEFAULT_PLACEMENT)
        if not isinstance(placement, str):
            raise ValueError(f"placement must be a string, got {placement!r}")
        group = rec.get("group")
        if group not in (None, "treatment", "holdout"):
            raise ValueError(f"group must be 'treatment' or 'holdout', got {group!r}")
        would_have, would_have_p = self._would_have(rec, group)
        return (eligible, self.index[action], float(p), reward, randomized,
                _timestamp(rec.get("ts")), placement, rec.get("open") is True, group,
                would_have, would_have_p, context)

    def _would_have(self, rec: dict, group) -> tuple[int, float]:
        """A holdout row's would-have draw as (action index, probability); (-1, NaN) when
        the row has none."""
        action, p = rec.get("would_have_action"), rec.get("would_have_probability")
        if action is None and p is None:
            return -1, math.nan
        if group != "holdout":
            raise ValueError("would_have_action is recorded only on holdout rows "
                             "(group \"holdout\")")
        if action not in self.index:
            raise ValueError(f"unknown would_have_action {action!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"would_have_probability {p!r} outside (0, 1]")
        return self.index[action], float(p)

    def _earned(self, converted, value, action) -> float:
        """The reward an outcome earns under the shop's objective (refused by the outcome
        endpoint's rule first)."""
        value = 0.0 if value is None else value  # not converted: no order to value
        check_order(converted, value, self.config.objective)
        cost = self._actions[action].incentive_cost(float(value))
        return float(self.config.objective.reward(converted, float(value), cost))

    def _eligible(self, eligible) -> tuple[int, ...]:
        """Indices of an eligible list (all actions when absent), validated once per distinct
        list: logs repeat a handful of them."""
        if not eligible:
            return self._all
        return self._eligible_codes(tuple(eligible))

    def _codes(self, eligible: tuple) -> tuple[int, ...]:
        unknown = [a for a in eligible if a not in self.index]
        if unknown:
            raise ValueError(f"unknown eligible action {unknown[0]!r}")
        return tuple(self.index[a] for a in eligible)

    def _encode(self, chunk: list) -> tuple[list, np.ndarray]:
        """Encode a chunk's contexts at once; on a bad context, row by row to name it."""
        try:
            return chunk, self.space.transform([row[-1] for row in chunk])
        except CartwheelError:
            good, xs = [], []
            for row in chunk:
                try:
                    xs.append(self.space.transform([row[-1]])[0])
                    good.append(row)
                except CartwheelError as exc:
                    self._refuse(row[0], exc)
            return good, np.array(xs).reshape(len(xs), self.space.dim)

    def take(self) -> LoggedData | None:
        """The rows added since the last take (None when none of them is usable), then
        forget them."""
        if not self.rows:
            return None
        try:
            return self.data()
        except ValueError:  # every row of the chunk was refused (listed in the report)
            return None
        finally:
            self.rows = []

    def data(self, chunk_size: int = 4096) -> LoggedData:
        parts = [self._encode(self.rows[i:i + chunk_size])
                 for i in range(0, len(self.rows), chunk_size)]
        rows = [row for good, _ in parts for row in good]
        self.report.problems.sort()
        if not rows:
            raise nothing_usable(self.report)
        (_, eligible, a, p, r, rand, ts, placements, is_open, groups, would_have, would_have_p,
         ctx) = zip(*rows)
        # one mask row per distinct eligible set, then one gather
        distinct: dict[tuple[int, ...], int] = {}
        which = [distinct.setdefault(e, len(distinct)) for e in eligible]
        table = np.zeros((len(distinct), len(self.ids)), dtype=bool)
        for e, i in distinct.items():
            table[i, list(e)] = True
        mask = table[which]
        return LoggedData(self.ids, np.vstack([x for _, x in parts]), mask,
                          np.array(a, dtype=np.intp), np.array(p), np.array(r), np.array(rand),
                          np.array(ts), list(ctx), np.array(placements, dtype=object),
                          np.array(is_open) if any(is_open) else None,
                          np.array(groups, dtype=object) if any(groups) else None,
                          *((np.array(would_have, dtype=np.intp), np.array(would_have_p))
                            if max(would_have) >= 0 else (None, None)))


def read_log(path, config: ShopConfig, fmt: str | None = None,
             unknown_keys: str = "refuse", progress=None, *, tail: int | None = None,
             placement: str | None = None, now: float | None = None,
             include_open: bool = False) -> tuple[LoggedData, LoadReport]:
    """Read a log of any supported format into :class:`LoggedData` plus a :class:`LoadReport`.

    ``unknown_keys``: a row whose context has a key the shop's schema does not declare is
    refused (``"refuse"``, as the decision endpoint does), or the key is left out and counted
    in the report (``"ignore"``: logs from another system often carry extra fields).
    ``progress(n)`` is told every few thousand rows read (a progress bar's ``update``).
    ``tail``: of an event store, read only its last ``tail`` decisions (by log order; the
    newest traffic, at a cost independent of the log's size). ``placement``: read only the
    decisions made there, over its actions (see the module docstring). ``now`` (default: the
    clock): the time an event store is censored at; ``include_open``: keep the decisions still
    inside their window, marked open (``LoggedData.open``; for ``export --include-open``).
    """
    report = LoadReport()
    chunks = list(iter_log(path, config, report, fmt, unknown_keys, progress, tail=tail,
                           placement=placement, now=now, include_open=include_open,
                           chunk_rows=None))
    if not chunks:
        raise nothing_usable(report)
    return chunks[0], report


def iter_log(path, config: ShopConfig, report: "LoadReport", fmt: str | None = None,
             unknown_keys: str = "refuse", progress=None, *, tail: int | None = None,
             placement: str | None = None, now: float | None = None,
             include_open: bool = False, chunk_rows: int | None = 10_000):
    """:func:`read_log` in chunks of at most ``chunk_rows`` usable rows (None: one), each a
    :class:`LoggedData`, so a log of any size is read with bounded memory (``cartwheel
    export`` streams this way); ``report`` is filled as the chunks are read."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; choose from {FORMATS}")
    builder = _Builder(config, report, unknown_keys, placement, keep_open=include_open)
    seen = 0
    if tail is not None and fmt != "sqlite":
        raise ValueError("tail reads the end of an event store only (format sqlite)")
    records = (logformats.records_sqlite(path, config, report, tail, placement, now,
                                         include_open) if fmt == "sqlite"
               else logformats.READERS[fmt](path, config, report))
    for line, rec in records:
        builder.add(line, rec)
        seen += 1
        if progress is not None and seen % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        if chunk_rows is not None and len(builder.rows) >= chunk_rows:
            chunk = builder.take()
            if chunk is not None:
                yield chunk
    if progress is not None:
        progress(seen % PROGRESS_EVERY)
    chunk = builder.take()
    if chunk is not None:
        yield chunk


PROGRESS_EVERY = 4096


class LogChunks:
    """A log to read in chunks of :class:`LoggedData`, from its start at every ``iter()``:
    what :func:`simulator.evaluation.replay.replay` reads twice and a notebook loops over,
    in memory bounded by ``chunk_rows`` whatever the log's size.

    ``now`` is fixed when it is made (default: the clock), so every read of a live event
    store censors at the same moment and sees the same rows. ``report`` is the
    :class:`LoadReport` of the last complete read. ``bar(description)``, when given, is a
    progress bar per read (a context manager with ``update(n)``).
    """

    def __init__(self, path, config: ShopConfig, fmt: str | None = None,
                 unknown_keys: str = "refuse", *, placement: str | None = None,
                 now: float | None = None, chunk_rows: int = 10_000, bar=None):
        import time

        self.path, self.config, self.fmt, self.unknown_keys = Path(path), config, fmt, \
            unknown_keys
        self.placement, self.chunk_rows, self.bar = placement, chunk_rows, bar
        self.now = time.time() if now is None else now
        self.report, self.reads = LoadReport(), 0
        if not self.path.exists():
            raise FileNotFoundError(2, "no such log", str(self.path))

    def __iter__(self):
        report = LoadReport()
        self.reads += 1
        label = "reading log" if self.reads == 1 else f"reading log (pass {self.reads})"
        with (self.bar(label) if self.bar else contextlib.nullcontext()) as bar:
            yield from iter_log(self.path, self.config, report, self.fmt, self.unknown_keys,
                                None if bar is None else bar.update,
                                placement=self.placement, now=self.now,
                                chunk_rows=self.chunk_rows)
        self.report = report


def count_rows(path, fmt: str | None = None) -> int | None:
    """How many rows a log holds (for a progress bar's total), cheaply; None if unknown."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt in ("jsonl", "dsjson"):
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    db_path = path / "events.sqlite3" if path.is_dir() else path
    if not db_path.exists():
        return None
    store = EventStore.read_only(db_path)
    try:
        return store.max_seq("decisions")
    finally:
        store.close()


def _timestamp(value) -> float:
    """Seconds since the epoch from a number or an ISO 8601 string (Vowpal Wabbit's and
    Personalizer's DSJSON write ``"2019-09-27T18:46:59.7540000Z"``); missing: 0."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            raise ValueError(f"ts {value[:40]!r} is neither a number nor an ISO 8601 time")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"ts must be a number or an ISO 8601 string, got {value!r}")
    return float(value)
