"""Poisoning: what one anonymous client can do to what the model learns, within the limits.

Run: ``python benchmarks/poisoning.py [--hours 2] [--rate 10]``. The default simulated shop
takes ``--rate`` real visitors a second (their orders as the world draws them) for
``--hours`` simulated hours, the engine learning as it goes; beside them one attacker sends
decides from one address with a context of its choosing (a returning e-mail visitor with a
large cart) and never orders, at 0, 5 and 50 decides a second (50: ``[server] address_rate``'s
default, the most one address gets through). Without signed requests that is what a page may
do: ``eligible`` is refused (403), so the attacker can only add zero-reward rows for contexts
it claims. With ``signed_requests`` on, every one of its decides is refused (401: no token
signed by the shop's backend), so its effect is none (``tests/system/test_trust.py``).

Printed per attack rate: the policy's incentive share and its true expected profit per real
visitor (from the world's exact response, over 20,000 fresh real visitors) at the end, and
the change against no attack. Three seeds each, means.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import simulator  # noqa: E402
from bandit import Engine, load_config  # noqa: E402

T0 = 1_760_000_000.0
ATTACK_CTX = {"traffic_source": "email", "returning": True, "cart_value": 180.0,
              "device": "desktop", "page_type": "cart"}


def run(attack_rate: float, hours: float, rate: float, seed: int) -> tuple[float, float]:
    """(incentive share, true profit per real visitor) of the policy after the run."""
    world = simulator.make_world()
    config = load_config()
    clock = [T0]
    with tempfile.TemporaryDirectory() as d:
        engine = Engine.open(config, d, seed=seed, clock=lambda: clock[0])
        rng = np.random.default_rng(seed)
        index = {a: i for i, a in enumerate(world.actions)}
        step_s = 60.0
        for minute in range(int(hours * 60)):
            n = rng.poisson(rate * step_s)
            visitors = world.visitors(n, rng, start=minute * 10_000)
            at = T0 + minute * step_s
            decided = engine.decide_batch([(f"s{seed}m{minute}v{j}", visitors.contexts[j], None)
                                           for j in range(n)], now=at)
            attackers = int(attack_rate * step_s)
            if attackers:
                engine.decide_batch([(f"bot{minute}-{j}", ATTACK_CTX, None)
                                     for j in range(attackers)], now=at)
            out = world.outcomes(visitors, np.array([index[x.action] for x in decided]), rng)
            for j in np.flatnonzero(out.converted):
                engine.record_outcome(decided[j].event_id, True, float(out.order_value[j]),
                                      now=at + 30, commit=False)
            engine.commit()
            clock[0] = at + step_s
            engine.expire(now=at + step_s + config.attribution.window_s)
        fresh = world.visitors(20_000, np.random.default_rng(999))
        policy = engine.models.first.learner.policy
        P = policy.probabilities(fresh.X, fresh.mask)
        engine.close()
    costed = np.array([a.costed for a in config.actions])
    profit = float((P * world.expected_rewards(fresh)).sum(axis=1).mean())
    return float(P[:, costed].sum(axis=1).mean()), profit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=10.0, help="real visitors a second")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; default shop, "
          f"{args.rate:g} real visitors/s for {args.hours:g} h, linucb; {args.seeds} seeds, "
          "means; signed requests: every attacking decide refused (effect none)")
    print(f"{'attacker decides/s':>19s} {'share of traffic':>17s} {'incentive share':>16s} "
          f"{'profit/visitor':>15s} {'vs no attack':>13s}")
    base = None
    for attack in (0.0, 5.0, 50.0):
        runs = [run(attack, args.hours, args.rate, seed) for seed in range(args.seeds)]
        share, profit = map(float, np.mean(runs, axis=0))
        base = profit if base is None else base
        print(f"{attack:19g} {attack / (attack + args.rate):17.1%} {share:16.1%} "
              f"{profit:15.3f} {(profit - base) / abs(base):+13.1%}", flush=True)


if __name__ == "__main__":
    main()
