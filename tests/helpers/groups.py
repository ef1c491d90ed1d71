"""Simulated traffic through the request groups of a deployment (one process's or replicas')."""

from __future__ import annotations

import asyncio
import heapq
import time

import numpy as np

from bandit.domain.errors import ClosedEventError
from bandit.http import api
from simulator.worlds.runner import RunResult, batch_sums, result_from_sums, streams
from simulator.worlds.world import World


async def drive_groups(groups, world: World, *, after_batch=None, visitors: int = 100_000,
                       rate: float = 10.0, seed: int = 0, batch_size: int = 100) -> RunResult:
    """:func:`simulator.worlds.online.drive` through the request groups of a deployment: one process's
    (:class:`bandit.http.serving.RequestGroup` of an engine) or decide replicas'
    (:class:`bandit.http.replica_role.ReplicaGroup`), the same traffic either way.

    Each mini-batch's visitors go round robin to ``groups``, after the orders due by the
    batch's end are reported through them; then ``await after_batch()`` (one process: expiry;
    replicas: the trainer ingests and publishes, the replicas load what it published, so
    they decide with the model of their last load: the snapshot delay of a real deployment).
    """
    engine = groups[0].engine
    clock, objective = engine.clock, engine.config.objective
    visitor_rng, outcome_rng = streams(seed)
    index = {a: i for i, a in enumerate(world.actions)}
    pending: list[tuple[float, str, float]] = []
    sums, seconds, done = [], 0.0, 0
    while done < visitors:
        n = min(batch_size, visitors - done)
        batch = world.visitors(n, visitor_rng, start=done)
        clock.t += n / rate
        due = []
        while pending and pending[0][0] <= clock.t:
            due.append(heapq.heappop(pending))
        t0 = time.perf_counter()
        for k, group in enumerate(groups):
            await asyncio.gather(*[_report(group, event_id, value)
                                   for _, event_id, value in due[k::len(groups)]])
        decisions = [None] * n
        for k, group in enumerate(groups):
            rows = range(k, n, len(groups))
            answers = await asyncio.gather(*[group.decide(api.DecideRequest(
                f"visitor-{seed}-{done + i}", batch.contexts[i],
                [a for a, ok in zip(world.actions, batch.mask[i]) if ok])) for i in rows])
            for i, d in zip(rows, answers):
                decisions[i] = d
        if after_batch is not None:
            await after_batch()
        seconds += time.perf_counter() - t0
        actions = np.array([index[d.action] for d in decisions], dtype=np.intp)
        out = world.outcomes(batch, actions, outcome_rng)
        for i in np.flatnonzero(out.converted):
            heapq.heappush(pending, (clock.t + out.delay_s[i], decisions[i].event_id,
                                     float(out.order_value[i])))
        sums.append(batch_sums(batch.mask, world.expected_rewards(batch, objective), actions, out,
                               world.rewards(out, objective)))
        done += n
    return result_from_sums(engine.policy.spec, objective, sums, seconds,
                            {"world": world.name, "seed": seed, "rate": rate,
                             "groups": len(groups)})


async def _report(group, event_id: str, value: float) -> None:
    try:  # one process refuses an order after its window (409); a replica accepts it and
        await group.outcome(api.OutcomeRequest(
            event_id=event_id, converted=True, order_value=value))  # the trainer drops it
    except ClosedEventError:
        pass
