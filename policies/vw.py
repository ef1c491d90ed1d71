"""Vowpal Wabbit contextual-bandit policies (``--cb_explore_adf``) behind the Policy contract.

The only module that imports ``vowpalwabbit`` (extra ``[vw]``). Spec: ``vw`` or
``vw:exploration=squarecb`` (default), ``epsilon``, ``softmax``, ``bag``, ``cover``, ``regcb``,
``regcbopt``, with their parameters and ``cb_type`` (``mtr`` default, ``dr``, ``ips``, ``dm``).

Examples are in ADF form: one shared namespace ``s`` from the context vector (named by the
``feature_names`` given to the constructor, zero entries left out) and one ``a`` namespace per
action from the action features (an ``id=<action>`` one-hot plus the action's declared numeric
attributes). Quadratic interactions ``-q sa`` are on by default: without them an action's
features only add an offset shared by every visitor, so VW learns which action is best on
average and nothing about *which visitor* it is best for; with them every context feature gets
an action-specific weight, which is what personalization is (a test shows both).

Masked actions are left out of the example and VW's pmf is mapped back to all K actions; the
base class applies the propensity floor on top and samples from the floored pmf itself, so the
logged propensity is the probability the action was really drawn with. Rewards become VW costs
here, once, as ``cost = offset - reward / reward_scale``, with defaults by the kind of reward,
so one default suits 0/1 and currency rewards and none depends on the currency:

* 0/1 rewards (a conversion objective, or none: research data): ``offset`` 1 and the scale
  of a conversion, 1, so a reward of 0 costs 1 and a conversion 0, the [0, 1] costs VW's
  explorations are designed for (the bake-off's convention); with VW's own learning rate
  0.5 and ``floor=0`` this policy is direct VW, decision for decision.
* money (a revenue or profit objective): rewards are rare and heavy-tailed (a few percent of
  visitors buy; an order's profit varies tenfold). ``offset`` 0: a visitor who buys nothing
  costs 0, which is also VW's first prediction, so only sales move the model; with offset 1
  every action must first learn that nearly every visitor costs 1, and until it has, a
  seldom-tried action looks like a sale each time. The scale is half the mean
  nonzero reward of the first ``SCALE_REWARDS`` (20) learned (a typical sale costs about -2),
  the learning rate 0.1, RegCB's cost range [-5, 0.5] and the floor 1% per action (at most
  8%, as egreedy's: squarecb explores little where rewards are rare). No default is tied to
  a currency (the bake-off's results page compares it with the earlier fixed scale).

``reward_scale=``, ``learning_rate=``, ``min_cost=``/``max_cost=`` and ``floor=`` override
them. Until a nonzero reward arrives the scale is unset and every reward is 0, so fixing it
late changes nothing learned before; the running mean and the scale are saved with the model
(restart-exact).

State is the model saved with ``--save_resume``: loading it and learning on continues exactly
as an uninterrupted run for squarecb, epsilon, softmax, regcb and regcbopt. ``bag`` and
``cover`` also keep random state that VW does not save: after loading, the predictions match,
but further learning follows a different random path.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from .base import Policy
from .registry import register

EXPLORATIONS = {
    "squarecb": lambda p: f"--squarecb --gamma_scale {p['gamma_scale']}",
    "epsilon": lambda p: f"--epsilon {p['epsilon']}",
    "softmax": lambda p: f"--softmax --lambda {p['lambda_']}",
    "bag": lambda p: f"--bag {p['bag']} --epsilon {p['epsilon']}",
    "cover": lambda p: f"--cover {p['cover']} --epsilon {p['epsilon']}",
    # RegCB's confidence bounds assume costs inside [cb_min_cost, cb_max_cost]
    "regcb": lambda p: f"--regcb --cb_min_cost {p['min_cost']} --cb_max_cost {p['max_cost']}",
    "regcbopt": lambda p: f"--regcbopt --cb_min_cost {p['min_cost']} --cb_max_cost {p['max_cost']}",
}
CB_TYPES = ("mtr", "dr", "ips", "dm")
#: nonzero rewards whose mean sets the default reward scale (module docstring)
SCALE_REWARDS = 20
#: defaults by kind of reward (module docstring): learning rate, scale as a share of the mean
#: nonzero reward, cost = offset - reward / scale, RegCB's cost range, and the floor
_ZERO_ONE = {"learning_rate": 0.5, "scale_share": 1.0, "offset": 1.0,
             "costs": (0.0, 1.0)}  # VW's own: direct VW
_MONEY = {"learning_rate": 0.1, "scale_share": 0.5, "offset": 0.0, "costs": (-5.0, 0.5),
          "floor": (0.01, 0.08)}
# what VW 9 accepts for each exploration (it refuses the others at start-up)
_SUPPORTED_CB_TYPES = {"squarecb": ("mtr",), "regcb": ("mtr",), "cover": ("mtr", "dr", "ips")}
_UNSAFE = re.compile(r"[\s|:]")
#: the widest hash table: VW reserves (not touches) 2^bits x its stride of floats up front, and
#: 33 bits fails to allocate on a 24 GB machine
MAX_BITS = 28


def _vw():
    try:
        import vowpalwabbit
    except ImportError:
        raise ImportError("the vw policies need Vowpal Wabbit: pip install 'cartwheel[vw]'") from None
    return vowpalwabbit


def _name(text: str) -> str:
    return _UNSAFE.sub("_", str(text))


@register("vw")
class VowpalWabbit(Policy):
    """Vowpal Wabbit ``--cb_explore_adf`` with a choice of exploration (see module docstring).

    Parameters
    ----------
    exploration : str
        squarecb (default), epsilon, softmax, bag, cover, regcb or regcbopt.
    epsilon, gamma_scale, bag, cover, lambda_ : float or int
        Parameters of the explorations (``lambda_`` is softmax's inverse temperature; the spec
        accepts ``lambda=``).
    cb_type : str
        mtr (default), dr, ips or dm (squarecb and regcb take only mtr, cover no dm).
    interactions : bool
        Quadratic shared x action interactions (default True).
    reward_scale : float or None
        Rewards become costs ``offset - reward / reward_scale`` (``offset`` 1 for 0/1 rewards,
        0 for money); None (default): from the first nonzero rewards learned (module
        docstring).
    min_cost, max_cost : float or None
        The cost range RegCB's bounds assume; None (default): 0 to 1 for 0/1 rewards, -5 to
        0.5 for money. Costs far outside it make regcb and regcbopt explore less well.
    learning_rate : float or None
        VW's ``-l``; None (default): VW's 0.5 for 0/1 rewards, 0.1 for money (module
        docstring).
    power_t, bits : VW's ``--power_t`` and ``-b`` (VW's own defaults: with 0/1 rewards and
        ``floor=0`` this policy is direct VW, decision for decision).
    """

    PARAMS = {
        "exploration": "squarecb, epsilon, softmax, bag, cover, regcb or regcbopt",
        "epsilon": "exploration share (epsilon, and the floor of bag/cover)",
        "gamma_scale": "squarecb's gamma scale: larger exploits more",
        "bag": "bag: number of bootstrapped policies", "cover": "cover: number of policies",
        "lambda": "softmax: inverse temperature", "cb_type": "mtr, dr, ips or dm",
        "interactions": "learn context x action crosses (-q sa)",
        "reward_scale": "costs are offset - reward / reward_scale, offset 1 for 0/1 rewards "
                        "and 0 for money (None: from the first nonzero rewards learned)",
        "learning_rate": "VW's -l (None: 0.5 for 0/1 rewards, 0.1 for money)",
        "power_t": "VW's --power_t (learning rate decay)",
        "bits": "VW's -b: bits of the feature hash table (1..28)",
        "min_cost": "regcb/regcbopt: smallest cost (None: 0 for 0/1 rewards, -5 for money)",
        "max_cost": "regcb/regcbopt: largest cost (None: 1 for 0/1 rewards, 0.5 for money)"}

    def __init__(self, n_actions, n_features, *, exploration: str = "squarecb",
                 epsilon: float = 0.05, gamma_scale: float = 10.0, bag: int = 5, cover: int = 5,
                 lambda_: float = 10.0, cb_type: str = "mtr", interactions: bool = True,
                 reward_scale: float | None = None, learning_rate: float | None = None,
                 power_t: float = 0.5, bits: int = 18, min_cost: float | None = None,
                 max_cost: float | None = None, **kw):
        super().__init__(n_actions, n_features, **kw)
        if exploration not in EXPLORATIONS:
            raise ValueError(f"vw: exploration must be one of {sorted(EXPLORATIONS)}, "
                             f"got {exploration!r}")
        if cb_type not in CB_TYPES:
            raise ValueError(f"vw: cb_type must be one of {CB_TYPES}, got {cb_type!r}")
        supported = _SUPPORTED_CB_TYPES.get(exploration, CB_TYPES)
        if cb_type not in supported:
            raise ValueError(f"vw: exploration={exploration} supports cb_type {supported}, "
                             f"not {cb_type!r}")
        if not 1 <= int(bits) <= MAX_BITS:
            raise ValueError(f"vw: bits must be in 1..{MAX_BITS} (VW reserves 2^bits weights "
                             f"per model; 18 serves a shop's features), got {bits!r}")
        if (reward_scale is not None and not reward_scale > 0) or not 0 <= epsilon <= 1:
            raise ValueError("vw: reward_scale must be > 0 or None (from the first nonzero "
                             "reward), and epsilon in [0, 1]")
        money = self.objective is not None and self.objective.kind in ("revenue", "profit")
        defaults = _MONEY if money else _ZERO_ONE
        if learning_rate is None:
            learning_rate = defaults["learning_rate"]
        low, high = defaults["costs"]
        params = {"epsilon": epsilon, "gamma_scale": gamma_scale, "bag": int(bag),
                  "cover": int(cover), "lambda_": lambda_,
                  "min_cost": low if min_cost is None else min_cost,
                  "max_cost": high if max_cost is None else max_cost}
        self.exploration = exploration
        self.reward_scale = None if reward_scale is None else float(reward_scale)
        self._scale_share, self.cost_offset = defaults["scale_share"], defaults["offset"]
        if "floor" in defaults:  # the default floor of this instance (an explicit floor= wins)
            self.floor_max, self.floor_budget = defaults["floor"]
        self._fixed_scale = reward_scale is not None
        # sum and count of the nonzero rewards that set the default scale
        self._scale_sum, self._scale_n = 0.0, 0
        self.args = " ".join([
            "--cb_explore_adf", EXPLORATIONS[exploration](params), f"--cb_type {cb_type}",
            "-q sa" if interactions else "", f"-l {learning_rate}", f"--power_t {power_t}",
            f"-b {int(bits)}", "--quiet"])
        # bag and cover draw from VW's own random state, which a saved model does not keep
        self.lossless_learning = exploration not in ("bag", "cover")
        names = self.feature_names or tuple(f"x{i}" for i in range(n_features))
        self._names = [_name(n) for n in names]
        # columns that held exactly 1.0 in every row learned so far: a constant, which VW has
        # its own of (found by content, so an unnamed ones column of a research matrix is
        # dropped too); learning narrows the set, deciding does not (restart-exact)
        self._constant = np.ones(n_features, dtype=bool)
        self._action_lines = [self._action_line(k) for k in range(n_actions)]
        seed = int(np.random.SeedSequence(self.seed).generate_state(1)[0] % 2**31)
        self.ws = _vw().Workspace(f"{self.args} --save_resume --random_seed {seed}")

    def _action_line(self, k: int) -> str:
        ident = self.action_ids[k] if self.action_ids is not None else str(k)
        parts = [f"id={_name(ident)}"]
        if self.action_features is not None:
            parts += [f"f{j}:{v:.6g}" for j, v in enumerate(self.action_features[k]) if v]
        return "|a " + " ".join(parts)

    def _shared(self, x: np.ndarray) -> str:
        return "shared |s " + " ".join(f"{self._names[i]}:{x[i]:.6g}"
                                       for i in np.flatnonzero(x) if not self._constant[i])

    def _preferences(self, X, mask):
        Q = np.zeros((len(X), self.n_actions))
        for row, (x, m) in enumerate(zip(X, mask)):
            eligible = np.flatnonzero(m)
            pmf = self.ws.predict([self._shared(x), *(self._action_lines[k] for k in eligible)])
            Q[row, eligible] = pmf
        return Q / Q.sum(axis=1, keepdims=True)

    def _learn(self, X, actions, rewards, propensities, mask):
        self._constant &= (X == 1.0).all(axis=0)
        for x, a, r, p, m in zip(X, actions, rewards, propensities, mask):
            self._learn_scale(r)
            cost = self.cost_offset - r / (self.reward_scale or 1.0)  # r is 0 while unset
            lines = [self._shared(x)]
            for k in np.flatnonzero(m):
                label = f"0:{cost:.6g}:{p:.6g} " if k == a else ""
                lines.append(label + self._action_lines[k])
            self.ws.learn(lines)

    def _learn_scale(self, reward: float) -> None:
        """Fold one reward into the default scale (module docstring): the running mean of the
        first ``SCALE_REWARDS`` nonzero rewards, times the share for this kind of reward."""
        if self._fixed_scale or reward == 0 or self._scale_n >= SCALE_REWARDS:
            return
        self._scale_sum += abs(float(reward))
        self._scale_n += 1
        self.reward_scale = self._scale_share * self._scale_sum / self._scale_n

    def finite(self) -> bool:
        # the state is VW's binary model; its predictions are checked on every decision
        return True

    def _state(self):
        fd, path = tempfile.mkstemp(suffix=".vw")
        os.close(fd)
        try:
            self.ws.save(path)
            with open(path, "rb") as f:
                return {"vw_model": np.frombuffer(f.read(), dtype=np.uint8),
                        "constant_columns": self._constant.copy(),
                        "reward_scale": np.array(np.nan if self.reward_scale is None
                                                 else self.reward_scale),
                        "scale_rewards": np.array([self._scale_sum, self._scale_n]),
                        "cost_offset": np.array(self.cost_offset)}
        finally:
            os.unlink(path)

    def _load_state(self, state):
        if "reward_scale" not in state:
            # earlier states learned costs -reward / reward_scale: continuing with 1 - reward /
            # reward_scale would mix two conventions in one model, so it is re-learned instead
            raise ValueError("vw: this model was saved with the costs of an earlier cartwheel; "
                             "it is re-learned from the log")
        # states without an offset learned 1 - reward / scale; a model that learned another
        # offset (another kind of objective, or money before offset 0) would mix two cost
        # conventions in one model, so it is re-learned instead
        offset = float(state["cost_offset"]) if "cost_offset" in state else 1.0
        if offset != self.cost_offset:
            raise ValueError(f"vw: this model learned costs {offset:g} - reward / scale, this "
                             f"objective's are {self.cost_offset:g} - reward / scale; it is "
                             "re-learned from the log")
        self._constant = np.asarray(state["constant_columns"], dtype=bool).copy()
        scale = float(state["reward_scale"])
        self.reward_scale = None if np.isnan(scale) else scale
        if "scale_rewards" in state:
            total, n = np.asarray(state["scale_rewards"], dtype=float)
            self._scale_sum, self._scale_n = float(total), int(n)
        elif self.reward_scale is not None:
            self._scale_n = SCALE_REWARDS  # saved when the scale was the first reward: kept
        fd, path = tempfile.mkstemp(suffix=".vw")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(np.asarray(state["vw_model"], dtype=np.uint8).tobytes())
            self.ws.finish()
            # the saved model carries its own arguments (random seed included)
            self.ws = _vw().Workspace(f"--quiet --save_resume -i {path}")
        finally:
            os.unlink(path)

    def _grow(self, n):
        # ADF: a new action is just a new action line; what VW learned about features carries over
        for k in range(self.n_actions, self.n_actions + n):
            self._action_lines.append(self._action_line(k))
