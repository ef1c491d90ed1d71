"""Deciding: validate, encode, apply guardrails, ask the policy, log.

:class:`Decider` is a part that :class:`bandit.core.engine.Engine` and
:class:`bandit.scaleout.replica.Replica` both wire in (docs/architecture.md, "The engine"). It is
given what differs between them: the model it asks (a callable returning the current
:class:`Model`), the incentive price, the request group's :class:`~bandit.core.unit_of_work.
UnitOfWork`, the log sink (the engine's SQLite store or a replica's bus entry), how to commit
and how to recover a damaged model. Every request of a batch is judged alone, a visitor asking
twice in one batch is decided in rounds so that frequency caps count the earlier choice, and
the batch's decisions are logged with one append.

A request names its placement (docs/architecture.md, "Placements"); each placement has its own
model, asked once per batch for its rows. Rules, caps, the budget and the holdout span all of
them.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from bandit.core.explain import explain_row
from bandit.domain.errors import CartwheelError
from bandit.domain.privacy import check_visitor, hash_visitor
from bandit.domain.records import Decision, LoggedEvent, Placement, pack_notes
from policies import NonFiniteStateError

log = logging.getLogger("cartwheel.engine")


def new_event_ids(n: int) -> list[str]:
    """n ids of 32 hex digits: nanosecond time then 64 random bits, so ids sort by time and the
    unique index grows at its end instead of touching random pages (fewer pages per commit).
    One ``os.urandom`` call serves the whole batch."""
    stamp = f"{time.time_ns():016x}"
    noise = os.urandom(8 * n).hex()
    return [stamp + noise[16 * i:16 * (i + 1)] for i in range(n)]


@dataclass(slots=True)
class _Batch:
    """The admitted requests of one ``decide_batch``, as parallel lists (one entry per row)."""

    rows: list[int] = field(default_factory=list)  # index of each row in the request list
    contexts: list[dict] = field(default_factory=list)
    X: list[list[float]] = field(default_factory=list)  # encoded contexts
    eligible: list[tuple[str, ...]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    chosen: list[tuple[str, float]] = field(default_factory=list)  # (action, probability)
    treated: list[bool] = field(default_factory=list)  # False: holdout
    learn_rows: list = field(default_factory=list)  # (x, action, p, mask) of randomized rows
    explain: list[bool] = field(default_factory=list)  # rows that asked for reasons
    reasons: dict = field(default_factory=dict)  # row -> (reasons, runner-up) or (None, why)
    placements: list[Placement] = field(default_factory=list)
    deferred: list[bool] = field(default_factory=list)  # waits for activate
    versions: list[int] = field(default_factory=list)  # the model version each row saw
    #: per row, a holdout visitor's (action, probability) a treated one would have got
    would_have: list = field(default_factory=list)
    #: per row, what a promotion gate noted when it decided a treated row (float64 bytes)
    notes: list = field(default_factory=list)

    def draw(self, j: int, action: str, probability: float) -> None:
        """Row ``j`` drew ``action``: shown to a treated visitor, recorded as the would-have
        draw of a holdout one (who sees the control)."""
        if self.treated[j]:
            self.chosen[j] = (action, probability)
        else:
            self.would_have[j] = (action, probability)

    def drawn(self, j: int) -> tuple[str, float]:
        """Row ``j``'s draw (a holdout row's would-have draw): what frequency caps count."""
        return self.chosen[j] if self.treated[j] else self.would_have[j]


class Model(Protocol):
    """What a decider asks of the model it decides with."""

    policy: Any
    #: the action id of each of the policy's columns (retired actions included)
    action_ids: list[str]
    #: the policy's column of each action id
    index: dict[str, int]
    #: names the model state (the version logged with each decision)
    model_version: int


class LogSink(Protocol):
    def append(self, events: list[LoggedEvent], eligible: list[tuple[str, ...]],
               learn_rows: dict[str, list]) -> None:
        """Write a batch's decisions into the open group (learning ``learn_rows``, per
        placement, at commit, where the sink learns)."""


class Decider:
    """Decides request batches for one shop (see the module docstring).

    Parameters
    ----------
    config, space, salt, guardrails
        The shop, its feature space, the visitor-hash key and the rules, caps and budget.
    model : callable
        Returns the current :class:`Model` of a placement id (it may be swapped or rebuilt
        between batches).
    price : callable
        Returns the incentive price to apply now (:class:`bandit.core.pacing.PacingPrice`) or
        None.
    work : UnitOfWork
        The request group's transaction; the decider is one of its parts.
    sink : LogSink
        Where decisions are logged.
    commit, recover : callable
        Commit the open group; rebuild a model that turned non-finite (given why).
    clock : callable
        Seconds since the epoch.
    last_ts : float
        The time of the newest logged decision (logged times never go back).
    decided_total : int
        Decisions logged so far.
    """

    def __init__(self, config, space, salt: bytes, guardrails, *, model: Callable[[str], Model],
                 price: Callable, work, sink: LogSink, commit: Callable[[], None],
                 recover: Callable[[str], None], clock: Callable[[], float],
                 last_ts: float = float("-inf"), decided_total: int = 0):
        self.config, self.space, self.salt, self.guardrails = config, space, salt, guardrails
        self.model, self.price, self.work, self.sink = model, price, work, sink
        self.commit, self.recover, self.clock = commit, recover, clock
        self.last_ts, self.decided_total = last_ts, decided_total
        self.actions = {a.id: a for a in config.actions}
        self.action_ids = config.action_ids
        self._action_index = {a: i for i, a in enumerate(self.action_ids)}
        self._config_mask = functools.lru_cache(maxsize=4096)(self._mask_of)

    def checkpoint(self) -> tuple[int, float]:
        """The decider's part of a request group's state (:mod:`bandit.core.unit_of_work`)."""
        return self.decided_total, self.last_ts

    def restore(self, token) -> None:
        if token is not None:
            self.decided_total, self.last_ts = token

    def eligibility(self, eligible: Sequence[str] | None,
                    placement: Placement | None = None) -> tuple[str, ...]:
        """Validated eligible action ids (all of the placement's actions when None)."""
        placement = placement or self.config.placements[0]
        if eligible is None:
            return placement.actions
        if isinstance(eligible, str) or not isinstance(eligible, Sequence):
            raise CartwheelError("eligible must be a list of action ids", field="eligible")
        unknown = [a for a in eligible if not isinstance(a, str) or a not in self.actions]
        if unknown:
            raise CartwheelError(f"unknown action {str(unknown[0])[:64]!r} in eligible; known: "
                                 f"{list(self.action_ids)}", field="eligible")
        elsewhere = [a for a in eligible if a not in placement.actions]
        if elsewhere:
            raise CartwheelError(f"action {elsewhere[0]!r} is not decided at placement "
                                 f"{placement.id!r}; its actions: {list(placement.actions)}",
                                 field="eligible")
        if not eligible:
            raise CartwheelError("eligible is empty: list at least one action id",
                                 field="eligible")
        chosen = set(eligible)
        return tuple(a for a in placement.actions if a in chosen)

    def in_holdout(self, visitor_hash: str) -> bool:
        """Sticky holdout assignment from the salted visitor hash."""
        return int(visitor_hash[:8], 16) / 2**32 < self.config.holdout.fraction

    def decide(self, visitor_id: str, context: dict, eligible: Sequence[str] | None = None, *,
               now: float | None = None, commit: bool = True, explain: bool = False,
               placement: str | None = None, activate: bool | None = None) -> Decision:
        """Choose an intervention for one visitor and log it (committed before returning);
        ``explain``: add the reasons (:mod:`bandit.core.explain`, never stored);
        ``placement`` and ``activate`` as in :meth:`decide_batch`."""
        result = self.decide_batch([(visitor_id, context, eligible, explain, placement,
                                     activate)], now=now, commit=commit)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def decide_batch(self, requests: Sequence[tuple], *, now: float | None = None,
                     commit: bool = True) -> list[Decision | Exception]:
        """Decide for many visitors at once: ``(visitor_id, context, eligible)`` per request,
        then optionally ``explain`` (true: add the decision's reasons), ``placement`` (an id;
        None: the shop's only one) and ``activate`` (False: deferred until
        :meth:`~bandit.core.engine.Engine.activate`; True: shown now; None: as the placement
        says).

        One policy call and one insert for the whole batch. Every request is judged alone: one
        that fails validation (or breaks anything else) gets its error in its slot and does
        not disturb the others. The HTTP server batches requests that arrive close together.
        """
        results: list = [None] * len(requests)
        batch = self._admit(requests, results)
        if batch.rows:
            ts = self.clock() if now is None else now
            events = self._decide_admitted(batch, ts)
            for j, (i, e) in enumerate(zip(batch.rows, events)):
                results[i] = Decision(e.event_id, e.action, e.probability, e.group,
                                      e.model_version, e.randomized, e.placement, e.deferred)
                if batch.explain[j]:
                    results[i] = self._with_reasons(results[i], batch, j)
            if commit:
                self.commit()
        return results

    def _decide_admitted(self, batch: "_Batch", ts: float) -> list[LoggedEvent]:
        """Choose and log; a damaged model fails the open group (nothing of it was stored or
        learned), is rebuilt from committed data only, and the batch is decided again."""
        for attempt in (1, 2):
            self.work.begin()
            eligible = list(batch.eligible)
            try:
                self._choose(batch, ts)
                return self._log(batch, ts)
            except NonFiniteStateError as exc:
                self.work.rollback()  # the group's other writes fail too: their writers retry
                if attempt == 2:
                    raise
                self.recover(str(exc))
                batch.eligible = eligible  # guardrails narrowed these in place
            except Exception as exc:
                self.work.rollback(exc)
                raise

    def _admit(self, requests: Sequence[tuple], results: list) -> "_Batch":
        """Validate and encode each request; a refused one gets its error in ``results``."""
        batch = _Batch()
        for i, (visitor_id, context, eligible, *more) in enumerate(requests):
            explain, placement_id, activate = (*more, None, None, None)[:3]
            try:
                check_visitor(visitor_id)
                placement = self.config.placement(placement_id)
                x, stored = self.space.normalize_row(context)
                ids = self.eligibility(eligible, placement)
            except CartwheelError as exc:
                results[i] = exc
                continue
            except Exception as exc:  # a bug: this request alone fails (500), never the group
                log.exception("request %d of a decide batch failed", i)
                results[i] = exc
                continue
            batch.rows.append(i)
            batch.contexts.append(stored)
            batch.X.append(x)
            batch.eligible.append(ids)
            batch.hashes.append(hash_visitor(visitor_id, self.salt))
            batch.explain.append(bool(explain))
            batch.placements.append(placement)
            batch.deferred.append(placement.deferred if activate is None else not activate)
        return batch

    def _choose(self, batch: "_Batch", ts: float) -> None:
        """Fill ``batch.chosen``: the placement's control for the holdout, forced actions where
        rules or guardrails force one, and one policy call per placement for the rest
        (guardrails narrow eligible).

        A holdout visitor is drawn for all the same (``batch.would_have``): the action a
        treated visitor would have got, by the same rules, caps, budget and policy call, never
        shown nor learned (docs/architecture.md, "Holdout"); their logged eligible list stays
        the one requested.

        A visitor asking more than once in one batch is decided in rounds, so that frequency
        caps count the choices made for them earlier in the batch (deferred ones count only
        once activated, so not here)."""
        batch.chosen = [(p.control, 1.0) for p in batch.placements]
        batch.treated = [not self.in_holdout(h) for h in batch.hashes]
        batch.would_have = [None] * len(batch.rows)
        batch.notes = [None] * len(batch.rows)
        batch.learn_rows = {}
        batch.versions = [self.model(p.id).model_version for p in batch.placements]
        requested = list(batch.eligible)
        rows = list(range(len(batch.rows)))
        if not (self.guardrails.caps and len(set(batch.hashes)) < len(rows)):
            self._choose_round(batch, rows, ts, None)
        else:
            earlier: dict[str, list[str]] = {}
            while rows:
                seen, this, later = set(), [], []
                for j in rows:
                    (later if batch.hashes[j] in seen else this).append(j)
                    seen.add(batch.hashes[j])
                self._choose_round(batch, this, ts, earlier)
                for j in this:
                    if not batch.deferred[j]:
                        earlier.setdefault(batch.hashes[j], []).append(batch.drawn(j)[0])
                rows = later
        for j, treated in enumerate(batch.treated):
            if not treated:
                batch.eligible[j] = requested[j]

    def _choose_round(self, batch: "_Batch", rows: list[int], ts: float, earlier) -> None:
        if self.guardrails.active and rows:
            free = []
            for j, elig in zip(rows, self.guardrails.eligibility(
                    [batch.hashes[j] for j in rows], [batch.contexts[j] for j in rows],
                    [batch.eligible[j] for j in rows], ts, earlier,
                    [batch.placements[j].control for j in rows],
                    [not batch.treated[j] for j in rows])):
                batch.eligible[j] = tuple(a for a, m in zip(self.action_ids, elig.mask) if m)
                if elig.forced is not None:
                    batch.draw(j, elig.forced, 1.0)
                else:
                    free.append(j)
            rows = free
        at: dict[str, list[int]] = {}
        for j in rows:
            at.setdefault(batch.placements[j].id, []).append(j)
        for placement_id, placed in at.items():
            self._ask_model(batch, placed, self.model(placement_id))

    def _ask_model(self, batch: "_Batch", rows: list[int], model: Model) -> None:
        """One policy call for the batch's free rows at one placement."""
        X = np.array([batch.X[j] for j in rows])
        mask = np.array([self._policy_mask(batch.eligible[j], model) for j in rows])
        pacing = self.price()
        prices = None if pacing is None else pacing.prices(model.policy, X, model.action_ids)
        actions, probs = model.policy.act(X, mask, prices)
        notes = model.policy.last_notes if model.policy.notes_width else None
        learn_rows = batch.learn_rows.setdefault(batch.placements[rows[0]].id, [])
        for r, j in enumerate(rows):
            action, p = int(actions[r]), float(probs[r])
            batch.draw(j, model.action_ids[action], p)
            if notes is not None and batch.treated[j]:  # kept for the gate's comparison
                batch.notes[j] = pack_notes(notes[r])
            # deferred: learned at close, if activated; a holdout draw is never learned
            if p < 1.0 and not batch.deferred[j] and batch.treated[j]:
                learn_rows.append((X[r], action, p, mask[r]))
        asked = [r for r, j in enumerate(rows) if batch.explain[j] and batch.treated[j]]
        if asked:  # only rows that asked pay for it (off by default)
            self._explain(batch, [rows[r] for r in asked], X[asked], mask[asked],
                          actions[asked], None if prices is None else prices[asked], model)

    def _explain(self, batch: "_Batch", rows: list[int], X, mask, actions, prices,
                 model: Model) -> None:
        parts = model.policy.score_parts(X)
        for r, j in enumerate(rows):
            if parts is None:
                batch.reasons[j] = (None, model.policy.why_no_score_parts())
                continue
            reasons, versus = explain_row(self.space, parts[0][r], parts[1][r],
                                          batch.contexts[j], int(actions[r]), mask[r],
                                          None if prices is None else prices[r])
            batch.reasons[j] = (reasons, versus if reasons is None
                                else model.action_ids[versus])

    def _with_reasons(self, decision: Decision, batch: "_Batch", j: int) -> Decision:
        reasons, versus = batch.reasons.get(j, (None, None))
        if reasons is not None:
            return replace(decision, reasons=tuple(reasons), reasons_versus=versus)
        why = versus or ("holdout: the control is shown to every visitor of the holdout"
                         if decision.group == "holdout" else
                         "a rule or guardrail chose this action, not the policy")
        return replace(decision, reasons_unavailable=why)

    def _log(self, batch: "_Batch", ts: float) -> list[LoggedEvent]:
        """Append the batch's decisions to the store (one insert).

        Logged times never go back (a clock the OS steps back is held at the last time until
        it catches up): the log stays in time order, which expiry relies on.
        """
        ts = self.stamp(ts)
        events = [LoggedEvent(
            event_id=event_id, visitor_hash=visitor_hash, context=context,
            mask=self._config_mask(ids), action_index=self._action_index[action], action=action,
            probability=probability, group="treatment" if treated else "holdout",
            model_version=version, randomized=probability < 1.0, ts=ts, placement=placement.id,
            deferred=deferred, would_have_action=None if would_have is None else would_have[0],
            would_have_probability=None if would_have is None else would_have[1],
            decision_notes=notes)
            for event_id, visitor_hash, context, ids, (action, probability), treated, placement,
            deferred, version, would_have, notes in zip(
                new_event_ids(len(batch.rows)), batch.hashes, batch.contexts, batch.eligible,
                batch.chosen, batch.treated, batch.placements, batch.deferred, batch.versions,
                batch.would_have, batch.notes)]
        self.sink.append(events, batch.eligible, batch.learn_rows)
        self.decided_total += len(events)
        return events

    def stamp(self, ts: float) -> float:
        """The time a decision is logged at: ``ts``, or the last logged time if the clock went
        back (held until it catches up), so the log stays in time order."""
        self.last_ts = max(ts, self.last_ts)
        return self.last_ts

    def _mask_of(self, eligible: tuple[str, ...]) -> tuple[bool, ...]:
        """Eligibility of every configured action (in config order); cached per eligible set
        as ``_config_mask`` (a shop has few distinct sets)."""
        chosen = set(eligible)
        return tuple(a in chosen for a in self.action_ids)

    @staticmethod
    def _policy_mask(eligible: tuple[str, ...], model: Model) -> list[bool]:
        """Eligibility over the policy's actions (which may include retired ones)."""
        row = [False] * len(model.action_ids)
        for a in eligible:
            row[model.index[a]] = True
        return row

