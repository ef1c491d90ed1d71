"""What the trainer believes of a bus entry: nothing it has not checked.

Every byte read from Redis is untrusted (docs/architecture.md, "Scale-out"): a replica of
another release, a bug, or anyone who can write to the stream may have put it there. Each
record of an entry passes the checks an HTTP request passes (types by the decoder; then
finiteness, bounds, declared context keys and personal data through the feature space, the
placement's actions, a probability in (0, 1], a treatment decision's action among its eligible
ones, a holdout decision showing the control with probability 1, times near now), so that
nothing that would fail learning is ever committed. :func:`screen` returns what passed and, for
what did not, a :class:`DeadLetter` saying why (the trainer puts it on the dead-letter stream,
counts it, and goes on).

>>> import time
>>> from bandit.config.shop import load_config
>>> from bandit.scaleout.records import BusDecision
>>> config = load_config()
>>> d = BusDecision("18f0a1b2c3d4e5f6" * 2, time.time(), "ab" * 16, {"device": "mobile"},
...                 ["none", "discount_5"], "discount_5", 0.0, "treatment", 0, True)
>>> decision_problem(d, config, config.feature_space(), time.time())
'probability 0.0 outside (0, 1]'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import msgspec

from bandit.domain.errors import CartwheelError
from bandit.scaleout.records import BusActivation, BusDecision, BusEntry, BusOutcome, decode_entry
from policies.comparison import notes_width

#: a stored hash (visitor, outcome id): hex digits, as the privacy module writes them
_HASH = re.compile(r"[0-9a-f]{16,128}")
_EVENT_ID = re.compile(r"[0-9a-f]{1,64}")
#: how far from the trainer's clock a record's time may be (replicas' clocks drift a little;
#: a time years away would move expiry, budgets and reports)
PAST_S, FUTURE_S = 400 * 86400.0, 86400.0
MAX_MODEL_VERSION = 2**62


@dataclass(frozen=True)
class DeadLetter:
    """A record (or a whole entry) the trainer refused, and why."""

    entry_id: str
    kind: str  # entry, decision, outcome, activation
    reason: str
    record: bytes = b""  # the record as it came (msgpack), for whoever investigates


@dataclass
class Screened:
    """The entries of one read: each one's records that passed, and the dead letters."""

    entries: list[tuple[str, BusEntry]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


_encode = msgspec.msgpack.Encoder().encode


def _time_problem(ts: float, now: float) -> str | None:
    if not (math.isfinite(ts) and now - PAST_S <= ts <= now + FUTURE_S):
        return f"ts {ts!r} is not a time within {PAST_S / 86400:.0f} days before now"
    return None


def decision_problem(d: BusDecision, config, space, now: float) -> str | None:
    """Why the trainer must not take decision ``d`` (None: it may)."""
    if not _EVENT_ID.fullmatch(d.event_id):
        return "event_id is not an event id"
    if not _HASH.fullmatch(d.visitor_hash):
        return "visitor_hash is not a visitor hash"
    problem = _time_problem(d.ts, now)
    if problem:
        return problem
    if d.placement not in config.placement_ids:
        return f"unknown placement {d.placement[:64]!r}"
    placement = config.placement(d.placement)
    if not d.eligible or not set(d.eligible) <= set(placement.actions):
        return f"eligible is not a non-empty list of placement {placement.id!r}'s actions"
    if d.action not in d.eligible and d.group == "treatment":
        return f"action {d.action[:64]!r} is not among its eligible actions"
    if d.group not in ("treatment", "holdout"):
        return f"group {d.group[:32]!r} is neither treatment nor holdout"
    if not (math.isfinite(d.probability) and 0.0 < d.probability <= 1.0):
        return f"probability {d.probability!r} outside (0, 1]"
    if d.group == "holdout" and (d.action != placement.control or d.probability != 1.0
                                 or d.randomized):
        return "a holdout decision shows the placement's control, with probability 1"
    if d.randomized != (d.probability < 1.0):
        return "randomized disagrees with the probability"
    problem = _would_have_problem(d, placement) or _notes_problem(d, placement)
    if problem:
        return problem
    if not 0 <= d.model_version < MAX_MODEL_VERSION:
        return f"model_version {d.model_version!r} out of range"
    try:
        x, stored = space.normalize_row(d.context)
    except CartwheelError as exc:
        return f"context: {exc.message}"
    if not all(math.isfinite(v) for v in x):
        return "context does not encode to finite numbers"
    return None


def _would_have_problem(d: BusDecision, placement) -> str | None:
    """A holdout decision's would-have draw, when it carries one (entries of a release before
    it carry none), is one of the placement's actions drawn with a probability in (0, 1]; a
    treatment decision carries none."""
    action, p = d.would_have_action, d.would_have_probability
    if action is None and p is None:
        return None
    if d.group != "holdout":
        return "a treatment decision carries no would-have draw"
    if action is None or action not in placement.actions:
        return f"would_have_action is not one of placement {placement.id!r}'s actions"
    if p is None or not (math.isfinite(p) and 0.0 < p <= 1.0):
        return f"would_have_probability {p!r} outside (0, 1]"
    return None


def _notes_problem(d: BusDecision, placement) -> str | None:
    """A decision's gate notes (policies.gated) fit the placement's gate: as many numbers
    as its policies need, the acting policy one of them, probabilities in [0, 1], values
    finite; a placement without challengers takes none, a holdout row carries none."""
    notes = d.decision_notes
    if notes is None:
        return None
    members = 1 + len(placement.challengers) if placement.challengers else 0
    if not members or d.group != "treatment":
        return "decision notes on a decision no promotion gate made"
    if len(notes) != notes_width(members):
        return f"decision notes hold {len(notes)} numbers, not {notes_width(members)}"
    if not all(math.isfinite(v) for v in notes):
        return "decision notes are not finite"
    acted, p = notes[0], notes[2:2 + members]
    if acted not in range(members) or not all(0.0 <= v <= 1.0 for v in p):
        return "decision notes out of range"
    return None


def outcome_problem(o: BusOutcome, config, now: float) -> str | None:
    """Why the trainer must not take outcome ``o`` (None: it may)."""
    if (o.visitor_hash is None) == (not o.event_id):
        return "an outcome names exactly one of event_id and visitor_hash"
    if o.event_id and not _EVENT_ID.fullmatch(o.event_id):
        return "event_id is not an event id"
    if o.visitor_hash is not None and not _HASH.fullmatch(o.visitor_hash):
        return "visitor_hash is not a visitor hash"
    if o.outcome_key is not None and not _HASH.fullmatch(o.outcome_key):
        return "outcome_key is not an outcome id's hash"
    problem = _time_problem(o.ts, now)
    if problem:
        return problem
    limit = config.objective.max_order_value
    if not (math.isfinite(o.order_value) and 0.0 <= o.order_value <= limit):
        return f"order_value {o.order_value!r} outside [0, {limit:g}]"
    if o.redeemed is not None and not set(o.redeemed) <= set(config.action_ids):
        return "redeemed names an action the shop does not have"
    return None


def activation_problem(a: BusActivation, now: float) -> str | None:
    if not _EVENT_ID.fullmatch(a.event_id):
        return "event_id is not an event id"
    return _time_problem(a.ts, now)


def screen(entries: list[tuple[str, bytes, bool]], config, space, now: float) -> Screened:
    """Decode and check every record of ``entries`` ((id, bytes, signed by the bus key); see
    the module docstring)."""
    out = Screened()
    for entry_id, raw, signed in entries:
        if not signed:
            out.dead.append(DeadLetter(entry_id, "entry", "not signed with the shop's bus key "
                                       "(forged, or a process with another CARTWHEEL_BUS_KEY)",
                                       bytes(raw[:65536])))
            continue
        try:
            entry = decode_entry(raw)
        except (msgspec.DecodeError, RecursionError) as exc:
            out.dead.append(DeadLetter(entry_id, "entry", f"not a cartwheel entry: {exc}",
                                       bytes(raw[:65536])))
            continue
        kept = []
        for kind, records, problem in (
                ("decision", entry.decisions, lambda r: decision_problem(r, config, space, now)),
                ("activation", entry.activations, lambda r: activation_problem(r, now)),
                ("outcome", entry.outcomes, lambda r: outcome_problem(r, config, now))):
            good = []
            for record in records:
                why = problem(record)
                if why is None:
                    good.append(record)
                else:
                    out.dead.append(DeadLetter(entry_id, kind, why, _encode(record)))
            kept.append(good)
        out.entries.append((entry_id, BusEntry(kept[0], kept[2], entry.replica, kept[1])))
    return out
