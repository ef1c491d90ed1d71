"""Drive a live :class:`bandit.Engine` with simulated visitors and delayed outcomes.

This is the end-to-end path a shop runs: every visitor is a ``decide`` call, a converted
visitor's order arrives ``delay`` seconds later as ``record_outcome``, visitors who do not buy
send nothing and their events close with the default reward when the attribution window passes
(``expire``). Time is simulated: visitors arrive at ``rate`` per second, and the engine must be
opened with a settable clock (an object with a ``t`` attribute that returns it when called).
"""

from __future__ import annotations

import heapq
import time

import numpy as np

from bandit.domain.errors import ClosedEventError
from simulator.worlds.runner import RunResult, batch_sums, result_from_sums, streams
from simulator.worlds.world import World


def drive(engine, world: World, *, visitors: int = 100_000, rate: float = 10.0, seed: int = 0,
          batch_size: int = 100, expire_every_s: float = 60.0, progress=None,
          traffic=None) -> RunResult:
    """Run ``visitors`` simulated visitors through ``engine``; score like :func:`simulator.run`.

    Writes are group-committed once per ``batch_size`` visitors. Orders that arrive after their
    event's window closed are refused by the engine (a 409 over HTTP) and ignored, as a shop's
    order pipeline would. ``traffic``: 24 weights of the (UTC) hour, for a daily rhythm; the
    arrival rate in hour h is ``rate * traffic[h] / mean(traffic)`` (None: ``rate`` always).
    """
    hourly = None if traffic is None else np.asarray(traffic, float) / np.mean(traffic)
    if hourly is not None and (hourly.shape != (24,) or not (hourly > 0).all()):
        raise ValueError("traffic must be 24 positive weights, one per hour")
    if tuple(engine.config.action_ids) != tuple(world.actions):
        raise ValueError("engine and world must have the same actions in the same order")
    clock, objective = engine.clock, engine.config.objective
    visitor_rng, outcome_rng = streams(seed)
    index = {a: i for i, a in enumerate(world.actions)}
    pending: list[tuple[float, str, float]] = []  # (due time, event id, order value)
    sums, seconds, done = [], 0.0, 0
    next_expire = clock.t + expire_every_s
    while done < visitors:
        n = min(batch_size, visitors - done)
        batch = world.visitors(n, visitor_rng, start=done)
        actions, event_ids, decided_at = np.empty(n, dtype=np.intp), [], np.empty(n)
        t0 = time.perf_counter()
        for i, ctx in enumerate(batch.contexts):
            clock.t += 1.0 / (rate if hourly is None
                              else rate * hourly[int(clock.t // 3600) % 24])
            while pending and pending[0][0] <= clock.t:
                _, event_id, value = heapq.heappop(pending)
                _deliver(engine, event_id, value)
            if clock.t >= next_expire:
                engine.expire()
                next_expire = clock.t + expire_every_s
            eligible = [a for a, ok in zip(world.actions, batch.mask[i]) if ok]
            decision = engine.decide(f"visitor-{seed}-{done + i}", ctx, eligible, commit=False)
            actions[i], decided_at[i] = index[decision.action], clock.t
            event_ids.append(decision.event_id)
        engine.commit()
        seconds += time.perf_counter() - t0
        out = world.outcomes(batch, actions, outcome_rng)
        for i in np.flatnonzero(out.converted):
            heapq.heappush(pending, (decided_at[i] + out.delay_s[i], event_ids[i],
                                     float(out.order_value[i])))
        sums.append(batch_sums(batch.mask, world.expected_rewards(batch, objective), actions, out,
                               world.rewards(out, objective)))
        done += n
        if progress is not None:
            progress(n)
    return result_from_sums(engine.policy.spec, objective, sums, seconds,
                             {"world": world.name, "seed": seed, "rate": rate, "engine": True})


def _deliver(engine, event_id: str, value: float) -> None:
    try:
        engine.record_outcome(event_id, True, value, commit=False)
    except ClosedEventError:
        pass
