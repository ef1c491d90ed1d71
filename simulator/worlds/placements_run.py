"""Running a learner in the placements world (:mod:`simulator.worlds.placements`) and scoring it
against the visit's oracle.

A learner is one of:

* ``"per-placement:SPEC"``: one policy per placement over its own actions (as the engine runs a
  shop with placements), each learning from the visit's order as an order sent by visitor id
  credits it: the order's value less its own incentive; the pop-up's policy learns only the
  visits where it was shown (activated);
* ``"joint:SPEC"``: one policy over every combination of the three, deciding the visit at once
  from the visit's first context and learning the visit's whole reward (what per-placement
  learning gives up; the engine does not do this);
* ``"fixed:PRODUCT/CART/EXIT"``: the same combination for everyone; ``"best-fixed"``: the
  combination with the highest expected value over the population; ``"uniform"``;
* ``"equilibrium"``: per visit, what perfect per-placement models choose
  (:meth:`~simulator.worlds.placements.PlacementsWorld.equilibrium`): the limit of
  per-placement learning, short of the oracle by what the interactions cost.

Scores are expected rewards (the oracle's exact values, as :func:`simulator.worlds.runner.run`):
``captured`` is the share of the oracle's gain over showing nothing anywhere that the
learner's choices earned.

>>> import simulator
>>> world = simulator.make_world("placements")
>>> r = run_placements(world, "per-placement:egreedy", visitors=400, seed=0)
>>> bool(r.oracle > r.baseline)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import policies
from bandit.domain.objective import RewardClip
from simulator.worlds.placements import PlacementsWorld
from simulator.worlds.runner import streams


@dataclass(frozen=True)
class PlacementsResult:
    """Mean expected reward per visit of a learner's choices, of the oracle (the best
    combination per visit), and of showing nothing anywhere."""

    learner: str
    visitors: int
    value: float
    oracle: float
    baseline: float

    @property
    def captured(self) -> float:
        """(value - baseline) / (oracle - baseline): the share of the reachable gain earned."""
        return (self.value - self.baseline) / (self.oracle - self.baseline)


def best_fixed(world: PlacementsWorld, visitors: int = 20_000, seed: int = 12345) -> str:
    """The combination with the highest mean expected reward over ``visitors`` visits, as a
    ``fixed:`` learner name."""
    visits = world.visits(visitors, np.random.default_rng(seed))
    best = world.combinations[int(np.argmax(world.expected_rewards(visits).mean(axis=0)))]
    return "fixed:" + "/".join(best)


def _policy(world, spec, names, seed, parts):
    """A policy over ``names``, each the actions ``parts[i]`` (whose costs add up)."""
    return policies.make(spec, n_actions=len(names), n_features=world.space.dim, seed=seed,
                         feature_names=world.space.names, action_ids=tuple(names),
                         objective=policies.ObjectiveSpec(
                             world.objective.kind, world.objective.margin,
                             tuple(sum(world._cost_pct[a] for a in p) for p in parts),
                             tuple(sum(world._cost_fixed[a] for a in p) for p in parts)))


class _PerPlacement:
    """One policy per placement (see the module docstring)."""

    def __init__(self, world, spec, seed):
        self.world = world
        self.policies = {pid: _policy(world, spec, world.placement_actions[pid], seed + i,
                                      [[a] for a in world.placement_actions[pid]])
                         for i, pid in enumerate(world.placement_ids)}
        self.clips = {pid: RewardClip(world.objective.reward_clip) for pid in self.policies}

    def choose(self, visits):
        w = self.world
        self.X, self.idx, self.p = {}, {}, {}
        chosen = {}
        for pid in w.placement_ids:
            columns = w.cart_columns(visits, chosen["product"]) if pid != "product" \
                else visits.product
            self.X[pid] = w.encode(columns)
            self.idx[pid], self.p[pid] = self.policies[pid].act(self.X[pid])
            chosen[pid] = [w.placement_actions[pid][i] for i in self.idx[pid]]
        return chosen["product"], chosen["cart"], chosen["exit"]

    def learn(self, visits, chosen, converted, value):
        for pid, actions in zip(self.world.placement_ids, chosen):
            rows = visits.exits if pid == "exit" else np.ones(len(visits), dtype=bool)
            reward = np.array([self.world.reward_of(a, c, v) for a, c, v in
                               zip(actions, converted, value)], dtype=float)
            reward = self.clips[pid](reward[rows], converted[rows])
            if rows.any():
                self.policies[pid].update(self.X[pid][rows], self.idx[pid][rows], reward,
                                          self.p[pid][rows])


class _Joint:
    """One policy over every combination, learning the visit's reward."""

    def __init__(self, world, spec, seed):
        self.world = world
        self.policy = _policy(world, spec, ["/".join(c) for c in world.combinations], seed,
                              [c[1:] for c in world.combinations])  # incentives: cart, exit
        self.clip = RewardClip(world.objective.reward_clip)

    def choose(self, visits):
        self.X = self.world.encode(visits.product)
        self.idx, self.p = self.policy.act(self.X)
        combos = [self.world.combinations[i] for i in self.idx]
        return tuple(list(c) for c in zip(*combos))

    def learn(self, visits, chosen, converted, value):
        w = self.world
        shown_exit = [e if x else "none" for e, x in zip(chosen[2], visits.exits)]
        cost = np.zeros(len(visits))
        for actions in (chosen[1], shown_exit):
            cost += np.array([w._cost_pct[a] * v + w._cost_fixed[a] if c else 0.0
                              for a, v, c in zip(actions, value, converted)])
        reward = w.objective.reward(converted, value, cost)
        self.policy.update(self.X, self.idx, self.clip(reward, converted), self.p)


class _Equilibrium:
    def __init__(self, world):
        self.world = world

    def choose(self, visits):
        return self.world.equilibrium(visits)

    def learn(self, *args):
        pass


class _Fixed:
    def __init__(self, world, combination, seed):
        self.world, self.combination = world, combination
        self.rng = np.random.default_rng(seed)

    def choose(self, visits):
        n = len(visits)
        if self.combination is None:  # uniform
            picks = self.rng.integers(self.world.n_combinations, size=n)
            return tuple(list(c) for c in zip(*(self.world.combinations[i] for i in picks)))
        return tuple([a] * n for a in self.combination)

    def learn(self, *args):
        pass


def _learner(world, name: str, seed: int):
    kind, _, arg = name.partition(":")
    if kind == "per-placement":
        return _PerPlacement(world, arg or "linucb", seed)
    if kind == "joint":
        return _Joint(world, arg or "linucb", seed)
    if kind == "fixed":
        combination = tuple(arg.split("/"))
        if combination not in world.combinations:
            raise ValueError(f"fixed:{arg} is not a combination of the placements' actions")
        return _Fixed(world, combination, seed)
    if kind == "uniform":
        return _Fixed(world, None, seed)
    if kind == "equilibrium":
        return _Equilibrium(world)
    raise ValueError(f"unknown learner {name!r}: per-placement:SPEC, joint:SPEC, "
                     "fixed:PRODUCT/CART/EXIT, best-fixed, equilibrium or uniform")


def run_placements(world: PlacementsWorld, learner: str, *, visitors: int = 20_000,
                   batch_size: int = 200, seed: int = 0) -> PlacementsResult:
    """Run ``learner`` for ``visitors`` visits (common random numbers per ``seed``)."""
    if learner == "best-fixed":
        learner = best_fixed(world)
    agent = _learner(world, learner, seed)
    visit_rng, outcome_rng = streams(seed)
    n_none = ["none"]
    value = oracle = baseline = 0.0
    done = 0
    while done < visitors:
        n = min(batch_size, visitors - done)
        visits = world.visits(n, visit_rng, start=done)
        chosen = agent.choose(visits)
        value += world.expected_reward(visits, *chosen).sum()
        oracle += world.expected_rewards(visits).max(axis=1).sum()
        baseline += world.expected_reward(visits, n_none * n, n_none * n, n_none * n).sum()
        converted, order_value = world.outcomes(visits, *chosen, outcome_rng)
        agent.learn(visits, chosen, converted, order_value)
        done += n
    return PlacementsResult(learner, visitors, value / visitors, oracle / visitors,
                            baseline / visitors)
