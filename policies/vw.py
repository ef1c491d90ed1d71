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
here, once: ``cost = 1 - reward / reward_scale``, so a reward of 0 costs 1 and a reward of
``reward_scale`` costs 0, the [0, 1] costs VW's explorations are designed for (the bake-off's
convention): VW's first predictions (0) are then optimistic, which is what makes an unseen
action worth trying. By default ``reward_scale`` is the size of the first nonzero reward
learned: 1 for conversions (0/1 rewards), one order's profit for currency rewards, so one
default suits both. Until that reward arrives every cost is 1 whatever the scale, so fixing it
late changes nothing learned before; it is saved with the model (restart-exact).

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
# what VW 9 accepts for each exploration (it refuses the others at start-up)
_SUPPORTED_CB_TYPES = {"squarecb": ("mtr",), "regcb": ("mtr",), "cover": ("mtr", "dr", "ips")}
_UNSAFE = re.compile(r"[\s|:]")


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
        The reward worth cost 0 (``cost = 1 - reward / reward_scale``); None (default): the
        size of the first nonzero reward learned.
    min_cost, max_cost : float
        The cost range RegCB's bounds assume (default 0 to 1: rewards from 0 to
        ``reward_scale``); costs far outside it make regcb and regcbopt explore less well.
    learning_rate, power_t, bits : VW's ``-l``, ``--power_t`` and ``-b`` (VW's own defaults:
        with ``floor=0`` this policy is direct VW, decision for decision).
    """

    PARAMS = {
        "exploration": "squarecb, epsilon, softmax, bag, cover, regcb or regcbopt",
        "epsilon": "exploration share (epsilon, and the floor of bag/cover)",
        "gamma_scale": "squarecb's gamma scale: larger exploits more",
        "bag": "bag: number of bootstrapped policies", "cover": "cover: number of policies",
        "lambda": "softmax: inverse temperature", "cb_type": "mtr, dr, ips or dm",
        "interactions": "learn context x action crosses (-q sa)",
        "reward_scale": "the reward worth cost 0: cost = 1 - reward / reward_scale "
                        "(None: the size of the first nonzero reward learned)",
        "learning_rate": "VW's -l", "power_t": "VW's --power_t (learning rate decay)",
        "bits": "VW's -b: bits of the feature hash table",
        "min_cost": "regcb/regcbopt: smallest cost (after reward_scale)",
        "max_cost": "regcb/regcbopt: largest cost (after reward_scale)"}

    def __init__(self, n_actions, n_features, *, exploration: str = "squarecb",
                 epsilon: float = 0.05, gamma_scale: float = 10.0, bag: int = 5, cover: int = 5,
                 lambda_: float = 10.0, cb_type: str = "mtr", interactions: bool = True,
                 reward_scale: float | None = None, learning_rate: float = 0.5,
                 power_t: float = 0.5, bits: int = 18, min_cost: float = 0.0,
                 max_cost: float = 1.0, **kw):
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
        if (reward_scale is not None and not reward_scale > 0) or not 0 <= epsilon <= 1:
            raise ValueError("vw: reward_scale must be > 0 or None (from the first nonzero "
                             "reward), and epsilon in [0, 1]")
        params = {"epsilon": epsilon, "gamma_scale": gamma_scale, "bag": int(bag),
                  "cover": int(cover), "lambda_": lambda_, "min_cost": min_cost,
                  "max_cost": max_cost}
        self.exploration = exploration
        self.reward_scale = None if reward_scale is None else float(reward_scale)
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
        if self.reward_scale is None and rewards.any():
            self.reward_scale = float(abs(rewards[np.flatnonzero(rewards)[0]]))
        costs = 1.0 - rewards / (self.reward_scale or 1.0)  # all rewards 0 while unset
        for x, a, c, p, m in zip(X, actions, costs, propensities, mask):
            lines = [self._shared(x)]
            for k in np.flatnonzero(m):
                label = f"0:{c:.6g}:{p:.6g} " if k == a else ""
                lines.append(label + self._action_lines[k])
            self.ws.learn(lines)

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
                                                 else self.reward_scale)}
        finally:
            os.unlink(path)

    def _load_state(self, state):
        if "reward_scale" not in state:
            # earlier states learned costs -reward / reward_scale: continuing with 1 - reward /
            # reward_scale would mix two conventions in one model, so it is re-learned instead
            raise ValueError("vw: this model was saved with the costs of an earlier cartwheel; "
                             "it is re-learned from the log")
        self._constant = np.asarray(state["constant_columns"], dtype=bool).copy()
        scale = float(state["reward_scale"])
        self.reward_scale = None if np.isnan(scale) else scale
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
