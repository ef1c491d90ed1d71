"""What travels on the bus between decide replicas and the trainer (docs/architecture.md,
"Scale-out"): one :class:`BusEntry` per request group, msgpack-encoded, so that any log (Redis
Streams here, Kafka next) carries opaque bytes and the records stay in one place.

>>> entry = BusEntry([BusDecision("e1", 1.0, "h", {"device": "mobile"}, ["none"], "none", 1.0,
...                               "holdout", 0, False)], [], "replica-1")
>>> decode_entry(encode_entry(entry)).decisions[0].context
{'device': 'mobile'}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from bandit.domain.records import LoggedEvent, pack_notes, unpack_notes


class BusDecision(msgspec.Struct, array_like=True, frozen=True):
    """A decision as a replica logged it (the store's decision row, without its seq)."""

    event_id: str
    ts: float
    visitor_hash: str
    context: dict[str, str | int | float | bool | None]
    eligible: list[str]
    action: str
    probability: float
    group: str
    model_version: int
    randomized: bool
    # entries of a release before placements lack the two: the default placement, active
    placement: str = "default"
    deferred: bool = False
    # a holdout decision's draw for a treated visitor (entries before it lack both: None)
    would_have_action: str | None = None
    would_have_probability: float | None = None
    # what a promotion gate noted when it decided (policies.gated; None for other policies)
    decision_notes: list[float] | None = None

    @classmethod
    def of(cls, event: LoggedEvent, eligible: tuple[str, ...]) -> "BusDecision":
        notes = None if event.decision_notes is None else unpack_notes(
            event.decision_notes).tolist()
        return cls(event.event_id, event.ts, event.visitor_hash, event.context, list(eligible),
                   event.action, event.probability, event.group, event.model_version,
                   event.randomized, event.placement, event.deferred, event.would_have_action,
                   event.would_have_probability, notes)

    def notes_bytes(self) -> bytes | None:
        """The notes as the store keeps them."""
        return None if self.decision_notes is None else pack_notes(self.decision_notes)


class BusOutcome(msgspec.Struct, array_like=True, frozen=True):
    """An outcome a replica accepted (checked; ``outcome_key`` is the keyed hash of the id):
    for one event, or (``event_id`` empty, ``visitor_hash`` given) an order sent by visitor
    id; ``redeemed`` the incentives the order used (None: every attributed one)."""

    event_id: str
    ts: float
    converted: bool
    order_value: float
    outcome_key: str | None = None
    visitor_hash: str | None = None
    redeemed: list[str] | None = None


class BusActivation(msgspec.Struct, array_like=True, frozen=True):
    """A deferred decision the page showed (``POST /v1/activate`` at a replica)."""

    event_id: str
    ts: float


class BusEntry(msgspec.Struct, array_like=True, frozen=True):
    """One request group of one replica: its decisions, then its outcomes and activations."""

    decisions: list[BusDecision]
    outcomes: list[BusOutcome]
    replica: str = ""
    activations: list[BusActivation] = []


encode_entry = msgspec.msgpack.Encoder().encode
decode_entry = msgspec.msgpack.Decoder(BusEntry).decode


class Bus(Protocol):
    """What a log between replicas and the trainer does (``bandit.scaleout.bus.RedisBus`` on
    Redis Streams; docs/architecture.md, "Scale-out"). Every method may raise
    :class:`~bandit.domain.errors.BusUnavailableError`; none may take longer than its timeout."""

    async def join(self, config_hash: str, source: str, *, salt: str | None = None,
                   replace: bool = False) -> tuple[str, str]:
        """Register this process's config; the shop's (salt, generated token)."""

    async def append(self, entry: bytes, caps: Sequence[tuple]) -> str:
        """Append one group's entry and its cap records atomically; its offset."""

    async def cap_counts(self, queries: Sequence[tuple[int, str, float]]) -> list[int]:
        """Per (cap, visitor hash, since): the decisions under the cap since then."""

    async def read(self, after: str, count: int, block_ms: int | None = None
                   ) -> list[tuple[str, bytes]]:
        """Entries after an offset, oldest first."""

    async def trim(self, upto: str) -> int:
        """Drop entries before an offset the trainer committed."""

    async def publish_snapshot(self, version: int, meta: bytes, state: bytes) -> None: ...

    async def snapshot_version(self) -> int | None: ...

    async def snapshot(self) -> tuple[int, bytes, bytes] | None: ...

    async def wait_for_snapshot(self, timeout: float) -> bool: ...

    async def set_spend(self, day_start: float, spent: float, pacing: bytes = b"") -> None: ...

    async def spend(self) -> tuple[float, float, bytes] | None: ...
