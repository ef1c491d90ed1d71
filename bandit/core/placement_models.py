"""The shop's models: one per placement, each with its keeper (docs/architecture.md,
"Placements").

:class:`PlacementModels` is the engine's part that holds a
:class:`~bandit.core.keeper.ModelKeeper` per placement, in config order, and routes to them what
the engine learns: a request group's provisional rows by placement, each closed event to the
model of the placement it was decided at. Each keeper snapshots into a folder of its own
(:func:`~bandit.core.keeper.snapshot_folder`), so adding or removing a placement keeps what the
others learned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bandit.core.gate import gate_view, is_gate
from bandit.core.joiner import Closing
from bandit.core.keeper import ModelKeeper, snapshot_folder
from bandit.core.model import pack_models
from bandit.core.unit_of_work import PolicyDraws
from bandit.domain.errors import CartwheelError


class PlacementModels:
    """One :class:`ModelKeeper` per placement of ``config``.

    Parameters
    ----------
    config, space, store
        The shop, its feature space and its event log.
    snapshots : Path
        The data dir's snapshot folder (each placement has one inside it).
    seed : int, optional
        The first placement's policy seed; the next ones get ``seed + 1``, ``seed + 2``, ...
    clock, closed_through : callable
        As :class:`ModelKeeper` takes them.
    """

    def __init__(self, config, space, store, snapshots: Path, seed: int | None,
                 clock: Callable, closed_through: Callable[[], int]):
        self.config = config
        #: the keepers by placement id, in config order
        self.keepers = {p.id: ModelKeeper(
            config, space, store, snapshot_folder(snapshots, p.id),
            None if seed is None else seed + i, clock, closed_through, p)
            for i, p in enumerate(config.placements)}
        self.first = next(iter(self.keepers.values()))

    def build(self, fresh: bool = False) -> None:
        for keeper in self.keepers.values():
            keeper.build(fresh)

    def learner(self, placement_id: str):
        """The current learner of a placement (rebuilt ones included)."""
        return self.keepers[placement_id].learner

    def parts(self) -> list:
        """What each model gives a request group (:mod:`bandit.core.unit_of_work`): its
        keeper's staged learning and its policy's random state."""
        out = []
        for keeper in self.keepers.values():
            out += [keeper, PolicyDraws(lambda k=keeper: k.learner)]
        return out

    # ------------------------------------------------------------------ learning
    def stage_decisions(self, learn_rows: dict[str, list], last_seq: int) -> None:
        """Provisional rows of a group's decisions, by placement; every decision up to
        ``last_seq`` is staged (a placement with none in the group stages none)."""
        for placement, keeper in self.keepers.items():
            keeper.learner.stage_decisions(learn_rows.get(placement, []), last_seq)

    def stage_closings(self, closings: list[Closing]) -> None:
        """Closed events, each to its placement's model (a placement the config no longer has
        learns nothing)."""
        for closing in closings:
            keeper = self.keepers.get(closing.decision.placement)
            if keeper is not None:
                keeper.learner.stage_closings([closing])

    def committed(self) -> None:
        for keeper in self.keepers.values():
            keeper.committed()

    def flush(self) -> None:
        for keeper in self.keepers.values():
            keeper.learner.flush()

    def recover(self, why: str) -> None:
        """A model turned non-finite: rebuild the ones that are (all, if none says so)."""
        broken = [k for k in self.keepers.values() if not k.learner.healthy()]
        for keeper in broken or self.keepers.values():
            keeper.recover(why)

    # ------------------------------------------------------------------ counts
    @property
    def model_version(self) -> int:
        """Changes applied to the models, summed over placements."""
        return sum(k.learner.model_version for k in self.keepers.values())

    @property
    def update_count(self) -> int:
        """Decisions learned at every placement (pending provisional rows included)."""
        return sum(k.learner.policy.n_updates + k.learner.pending_rows
                   for k in self.keepers.values())

    @property
    def last_learned_seq(self) -> int:
        """The newest closing any placement's model has learned (closed.seq)."""
        return max(k.learner.last_learned_seq for k in self.keepers.values())

    @property
    def held(self) -> int:
        """Closings the non-additive models hold for decision order."""
        return sum(k.learner.held for k in self.keepers.values())

    # ------------------------------------------------------------------ promotion gates
    def gates(self) -> dict[str, dict]:
        """Each gated placement's standing (:func:`bandit.core.gate.gate_view`)."""
        views = {pid: gate_view(k.learner.policy) for pid, k in self.keepers.items()}
        return {pid: view for pid, view in views.items() if view is not None}

    def gate(self, placement_id: str):
        """A placement's gate, or a clear error when it runs one policy."""
        policy = self.keepers[placement_id].learner.policy
        if not is_gate(policy):
            raise CartwheelError(f"placement {placement_id!r} runs one policy ({policy.spec}); "
                                 "a promotion needs challengers: set [policy] challengers",
                                 field="placement")
        return policy

    def announce(self, placement_id: str) -> None:
        keeper = self.keepers[placement_id]
        keeper.gate_log.announce(keeper.learner.policy)

    # ------------------------------------------------------------------ snapshots
    def contents(self) -> tuple[dict[str, np.ndarray], dict]:
        """Every model's state and metadata as one snapshot (what the trainer publishes)."""
        return pack_models({pid: k.contents() for pid, k in self.keepers.items()},
                           {"config_hash": self.config.config_hash(),
                            "schema_hash": self.config.schema_hash(),
                            "model_version": self.model_version})

    def write_snapshots(self) -> list[Path]:
        """A snapshot of every model now (the caller has committed and flushed)."""
        return [keeper.write_snapshot() for keeper in self.keepers.values()]

    def close(self) -> None:
        for keeper in self.keepers.values():
            keeper.close()
