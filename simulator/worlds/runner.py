"""Run a policy against a world in mini-batches and score it against the exact oracle.

Each mini-batch is decided with the model as it was at the batch start, then learned: the
feedback delay of a real shop, where many visitors are served between two updates. Regret and
captured gain use the world's exact expected rewards of the chosen actions (low variance); the
policy itself only ever sees sampled, noisy rewards.

>>> import simulator, policies
>>> world = simulator.make_world()
>>> pol = policies.make("uniform", n_actions=world.n_actions, n_features=world.space.dim, seed=0)
>>> result = simulator.run(world, pol, visitors=1000, seed=0)
>>> result.visitors, abs(result.captured_gain) < 0.5
(1000, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bandit.domain.objective import RewardClip
from simulator.worlds.world import World


@dataclass(frozen=True)
class RunResult:
    """Per-batch cumulative sums of one run; KPIs are properties.

    ``expected``, ``oracle`` and ``uniform`` are sums of exact expected rewards of the chosen
    action, the best eligible action and the uniform policy over the eligible actions.
    """

    policy: str
    objective: str
    counts: np.ndarray
    expected: np.ndarray
    oracle: np.ndarray
    uniform: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray
    cost: np.ndarray
    reward: np.ndarray
    policy_seconds: float
    margin: float = 0.35
    meta: dict = field(default_factory=dict)

    @property
    def visitors(self) -> int:
        return int(self.counts[-1]) if len(self.counts) else 0

    def _per_visitor(self, series):
        return float(series[-1] / self.visitors) if self.visitors else float("nan")

    @property
    def captured_gain(self) -> float:
        """(V_policy - V_uniform) / (V_oracle - V_uniform) over the whole run."""
        gap = self.oracle[-1] - self.uniform[-1]
        return float((self.expected[-1] - self.uniform[-1]) / gap) if gap > 0 else float("nan")

    def captured_gain_between(self, start: int, stop: int) -> float:
        """Captured gain of the visitors from ``start`` to ``stop`` (counts, at batch edges),
        against the oracle and uniform of that stretch: how well the policy did *then*, for
        instance after the preferences of a ``drift`` world changed."""
        i = int(np.searchsorted(self.counts, start))
        j = int(np.searchsorted(self.counts, stop)) - 1
        if j <= i:
            raise ValueError(f"no whole batch between visitors {start} and {stop}")
        gap = (self.oracle[j] - self.oracle[i]) - (self.uniform[j] - self.uniform[i])
        gain = (self.expected[j] - self.expected[i]) - (self.uniform[j] - self.uniform[i])
        return float(gain / gap) if gap > 0 else float("nan")

    def captured_gain_curve(self) -> np.ndarray:
        """Cumulative captured gain after each batch."""
        gap = self.oracle - self.uniform
        return np.divide(self.expected - self.uniform, gap, out=np.full(len(gap), np.nan),
                         where=gap > 0)

    @property
    def regret(self) -> float:
        """Total expected regret against the oracle."""
        return float(self.oracle[-1] - self.expected[-1])

    @property
    def conversion_rate(self) -> float:
        return self._per_visitor(self.conversions)

    @property
    def aov(self) -> float:
        """Average order value of converted visitors."""
        return float(self.revenue[-1] / self.conversions[-1]) if self.conversions[-1] else 0.0

    @property
    def revenue_per_visitor(self) -> float:
        return self._per_visitor(self.revenue)

    @property
    def profit_per_visitor(self) -> float:
        """Sampled margin * revenue - incentive cost, per visitor (whatever the objective)."""
        return float((self.margin * self.revenue[-1] - self.cost[-1]) / self.visitors)

    @property
    def visitors_per_s(self) -> float:
        """Throughput of the policy alone (act + update), excluding the simulation."""
        return self.visitors / self.policy_seconds if self.policy_seconds > 0 else float("inf")


def streams(seed) -> tuple[np.random.Generator, np.random.Generator]:
    """The visitor and outcome generators of ``seed``: every driver of a world (``run``,
    ``online.drive``, ``logdata.simulate_log``) draws from these, so one seed means the same
    visitors and the same outcome draws whatever the policy (common random numbers)."""
    visitor_ss, outcome_ss = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(visitor_ss), np.random.default_rng(outcome_ss)


@dataclass(frozen=True)
class Feedback:
    """What a batch teaches: the arguments of ``Policy.update``, row-aligned."""

    X: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    mask: np.ndarray
    converted: np.ndarray
    order_values: np.ndarray
    costs: np.ndarray

    @classmethod
    def of(cls, batch, actions, rewards, propensities, out) -> "Feedback":
        """A batch's rows: its visitors, the choices and the outcomes the world drew."""
        return cls(batch.X, actions, rewards, propensities, batch.mask, out.converted,
                   out.order_value, out.incentive_cost)

    def __len__(self) -> int:
        return len(self.actions)

    def take(self, rows) -> "Feedback":
        """The rows selected by a boolean mask or index array."""
        return Feedback(*(part[rows] for part in vars(self).values()))

    @staticmethod
    def concat(parts) -> "Feedback":
        return Feedback(*(np.concatenate(column) for column in zip(*(
            vars(p).values() for p in parts))))

    def teach(self, policy) -> None:
        if len(self):
            policy.update(self.X, self.actions, self.rewards, self.propensities, self.mask,
                          converted=self.converted, order_values=self.order_values,
                          costs=self.costs)


def run(world: World, policy, *, visitors: int = 20_000, batch_size: int = 100,
        seed: int | None = 0, objective=None, progress=None, start: int = 0,
        feed=None) -> RunResult:
    """Simulate ``visitors`` visitors deciding with ``policy`` (which learns in place).

    Visitors and outcomes come from streams seeded by ``seed`` alone, so policies run with
    the same seed meet the same visitors (common random numbers). ``progress`` is an optional
    callable receiving the number of visitors done in each batch. The policy learns each
    batch's :class:`Feedback` at once, or with ``feed(feedback, visitors_before_it)`` what
    that returns (an outcome that arrives late: ``benchmarks/learning_order.py``).
    """
    if visitors < 1 or batch_size < 1:
        raise ValueError("visitors and batch_size must be >= 1")
    objective = world._objective(objective)
    clip = RewardClip(objective.reward_clip)
    visitor_rng, outcome_rng = streams(seed)
    n_batches = -(-visitors // batch_size)
    sums = np.zeros((n_batches, 8))
    policy_seconds = 0.0
    done = 0
    for i in range(n_batches):
        n = min(batch_size, visitors - done)
        batch = world.visitors(n, visitor_rng, start=start + done)
        R = world.expected_rewards(batch, objective)
        t0 = time.perf_counter()
        actions, propensities = policy.act(batch.X, batch.mask)
        policy_seconds += time.perf_counter() - t0
        out = world.outcomes(batch, actions, outcome_rng)
        rewards = objective.reward(out.converted, out.order_value, out.incentive_cost)
        # the policy learns through the engine's bound; the scores keep the real rewards
        feedback = Feedback.of(batch, actions, clip(rewards, out.converted), propensities, out)
        if feed is not None:
            feedback = feed(feedback, done)
        t0 = time.perf_counter()
        feedback.teach(policy)
        policy_seconds += time.perf_counter() - t0
        sums[i] = batch_sums(batch.mask, R, actions, out, rewards)
        done += n
        if progress is not None:
            progress(n)
    return result_from_sums(policy.spec, objective, sums, policy_seconds,
                            {"world": world.name, "seed": seed, "batch_size": batch_size})


def batch_sums(mask, R, actions, out, rewards) -> tuple:
    """One batch's row of sums: visitors, expected reward of the chosen actions, of the oracle
    and of uniform, conversions, revenue, incentive cost and realized reward."""
    n = len(actions)
    return (n, R[np.arange(n), actions].sum(), np.where(mask, R, -np.inf).max(axis=1).sum(),
            (np.where(mask, R, 0).sum(axis=1) / mask.sum(axis=1)).sum(), out.converted.sum(),
            out.order_value.sum(), out.incentive_cost.sum(), rewards.sum())


def result_from_sums(spec: str, objective, sums, seconds: float, meta: dict) -> RunResult:
    """A :class:`RunResult` from per-batch rows of :func:`batch_sums`."""
    c = np.cumsum(np.asarray(sums, dtype=float), axis=0)
    return RunResult(spec, objective.kind, c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4], c[:, 5],
                     c[:, 6], c[:, 7], seconds, objective.margin, meta)
