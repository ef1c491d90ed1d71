"""Where segments come from: a policy and a log, for the server, the CLI and notebooks.

* the serving model over the newest ``tail`` decisions of its own log
  (:func:`for_store`; ``GET /v1/segments``, ``cartwheel segments``);
* a policy trained by replay over a log from ``export`` or another system
  (:func:`trained_by_replay`; ``cartwheel segments --log LOG``).

The server computes on a worker thread from a *copy* of the model taken on the event loop
(:class:`SegmentsCache`), never from the policy that the loop keeps updating.
"""

from __future__ import annotations

import time

import numpy as np

from . import segments
from .model import make_policy

#: the newest decisions a segment summary looks at (recent traffic; a bounded cost)
TAIL = 50_000


def policy_probabilities(policy, policy_ids, data, chunk: int = 5000) -> np.ndarray:
    """``policy``'s action probabilities over ``data``'s rows, in ``data.action_ids`` order
    (the policy's columns may be ordered otherwise: actions added later)."""
    col = [list(policy_ids).index(a) for a in data.action_ids]
    out = np.zeros((len(data), len(data.action_ids)))
    for s in range(0, len(data), chunk):
        mask = np.zeros((min(chunk, len(data) - s), len(policy_ids)), dtype=bool)
        mask[:, col] = data.mask[s:s + chunk]
        out[s:s + chunk] = policy.probabilities(data.X[s:s + chunk], mask)[:, col]
    return out


def trained_by_replay(config, data, seed: int = 0, batch: int = 100):
    """The config's policy learned from ``data``'s randomized rows in log order, in batches
    as the engine learns (logged propensities; rewards as logged). Returns (policy, ids)."""
    policy = make_policy(config, config.feature_space(), data.action_ids, seed)
    learn = data.evaluable()
    for s in range(0, len(learn), batch):
        rows = slice(s, s + batch)
        policy.update(learn.X[rows], learn.actions[rows], learn.rewards[rows],
                      learn.propensities[rows], learn.mask[rows])
    return policy, list(data.action_ids)


def for_data(config, data, policy, policy_ids, *, depth: int = segments.DEFAULT_DEPTH,
             alpha: float = 0.05, model_version: int | None = None) -> segments.Segments:
    if len(data) == 0:
        return segments.unavailable("no closed decisions yet: segments appear once visitors "
                                    "have been decided for and their outcomes joined",
                                    model_version=model_version)
    return segments.find(data, policy_probabilities(policy, policy_ids, data),
                         config.feature_space(), config.holdout.control, depth=depth,
                         alpha=alpha, objective=config.objective.kind,
                         model_version=model_version)


def for_store(config, store_path, policy, policy_ids, *, tail: int = TAIL, **kw):
    """Segments of ``policy`` over the newest ``tail`` decisions of the event store."""
    from simulator.logio import read_log

    try:
        data, _ = read_log(store_path, config, "sqlite", unknown_keys="ignore", tail=tail)
    except ValueError:  # nothing closed yet (read_log refuses a log without a usable row)
        return for_data(config, [], policy, policy_ids, **kw)
    return for_data(config, data, policy, policy_ids, **kw)


class SegmentsCache:
    """``GET /v1/segments`` for one engine: recomputed when the model changed and the last
    summary is ``max_age_s`` old (a tree over 50,000 visitors takes about a second), on a
    worker thread from a copy of the model, one computation at a time."""

    def __init__(self, engine, max_age_s: float = 60.0, depth: int = segments.DEFAULT_DEPTH):
        self.engine, self.max_age_s, self.depth = engine, max_age_s, depth
        from .serving import SingleFlight  # the server's (aiohttp); the CLI never builds one

        self._result: tuple[int, float, segments.Segments] | None = None
        self._flight = SingleFlight(self._compute)

    async def __call__(self) -> segments.Segments:
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

    def _compute(self, state: dict, ids: list[str], version: int) -> segments.Segments:
        config = self.engine.config
        policy = make_policy(config, config.feature_space(), ids, 0)
        policy.set_state(state)
        return for_store(config, self.engine.store.path, policy, ids, depth=self.depth,
                         model_version=version)
