"""The promotion gate: a champion policy serves, challengers earn a share of the traffic, and
one takes over only when an anytime-valid bound says it is better.

Why a challenger must act to be measured: a champion like linucb explores each action with
about 0.5% probability, so importance weights on its traffic alone reach ~200 and a bound on
another policy's value from it needs millions of rows. With a share ``s`` of the traffic the
weights of the comparison are at most ``1 / min(s / c, 1 - s)`` for ``c`` challengers.

* **Assignment.** Each row is given, by a draw of the gate's own seeded generator, to the
  champion or, with probability ``share``, to a challenger (split evenly among the active
  ones); that policy's distribution draws the action. The logged propensity is the exact
  probability of the action under the mixture, so every off-policy estimate stays valid.
* **Learning.** Every policy learns every row (with the outcome's parts); retired ones too,
  so a rollback returns a policy that kept up.
* **Comparison.** :class:`~policies.comparison.PairedEvidence`: doubly robust values with a
  reward model (per-action ridge) fitted only on earlier rows, and the confidence sequence of
  :mod:`policies.confidence`. What each row needs from decision time is in its *decision
  notes*: :meth:`act` keeps them (:attr:`last_notes`); the engine stores them with the
  decision and passes them back as ``update(..., decision_notes=)``. Called act-then-update
  on the same rows (as ``simulator.run`` does), the gate uses those of its last ``act``.
* **Promotion.** After every update, with at least ``min_rows`` rows: a challenger whose lower
  bound over the champion exceeds ``min_effect`` is promoted (``mode = "auto"``; ``"manual"``
  marks it ready and waits for :meth:`promote`), and the old champion is retired at once; a
  challenger whose upper bound falls below ``-min_effect`` is retired. After a promotion the
  new champion's bound against the previous one is watched: below ``-min_effect``, the
  previous one comes back (:meth:`roll_back`, also what the engine calls when the holdout
  says the shop is losing).
* **Shadow mode** (``share = 0``): challengers learn and are estimated but never act nor are
  promoted: their estimate would rest on the champion's importance weights alone.

Known limits: frequency caps and the incentive budget are shared, so a challenger that spends
changes what the champion may spend (interference the comparison does not model); with
several challengers each pair is bounded at ``1 - confidence`` on its own.

>>> import numpy as np
>>> gate = gated("uniform", ["fixed:action=1"], n_actions=2, n_features=1, seed=0, share=0.5)
>>> gate.probabilities(np.ones((1, 1))).round(4).tolist()  # 0.5 uniform + 0.5 fixed (floored)
[[0.2525, 0.7475]]
>>> [m["role"] for m in gate.status()]
['champion', 'challenger']
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from ._ridge import RidgeStack
from .base import Policy
from .comparison import PairedEvidence, notes_width
from .registry import make
from .spec import format_spec, parse_spec


class Promotion(NamedTuple):
    row: int
    from_spec: str
    to_spec: str
    bound: float  # the lower bound of the new champion's advantage when it was promoted
    estimate: float
    by: str = "gate"  # or "person" (manual mode, ``cartwheel policies --promote``)


class Retirement(NamedTuple):
    row: int
    spec: str
    reason: str  # "bound": its upper bound fell below -min_effect; "replaced"; "rolled back"


class Rollback(NamedTuple):
    row: int
    from_spec: str
    to_spec: str
    reason: str


MODES = ("auto", "manual")


class Gated(Policy):
    """A champion and challengers behind one :class:`~policies.base.Policy` (module
    docstring); build it with :func:`gated`."""

    name = "gated"
    additive = False  # the comparison needs each row's final reward, learned once
    PARAMS = {"share": "traffic the challengers share while they are measured",
              "confidence": "confidence of the bounds that promote and retire",
              "min_effect": "advantage (reward units per visitor) a promotion must clear",
              "mode": "auto: the gate promotes; manual: it reports, a person promotes",
              "min_rows": "rows before the gate reads its bounds (asymptotic validity)",
              "horizon": "rows at which the bounds are tightest"}

    def __init__(self, members: list[Policy], *, seed=None, share: float = 0.2,
                 confidence: float = 0.95, min_effect: float = 0.0, mode: str = "auto",
                 min_rows: int = 2000, horizon: float = 100_000, anytime: bool = True,
                 objective=None):
        first = members[0]
        super().__init__(first.n_actions, first.n_features, seed=seed,
                         feature_names=first.feature_names, action_ids=first.action_ids,
                         action_features=first.action_features, objective=objective)
        if len(members) < 2:
            raise ValueError("gated: give at least one challenger")
        if not 0.0 <= share < 1.0:
            raise ValueError(f"gated: share must be in [0, 1), got {share!r}")
        if not 0.5 <= confidence < 1.0:
            raise ValueError(f"gated: confidence must be in [0.5, 1), got {confidence!r}")
        if not min_effect >= 0.0:
            raise ValueError(f"gated: min_effect must be >= 0, got {min_effect!r}")
        if mode not in MODES:
            raise ValueError(f"gated: mode must be one of {MODES}, got {mode!r}")
        if min_rows < 2 or not horizon > 0:
            raise ValueError("gated: min_rows must be >= 2 and horizon > 0")
        self.members = list(members)
        self.specs = [m.spec for m in members]
        if len(set(self.specs)) != len(self.specs):
            raise ValueError(f"gated: each policy may appear once, got {self.specs}")
        self.share, self.confidence, self.min_effect = float(share), confidence, min_effect
        self.mode, self.min_rows, self.horizon = mode, int(min_rows), float(horizon)
        self.priceable = all(m.priceable for m in members)
        self.exact_probabilities = all(m.exact_probabilities for m in members)
        self.lossless_learning = all(m.lossless_learning for m in members)
        self.roles = ["champion"] + ["challenger"] * (len(members) - 1)
        self.previous: int | None = None  # the champion before the last promotion
        self.pinned = False  # a person pinned the champion: the gate reports, never promotes
        self.ready: list[int] = []  # manual mode: challengers whose bound cleared
        self.promotions: list[Promotion] = []
        self.retired: list[Retirement] = []
        self.rollbacks: list[Rollback] = []
        self.evidence = PairedEvidence(len(members), alpha=1 - confidence, horizon=horizon,
                                       anytime=anytime)
        self.reward_model = RidgeStack(self.n_actions, self.n_features)
        self.last_notes: np.ndarray | None = None
        self.notes_width = notes_width(len(members))
        self.spec = "gated(" + " | ".join(self.specs) + ")"

    # ------------------------------------------------------------------ roles
    @property
    def champion(self) -> int:
        return self.roles.index("champion")

    def shares(self) -> np.ndarray:
        """The probability each policy is assigned a row now."""
        active = [i for i, r in enumerate(self.roles) if r == "challenger"]
        out = np.zeros(len(self.members))
        out[self.champion] = 1.0
        if active and self.share > 0:
            out[active] = self.share / len(active)
            out[self.champion] = 1.0 - self.share
        return out

    # ------------------------------------------------------------------ deciding
    def _member_probabilities(self, X, mask, prices=None) -> np.ndarray:
        return np.stack([m.probabilities(X, mask, prices) for m in self.members])

    def _preferences(self, X, mask, prices=None) -> np.ndarray:
        return np.tensordot(self.shares(), self._member_probabilities(X, mask, prices), 1)

    def _apply_floor(self, Q, mask):
        return Q  # a mixture of floored distributions keeps every member's floor

    def act(self, X, mask=None, prices=None):
        """Assign each row to a policy, let it draw the action, and note what the
        comparison needs from now (:attr:`last_notes`)."""
        X, mask = self._check_inputs(X, mask)
        if prices is not None:
            prices = self._check_prices(prices, len(X))
        P = self._member_probabilities(X, mask, prices)  # (M, n, K)
        shares = self.shares()
        n, rows = len(X), np.arange(len(X))
        assigned = self.rng.choice(len(shares), size=n, p=shares)
        cdf = np.cumsum(P[assigned, rows], axis=1)
        u = self.rng.random(n) * cdf[:, -1]
        actions = (cdf <= u[:, None]).sum(axis=1)  # first index whose cdf exceeds u
        chosen = P[:, rows, actions].T  # (n, M): each policy's probability of the action
        q = self.reward_model.means(X)
        self.last_notes = np.column_stack([assigned, q[rows, actions], chosen,
                                           np.einsum("mnk,nk->nm", P, q)])
        return actions, chosen @ shares

    # ------------------------------------------------------------------ learning
    def update(self, X, actions, rewards, propensities, mask=None, *, converted=None,
               order_values=None, costs=None, decision_notes=None) -> None:
        """Every policy learns the rows; the comparison adds them (``decision_notes``: the
        notes their ``act`` made, stored with the decisions; None: those of the last
        ``act`` when it decided as many rows, else the rows are learned but not compared)."""
        if decision_notes is None and self.last_notes is not None \
                and len(self.last_notes) == len(actions):
            decision_notes = self.last_notes
        self.last_notes = None
        super().update(X, actions, rewards, propensities, mask, converted=converted,
                       order_values=order_values, costs=costs)
        if decision_notes is not None and len(actions):
            self.evidence.observe(decision_notes, np.asarray(rewards, float),
                                  np.asarray(propensities, float))
            self._review()

    def _learn(self, X, actions, rewards, propensities, mask) -> None:
        for m in self.members:
            if m.learns:  # uniform and fixed never change: no need to validate for them
                m.update(X, actions, rewards, propensities, mask)
        self.reward_model.update(X, actions, rewards)

    def _learn_outcomes(self, X, actions, rewards, propensities, mask, outcomes) -> None:
        for m in self.members:
            if m.learns:
                m.update(X, actions, rewards, propensities, mask, converted=outcomes.converted,
                         order_values=outcomes.order_values, costs=outcomes.costs)
        self.reward_model.update(X, actions, rewards)

    # ------------------------------------------------------------------ the gate
    def _review(self) -> None:
        """Promote, retire or roll back by the bounds (module docstring)."""
        if self.evidence.rows < self.min_rows:
            return
        champion = self.champion
        if self.previous is not None and self.roles[self.previous] == "retired":
            if self.evidence.difference(champion, self.previous).upper < -self.min_effect:
                self.roll_back("its bound against the champion it replaced fell below "
                               "-min_effect")
                return
        if self.share == 0:  # shadow mode: challengers are measured, never promoted
            return
        for c in [i for i, r in enumerate(self.roles) if r == "challenger"]:
            bound = self.evidence.difference(c, champion)
            if bound.lower > self.min_effect:
                if self.mode == "auto" and not self.pinned:
                    self._promote(c, bound, "gate")
                    return
                if c not in self.ready:
                    self.ready.append(c)
            elif bound.upper < -self.min_effect:
                self._retire(c, "bound")

    def _promote(self, c: int, bound, by: str) -> None:
        old = self.champion
        self.promotions.append(Promotion(self.n_updates, self.specs[old], self.specs[c],
                                         bound.lower, bound.estimate, by))
        self.roles[c], self.previous = "champion", old
        self._retire(old, "replaced")
        self.ready = [i for i in self.ready if i != c]

    def _retire(self, i: int, reason: str) -> None:
        self.roles[i] = "retired"
        self.retired.append(Retirement(self.n_updates, self.specs[i], reason))

    def member(self, spec: str) -> int:
        """The index of the policy named ``spec`` (as written or canonical)."""
        canonical = format_spec(*parse_spec(spec))
        if canonical not in self.specs:
            raise ValueError(f"{spec!r} is not one of this gate's policies: {self.specs}")
        return self.specs.index(canonical)

    def promote(self, spec: str) -> None:
        """A person promotes ``spec`` (manual mode, or to overrule the gate)."""
        c = self.member(spec)
        if c == self.champion:
            raise ValueError(f"{spec!r} is already the champion")
        self._promote(c, self.evidence.difference(c, self.champion), "person")

    def pin(self, spec: str | None = None) -> None:
        """A person pins the champion (``spec``, promoted first if it is not the champion;
        None: the current one): the gate keeps measuring but promotes no one until
        :meth:`unpin`. Rollbacks by the bound stay on."""
        if spec is not None and self.member(spec) != self.champion:
            self.promote(spec)
        self.pinned = True

    def unpin(self) -> None:
        self.pinned = False

    def roll_back(self, reason: str) -> None:
        """Bring back the champion the last promotion replaced (``reason`` is logged)."""
        if self.previous is None:
            raise ValueError("no promotion to roll back")
        new, old = self.champion, self.previous
        self.rollbacks.append(Rollback(self.n_updates, self.specs[new], self.specs[old],
                                       reason))
        self.roles[old], self.previous = "champion", None
        self._retire(new, "rolled back")

    def status(self) -> list[dict]:
        """Each policy's role, share, rows it decided and advantage over the champion with
        its bounds and the rows it still needs at the current estimate."""
        champion, shares, alpha = self.champion, self.shares(), 1 - self.confidence
        out = []
        for i, spec in enumerate(self.specs):
            row = {"spec": spec, "role": self.roles[i], "share": float(shares[i]),
                   "pinned": self.pinned and i == champion,
                   "decided": int(self.evidence.acted[i]), "ready": i in self.ready}
            if i != champion:
                b = self.evidence.difference(i, champion)
                needed = b.rows_needed(self.min_effect, alpha, self.horizon)
                row |= {"estimate": _finite(b.estimate), "lower": _finite(b.lower),
                        "upper": _finite(b.upper),
                        "rows_needed": None if not np.isfinite(needed)
                        else max(int(needed) - b.rows, 0)}
            out.append(row)
        return out

    # ------------------------------------------------------------------ explanation
    def score_parts(self, X):
        return self.members[self.champion].score_parts(X)

    def why_no_score_parts(self) -> str:
        return self.members[self.champion].why_no_score_parts()

    # ------------------------------------------------------------------ state
    def _state(self) -> dict[str, np.ndarray]:
        state = {f"m{i}.{k}": v for i, m in enumerate(self.members)
                 for k, v in m.get_state().items()}
        state |= self.evidence.state() | {f"reward.{k}": v
                                          for k, v in self.reward_model.state().items()}
        state["history"] = np.array(json.dumps({
            "specs": self.specs, "roles": self.roles, "previous": self.previous,
            "pinned": self.pinned,
            "ready": self.ready, "promotions": self.promotions, "retired": self.retired,
            "rollbacks": self.rollbacks}))
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        history = json.loads(str(state["history"]))
        if history["specs"] != self.specs:
            raise ValueError(f"gate state is for {history['specs']}, not {self.specs}")
        for i, m in enumerate(self.members):
            prefix = f"m{i}."
            m.set_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        self.evidence.load(state)
        self.reward_model.load({k[len("reward."):]: v for k, v in state.items()
                                if k.startswith("reward.")})
        self.roles, self.previous = list(history["roles"]), history["previous"]
        self.ready = list(history["ready"])
        self.pinned = bool(history.get("pinned", False))
        self.promotions = [Promotion(*p) for p in history["promotions"]]
        self.retired = [Retirement(*r) for r in history["retired"]]
        self.rollbacks = [Rollback(*r) for r in history["rollbacks"]]

    def finite(self) -> bool:
        return all(m.finite() for m in self.members) and np.isfinite(
            self.reward_model.theta).all()

    def add_actions(self, n: int, *, action_ids=None, action_features=None) -> None:
        for m in self.members:
            m.add_actions(n, action_ids=action_ids, action_features=action_features)
        self.reward_model.grow(int(n))
        super().add_actions(n, action_ids=action_ids, action_features=action_features)


def _finite(x: float) -> float | None:
    """``x``, or None where a bound is not known yet (JSON has no infinity)."""
    return float(x) if np.isfinite(x) else None


def gated(champion: str, challengers, *, n_actions: int, n_features: int, seed=None,
          share: float = 0.2, confidence: float = 0.95, min_effect: float = 0.0,
          mode: str = "auto", min_rows: int = 2000, horizon: float = 100_000,
          anytime: bool = True, **kwargs) -> Gated:
    """A :class:`Gated` policy of ``champion`` and ``challengers`` (spec strings; ``kwargs``
    such as ``objective=`` or ``action_ids=`` go to each), seeded from ``seed`` through
    ``SeedSequence.spawn`` (one seed per policy and one for the gate's draws)."""
    if isinstance(challengers, str):
        challengers = [challengers]
    specs = [champion, *challengers]
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = ([None] * (len(specs) + 1) if seed is None else
             [int(s.generate_state(1)[0]) for s in root.spawn(len(specs) + 1)])
    members = [make(spec, n_actions=n_actions, n_features=n_features, seed=s, **kwargs)
               for spec, s in zip(specs, seeds)]
    return Gated(members, seed=seeds[-1], share=share, confidence=confidence,
                 min_effect=min_effect, mode=mode, min_rows=min_rows, horizon=horizon,
                 anytime=anytime, objective=kwargs.get("objective"))
