"""Compare policies on one world over several seeds: the engine of ``cartwheel simulate``.

>>> table = compare(["uniform", "linucb"], visitors=500, seeds=1)
>>> [row.spec for row in table.rows]
['uniform', 'linucb']
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from simulator.worlds.runner import RunResult, run
from simulator.worlds.scenarios import make_world
from simulator.worlds.world import World


@dataclass(frozen=True)
class PolicySummary:
    """One policy's KPIs, mean over seeds (captured gain also with its sd)."""

    spec: str
    captured_gain: float
    captured_gain_sd: float
    conversion_rate: float
    aov: float
    revenue_per_visitor: float
    profit_per_visitor: float
    visitors_per_s: float
    curve: tuple[float, ...]


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: one summary per policy plus the world's reference values."""

    scenario: str
    objective: str
    visitors: int
    seeds: int
    rows: tuple[PolicySummary, ...]
    oracle_value: float
    uniform_value: float
    best_single: str
    best_single_gain: float
    curve_visitors: tuple[int, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Comparison":
        data = json.loads(text)
        rows = tuple(PolicySummary(**{**r, "curve": tuple(r["curve"])}) for r in data["rows"])
        return cls(**{**data, "rows": rows, "curve_visitors": tuple(data["curve_visitors"])})

    def format(self) -> str:
        """A plain-text table for terminals and the results pages."""
        head = (f"scenario {self.scenario}, objective {self.objective}, {self.visitors:,} visitors "
                f"x {self.seeds} seeds\n"
                f"oracle {self.oracle_value:.4f}/visitor, uniform {self.uniform_value:.4f}/visitor; "
                f"best single intervention for everyone ({self.best_single}) captures "
                f"{self.best_single_gain:.1%} of the oracle gain\n")
        cols = ("policy", "captured gain", "conv rate", "AOV", "revenue/vis", "profit/vis",
                "visitors/s")
        lines = [cols] + [(r.spec, f"{r.captured_gain:6.1%} ± {r.captured_gain_sd:.1%}",
                           f"{r.conversion_rate:.2%}", f"{r.aov:.2f}",
                           f"{r.revenue_per_visitor:.3f}", f"{r.profit_per_visitor:.3f}",
                           f"{r.visitors_per_s:,.0f}") for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
        fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        return head + "\n".join(fmt.format(*line) for line in lines)


def best_single_action(world: World, objective=None, n: int = 100_000, seed: int = 12345):
    """The one intervention that is best for everyone, and the share of oracle gain it captures.

    Where it is not eligible, the visitor gets the control (first action).
    """
    batch = world.visitors(n, np.random.default_rng(seed))
    R = world.expected_rewards(batch, objective)
    oracle = np.where(batch.mask, R, -np.inf).max(axis=1).mean()
    uniform = (np.where(batch.mask, R, 0).sum(axis=1) / batch.mask.sum(axis=1)).mean()
    values = [np.where(batch.mask[:, k], R[:, k], R[:, 0]).mean() for k in range(world.n_actions)]
    k = int(np.argmax(values))
    return world.actions[k], float((values[k] - uniform) / (oracle - uniform))


def compare(specs, *, scenario: str = "default", visitors: int = 20_000, seeds: int = 3,
            objective=None, batch_size: int = 100, progress=None) -> Comparison:
    """Run every policy spec on the scenario for each seed (same visitors for all policies)."""
    specs = list(specs)
    if not specs or int(seeds) < 1:
        raise ValueError(f"compare needs at least one policy spec and seeds >= 1, got "
                         f"{len(specs)} specs and seeds={seeds}")
    if len(set(specs)) < len(specs):
        twice = sorted({s for s in specs if specs.count(s) > 1})
        raise ValueError(f"policy specs given twice: {twice}; each row of the table is one spec")
    results: dict[str, list[RunResult]] = {s: [] for s in specs}
    for seed in range(seeds):
        world = make_world(scenario, seed=seed)
        for spec in specs:
            policy = world.policy(spec, seed=seed, objective=objective)
            results[spec].append(run(world, policy, visitors=visitors, batch_size=batch_size,
                                     seed=seed, objective=objective, progress=progress))
    rows = []
    for spec, runs in results.items():
        gains = np.array([r.captured_gain for r in runs])
        curves = np.mean([r.captured_gain_curve() for r in runs], axis=0)
        rows.append(PolicySummary(
            spec, float(gains.mean()), float(gains.std(ddof=1)) if len(gains) > 1 else 0.0,
            float(np.mean([r.conversion_rate for r in runs])), float(np.mean([r.aov for r in runs])),
            float(np.mean([r.revenue_per_visitor for r in runs])),
            float(np.mean([r.profit_per_visitor for r in runs])),
            float(np.mean([r.visitors_per_s for r in runs])), tuple(curves.tolist())))
    first = next(iter(results.values()))
    world = make_world(scenario, seed=0)
    best, best_gain = best_single_action(world, objective)
    return Comparison(
        scenario, first[0].objective, visitors, seeds, tuple(rows),
        float(np.mean([r.oracle[-1] / r.visitors for r in first])),
        float(np.mean([r.uniform[-1] / r.visitors for r in first])),
        best, best_gain, tuple(int(c) for c in first[0].counts))


def plot_curves(comparison: Comparison, path: str) -> None:
    """Cumulative captured gain over visitors for each policy (needs the ``plot`` extra)."""
    try:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'cartwheel[plot]'") from None
    fig, ax = plt.subplots(figsize=(10, 4.8))
    colors = plt.cm.tab20(np.linspace(0, 1, 20))
    for i, row in enumerate(comparison.rows):
        ax.plot(comparison.curve_visitors, row.curve, label=row.spec, color=colors[(2 * i) % 20
                                                                               + (i // 10)],
                ls="-" if i < 10 else "--")
    ax.axhline(comparison.best_single_gain, color="grey", ls="--",
               label=f"best single ({comparison.best_single})")
    # percent, as the table prints it
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
    ax.set(xlabel="visitors", ylabel="cumulative captured gain (% of the oracle's gain "
                                     "over uniform)",
           title=f"{comparison.scenario} world, {comparison.objective} objective, "
                 f"mean of {comparison.seeds} seeds")
    ax.set_ylim(-0.2, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
