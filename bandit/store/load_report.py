"""What reading a log found: rows read, refused (with line and reason), still open, elsewhere.

Filled as a log is read (:mod:`bandit.store.logread`, :mod:`bandit.store.logformats`), in
constant memory: refused rows are counted, and the first :data:`PROBLEMS_KEPT` are kept with
their reasons.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bandit.domain.errors import CartwheelError

#: refused rows kept with their line and reason (the rest are counted)
PROBLEMS_KEPT = 1000
#: pending decisions whose times are kept (the earliest; the rest are counted): enough to
#: say when :data:`MIN_FINAL` more are final
PENDING_KEPT = 10_000
#: the fewest decisions with a final outcome that replay and segments estimate from, while
#: others are still inside their window (a young log; a complete one is read as it is)
MIN_FINAL = 200


@dataclass
class LoadReport:
    """How many rows were read, and which were refused and why (line numbers are 1-based)."""

    read: int = 0
    #: decisions still inside their attribution window (left out: their outcome is not final)
    pending: int = 0
    window_s: float = 0.0
    #: the earliest ``PENDING_KEPT`` times a pending decision was made, negated in a heap (to
    #: say when enough become final; a live store at 100 decisions a second holds millions)
    pending_ts: list[float] = field(default_factory=list, repr=False)
    #: rows at another placement than the one read, and deferred decisions never shown
    elsewhere: int = 0
    inactive: int = 0
    #: the first ``PROBLEMS_KEPT`` refused rows, with why (all are counted in ``bad``)
    problems: list[tuple[int, str]] = field(default_factory=list)
    bad: int = 0
    ignored_keys: dict[str, int] = field(default_factory=dict)  # key -> rows it was left out of

    def pend(self, ts: float) -> None:
        """Count a decision still inside its window, made at ``ts``."""
        self.pending += 1
        if len(self.pending_ts) < PENDING_KEPT:
            heapq.heappush(self.pending_ts, -ts)
        elif ts < -self.pending_ts[0]:
            heapq.heapreplace(self.pending_ts, -ts)

    def refuse(self, line: int, why: str) -> None:
        """Count a refused row; keep its line and reason while few are kept (a log of
        garbage must not fill the memory with reasons)."""
        self.bad += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append((line, why))

    @property
    def usable(self) -> int:
        return self.read - self.bad - self.pending - self.elsewhere - self.inactive

    def final_by(self, more: int) -> float | None:
        """When ``more`` of the pending decisions will have a final outcome (None: fewer
        are pending, or more than ``PENDING_KEPT`` are asked for).

        >>> report = LoadReport(window_s=60.0)
        >>> for ts in (30.0, 10.0, 20.0):
        ...     report.pend(ts)
        >>> report.final_by(2), report.final_by(4)
        (80.0, None)
        """
        if more < 1 or more > len(self.pending_ts):
            return None
        return -sorted(self.pending_ts, reverse=True)[more - 1] + self.window_s

    def require_final(self, minimum: int = None) -> None:
        """Refuse (:class:`CartwheelError`) a young log: when decisions are still inside their
        window and fewer than ``minimum`` have a final outcome, say when enough will."""
        minimum = MIN_FINAL if minimum is None else minimum
        if not self.pending or self.usable >= minimum:
            return
        when = self.final_by(minimum - self.usable)
        at = ("" if when is None else
              f"; {minimum:,} will by {datetime.fromtimestamp(when, timezone.utc):%Y-%m-%d %H:%M}"
              " UTC: run it again then")
        raise CartwheelError(
            f"only {self.usable:,} decisions have a final outcome and {self.pending:,} are "
            f"still inside their attribution window: estimates from so few would be noise, "
            f"and from the open ones biased (their conversions are in, their non-conversions "
            f"not yet){at}")

    def explain_empty(self) -> None:
        """After a read that left nothing to work on: raise what explains it, a young log's
        error (:meth:`require_final`) or :func:`nothing_usable`'s; return when rows were
        usable (then the emptiness is the caller's to explain)."""
        self.require_final()
        if self.usable == 0:
            raise nothing_usable(self) from None

    def summary(self, show: int = 10) -> str:
        usable = self.usable
        window = (f"{self.window_s / 3600:g} h" if self.window_s >= 3600
                  else f"{self.window_s:g} s")
        lines = [f"read {self.read} rows: {usable} usable, {self.bad} refused"
                 + (f", {self.pending:,} still inside their {window} attribution window (left "
                    f"out: their outcome is not final; estimates use the {usable:,} whose "
                    "outcome is)" if self.pending else "")
                 + (f", {self.elsewhere} at other placements" if self.elsewhere else "")
                 + (f", {self.inactive} deferred and never shown" if self.inactive else "")]
        lines += [f"  line {n}: {why}" for n, why in self.problems[:show]]
        if self.bad > show:
            lines.append(f"  ... and {self.bad - show} more")
        if self.ignored_keys:
            lines.append("context keys not in the schema, left out: " + ", ".join(
                f"{key} ({rows} rows)" for key, rows in sorted(self.ignored_keys.items())))
        return "\n".join(lines)


def nothing_usable(report: "LoadReport") -> ValueError:
    """The error of a log with no usable row, saying why (all still open, or refused)."""
    if report.pending and not report.bad:
        return ValueError(f"no decision in the log has a final outcome yet: {report.pending} "
                          "still inside their attribution window (an outcome is final once "
                          "the window has passed)")
    return ValueError("no usable rows in the log\n" + report.summary())
