"""``GET /v1/segments``: segments of the serving model, recomputed off the event loop."""

from __future__ import annotations

import time

from bandit.core.model import make_policy
from bandit.http.serving import SingleFlight
from bandit.insight import segments_source
from bandit.insight.segments import DEFAULT_DEPTH, Segments


class SegmentsCache:
    """``GET /v1/segments`` for one engine: per placement, recomputed when its model changed
    and the last summary is ``max_age_s`` old (a tree over 50,000 visitors takes about a
    second), on a worker thread from a copy of the model, one computation at a time."""

    def __init__(self, engine, max_age_s: float = 60.0, depth: int = DEFAULT_DEPTH):
        self.engine, self.max_age_s, self.depth = engine, max_age_s, depth
        self._results: dict[str, tuple[int, float, Segments]] = {}
        self._flight = SingleFlight(self._compute)

    async def __call__(self, placement_id: str | None = None) -> Segments:
        """The segments of a placement's model (the first placement's by default; an unknown
        one raises :class:`~bandit.domain.errors.UnknownPlacementError`)."""
        engine = self.engine
        placement = (engine.config.placements[0] if placement_id is None
                     else engine.config.placement(placement_id))
        learner = engine.keepers[placement.id].learner
        version = learner.model_version
        if placement.id in self._results:
            seen, at, result = self._results[placement.id]
            if seen == version or time.monotonic() - at < self.max_age_s:
                return result
        if self._flight.running:
            return await self._flight()
        # the copy is taken here, on the loop: learning cannot change it midway
        state, ids = learner.policy.get_state(), list(learner.action_ids)
        result = await self._flight(placement, state, ids, version)
        self._results[placement.id] = (version, time.monotonic(), result)
        return result

    def _compute(self, placement, state: dict, ids: list[str], version: int) -> Segments:
        config = self.engine.config
        policy = make_policy(config, config.feature_space(), ids, 0, placement.model_spec)
        policy.set_state(state)
        return segments_source.for_store(config, self.engine.store.path, policy, ids,
                                         depth=self.depth, model_version=version,
                                         placement=placement.id, control=placement.control)
