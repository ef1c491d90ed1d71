"""``GET /v1/segments``: segments of the serving model, recomputed off the event loop."""

from __future__ import annotations

import time

from bandit.core.model import make_policy
from bandit.http.serving import SingleFlight
from bandit.insight import segments_source
from bandit.insight.segments import DEFAULT_DEPTH, Segments


class SegmentsCache:
    """``GET /v1/segments`` for one engine: recomputed when the model changed and the last
    summary is ``max_age_s`` old (a tree over 50,000 visitors takes about a second), on a
    worker thread from a copy of the model, one computation at a time."""

    def __init__(self, engine, max_age_s: float = 60.0, depth: int = DEFAULT_DEPTH):
        self.engine, self.max_age_s, self.depth = engine, max_age_s, depth
        self._result: tuple[int, float, Segments] | None = None
        self._flight = SingleFlight(self._compute)

    async def __call__(self) -> Segments:
        engine = self.engine
        version = engine.model_version
        if self._result is not None:
            seen, at, result = self._result
            if seen == version or time.monotonic() - at < self.max_age_s:
                return result
        if self._flight.running:
            return await self._flight()
        # the copy is taken here, on the loop: learning cannot change it midway
        state, ids = engine.policy.get_state(), list(engine.policy_actions)
        result = await self._flight(state, ids, version)
        self._result = (version, time.monotonic(), result)
        return result

    def _compute(self, state: dict, ids: list[str], version: int) -> Segments:
        config = self.engine.config
        policy = make_policy(config, config.feature_space(), ids, 0)
        policy.set_state(state)
        return segments_source.for_store(config, self.engine.store.path, policy, ids, depth=self.depth,
                         model_version=version)
