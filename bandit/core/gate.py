"""The engine's side of the promotion gate (``policies.gated``; docs/architecture.md, "The
promotion gate"): what a placement's gate looks like to the report, the dashboard, ``/metrics``
and ``cartwheel policies --status``, and the log line each promotion, retirement or rollback
leaves.

The gate itself decides, learns and keeps its history in its state (snapshots carry it, so a
restart resumes it exactly); this module only reads it, and relays a person's decision
(``promote``, ``pin``, ``roll_back``) to it.
"""

from __future__ import annotations

import logging

from bandit.domain.errors import CartwheelError

log = logging.getLogger("cartwheel.gate")

#: what changes a gate's champion or traffic, as counted in ``/metrics``
EVENT_KINDS = ("promotions", "retired", "rollbacks")


def is_gate(policy) -> bool:
    """Whether ``policy`` is a promotion gate (it notes its decisions for the comparison)."""
    return bool(getattr(policy, "notes_width", 0))


def gate_view(policy) -> dict | None:
    """A gate's standing as plain data (None for a single policy).

    ``policies``: per policy its spec, role (champion, challenger, retired), traffic share,
    rows it decided and, against the champion, the estimated advantage (reward per visitor)
    with its running bounds and the rows it still needs at that estimate; then the history.
    """
    if not is_gate(policy):
        return None
    return {"champion": policy.specs[policy.champion], "mode": policy.mode,
            "previous": None if policy.previous is None else policy.specs[policy.previous],
            "share": policy.share, "confidence": policy.confidence,
            "min_effect": policy.min_effect, "rows_compared": policy.evidence.rows,
            "policies": policy.status(),
            "promotions": [p._asdict() for p in policy.promotions],
            "retired": [r._asdict() for r in policy.retired],
            "rollbacks": [r._asdict() for r in policy.rollbacks]}


def event_counts(policy) -> dict[str, int]:
    """How many promotions, retirements and rollbacks a gate has made (zeros otherwise)."""
    if not is_gate(policy):
        return dict.fromkeys(EVENT_KINDS, 0)
    return {kind: len(getattr(policy, kind)) for kind in EVENT_KINDS}


class GateLog:
    """Logs each promotion, retirement and rollback once, as the gate makes it (a restart
    does not log the history its snapshot restored)."""

    def __init__(self, placement_id: str, policy):
        self.placement_id = placement_id
        self.seen = event_counts(policy)

    def announce(self, policy) -> None:
        if not is_gate(policy):
            return
        counts = event_counts(policy)
        where = f"placement {self.placement_id!r}"
        for p in policy.promotions[self.seen["promotions"]:counts["promotions"]]:
            log.warning("%s: %s promoted over %s at row %d (%s; advantage %+.4f per visitor, "
                        "lower bound %+.4f)", where, p.to_spec, p.from_spec, p.row,
                        "by a person" if p.by == "person" else "by the gate", p.estimate,
                        p.bound)
        for r in policy.retired[self.seen["retired"]:counts["retired"]]:
            if r.reason == "bound":
                log.warning("%s: challenger %s retired at row %d: its upper bound against the "
                            "champion fell below -min_effect", where, r.spec, r.row)
        for r in policy.rollbacks[self.seen["rollbacks"]:counts["rollbacks"]]:
            log.warning("%s: rolled back from %s to %s at row %d: %s", where, r.from_spec,
                        r.to_spec, r.row, r.reason)
        self.seen = counts


#: what a person may do to a gate (``cartwheel policies``, ``POST /v1/policies``)
CHANGES = ("promote", "pin", "unpin", "roll_back")


def change(engine, what: str, spec: str | None = None, placement: str | None = None,
           reason: str = "rolled back by a person") -> dict:
    """A person's decision on a placement's gate: ``promote`` SPEC, ``pin`` (SPEC or the
    champion), ``unpin`` or ``roll_back``; logged, and written to a snapshot at once (the
    log cannot replay a person's choice, so it must not wait for the next one). Returns the
    gate's new standing. The caller makes sure no request group is open."""
    if what not in CHANGES:
        raise CartwheelError(f"unknown gate change {what!r}; one of {CHANGES}", field="change")
    if what == "promote" and not spec:
        raise CartwheelError("promote needs the spec of the challenger to promote "
                             "(see the gate's policies with 'cartwheel policies --status')",
                             field="spec")
    pid = engine.config.placement(placement).id
    gate = engine.models.gate(pid)
    try:
        {"promote": lambda: gate.promote(spec), "pin": lambda: gate.pin(spec),
         "unpin": gate.unpin, "roll_back": lambda: gate.roll_back(reason)}[what]()
    except ValueError as exc:
        raise CartwheelError(str(exc), field="spec") from None
    engine.models.announce(pid)
    engine.flush()
    engine.models.keepers[pid].write_snapshot()
    return gate_view(gate)
