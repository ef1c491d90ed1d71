"""Budget pacing vs the hard stop, through the engine, over whole simulated days.

Run: ``python benchmarks/pacing.py [--world default] [--seeds 3] [--days 3] [--per-day 20000]
[--traffic even|diurnal]``.

Per seed: a run without a budget measures the day's unconstrained incentive spend (mean over
its days); the budget is then ``--binds`` (0.4) of it, and the same visitors and outcome draws
(common random numbers) go through an engine with the hard stop only, one with
``pacing = "even"`` and, with ``--traffic diurnal``, one with ``pacing = "profile"`` whose plan
is the traffic's own rhythm. A policy that cannot be paced (``vw``) runs without a budget and
with the hard stop only. Visitors arrive evenly over the day or with ``DIURNAL``'s rhythm
(``--per-day`` a day), their orders after the world's delays; the attribution window is a day.
Printed per policy and run: expected profit per visitor (the world's exact expected reward of
each chosen action), the daily spend as a share of the budget, the hour at which the budget
ran out (mean over the days it did), the worst day's overshoot (spend above the budget: what
offers shown before the stop cost when their orders came in) and how many incentives were
chosen after the stop.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
import simulator  # noqa: E402
from bandit import Engine
from bandit.config.shop import parse_config  # noqa: E402
from bandit.core import pacing
from simulator.worlds.online import drive  # noqa: E402

DAY = 86400.0
MIDNIGHT = 1_700_006_400.0  # 2023-11-15 00:00 UTC


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Day:
    spend: float
    ran_out_h: float | None  # hours after midnight when the spend reached the budget
    after_stop: int  # incentives chosen after the budget ran out (the hard stop: 0)


@dataclass
class Outcome:
    profit: float  # expected profit per visitor
    days: list[Day]


def config_for(world, policy: str, budget: float | None, pacing: str, profile=None):
    doc = dict(world.config.raw)
    doc["privacy"] = {"salt": "bench"}
    doc["holdout"] = {"fraction": 0.0}
    doc["policy"] = {"spec": policy}
    doc["attribution"] = dict(doc.get("attribution", {}), window_s=DAY)
    if budget is not None:
        doc["budget"] = {"daily_incentive_spend": budget, "timezone": "UTC", "pacing": pacing}
        if pacing == "profile":
            doc["budget"]["profile"] = list(profile)
    else:
        doc.pop("budget", None)
    return parse_config(doc, source="pacing-bench.toml")


#: visitors per UTC hour of a shop with a daily rhythm (quiet nights, an evening peak)
DIURNAL = (0.3, 0.2, 0.15, 0.15, 0.2, 0.3, 0.5, 0.8, 1.0, 1.1, 1.2, 1.2,
           1.3, 1.3, 1.2, 1.2, 1.3, 1.4, 1.6, 1.8, 1.9, 1.6, 1.1, 0.6)


def run(world, policy: str, seed: int, days: int, per_day: int, budget: float | None,
        pacing: str = "none", traffic=None) -> Outcome:
    config = config_for(world, policy, budget, pacing, traffic)
    costed = {a.id for a in config.actions if a.costed}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.open(config, tmp, seed=seed, clock=Clock(MIDNIGHT))
        result = drive(engine, world, visitors=days * per_day, rate=per_day / DAY, seed=seed,
                       batch_size=50, traffic=traffic)
        engine.expire(now=engine.clock() + 2 * DAY)  # every window closes: all spend counted
        engine.flush()
        buckets = dict(engine.store.spend_buckets(MIDNIGHT, 900.0))
        decisions = [(d.ts, d.action in costed) for d in engine.store.decisions()]
        engine.close()
    out = []
    for day in range(days):
        start = MIDNIGHT + day * DAY
        first = int(start // 900)
        spend = np.array([buckets.get(b, 0.0) for b in range(first, first + 96)])
        total = float(spend.sum())
        ran_out = after = None
        if budget is not None:
            hit = np.flatnonzero(np.cumsum(spend) >= budget)
            if len(hit):
                stop = start + (hit[0] + 1) * 900.0  # the end of the bucket it ran out in
                ran_out = (hit[0] + 1) / 4
                after = sum(1 for ts, c in decisions if c and stop <= ts < start + DAY)
        out.append(Day(total, ran_out, after or 0))
    return Outcome(float(result.expected[-1] / result.visitors), out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="default")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--per-day", type=int, default=20_000)
    ap.add_argument("--binds", type=float, default=0.4)
    ap.add_argument("--policies", default="linucb,profit")
    ap.add_argument("--rate", type=float, default=None,
                    help="the shadow price's step (bandit.core.pacing.RATE; for measuring it)")
    ap.add_argument("--traffic", choices=("even", "diurnal"), default="even",
                    help="visitors evenly over the day, or with DIURNAL's daily rhythm (then "
                         "pacing = \"profile\" with that rhythm runs too)")
    args = ap.parse_args()
    traffic = DIURNAL if args.traffic == "diurnal" else None
    runs = ["hard stop", "even"] + (["profile"] if traffic else [])
    if args.rate is not None:
        pacing.RATE = args.rate
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}; world {args.world}, {args.days} days x "
          f"{args.per_day:,} visitors ({args.traffic} traffic), budget {args.binds:.0%} of "
          f"unconstrained spend, {args.seeds} seeds")
    print(f"{'policy':8s} {'run':10s} {'profit/visitor':>15s} {'spend/budget':>13s} "
          f"{'ran out at':>11s} {'overshoot':>10s} {'incentives after':>17s}")
    for policy in policies.split_specs(args.policies):
        # a policy that does not choose by estimated rewards cannot be paced (the config
        # refuses it): it runs unconstrained and with the hard stop only
        paceable = policies.REGISTRY[policies.parse_spec(policy)[0]].priceable
        runs_here = runs if paceable else ["hard stop"]
        rows: dict[str, list] = {name: [] for name in ["unconstrained", *runs_here]}
        for seed in range(args.seeds):
            world = simulator.make_world(args.world, seed=seed)
            free = run(world, policy, seed, args.days, args.per_day, None, traffic=traffic)
            budget = args.binds * float(np.mean([d.spend for d in free.days]))
            rows["unconstrained"].append((free, budget))
            for name in runs_here:
                mode = "none" if name == "hard stop" else name
                rows[name].append((run(world, policy, seed, args.days, args.per_day, budget,
                                       mode, traffic), budget))
        base = np.array([o.profit for o, _ in rows["hard stop"]])
        for name, results in rows.items():
            profit = np.array([o.profit for o, _ in results])
            ratio = [d.spend / b for o, b in results for d in o.days]
            outs = [d.ran_out_h for o, _ in results for d in o.days if d.ran_out_h is not None]
            over = [max(0.0, d.spend / b - 1) for o, b in results for d in o.days]
            after = sum(d.after_stop for o, _ in results for d in o.days)
            n_days = sum(len(o.days) for o, _ in results)
            diff = profit - base
            vs = ("" if name == "hard stop" else
                  f"  vs hard stop {diff.mean():+.3f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}")
            out_at = (f"{np.mean(outs):5.1f} h ({len(outs)}/{n_days})" if outs else "-")
            print(f"{policy:8s} {name:13s} {profit.mean():8.3f} ± {profit.std(ddof=1):.3f} "
                  f"{np.mean(ratio):9.2f} {out_at:>16s} {np.max(over):9.1%} {after:8d}{vs}")


if __name__ == "__main__":
    main()
