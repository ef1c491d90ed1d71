"""LoggedData: decisions as estimators read them, from the engine's store, files or a simulation.

The record that offline evaluation (``simulator.evaluation``), segments and the log readers
(``bandit.store.logread``) share: one row per decision, as arrays.

>>> import numpy as np
>>> log = LoggedData(("none", "banner"), np.zeros((2, 1)), np.ones((2, 2), bool), np.array([0, 1]),
...                  np.array([0.5, 0.5]), np.array([0.0, 1.0]), np.array([True, True]),
...                  np.array([0.0, 1.0]))
>>> len(log), log.logging_value
(2, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class EmptyLogError(ValueError):
    """A log read left nothing to learn or estimate from (every row refused, forced, still
    open or elsewhere): the read's :class:`~bandit.store.load_report.LoadReport` says why."""


@dataclass(frozen=True)
class LoggedData:
    """n logged decisions over K actions.

    ``propensities`` are the probabilities with which ``actions`` were drawn from the eligible
    set ``mask``; ``randomized`` is False for forced decisions (p = 1 by rule or holdout), which
    estimators leave out; ``contexts`` are the raw context dicts when known.
    """

    action_ids: tuple[str, ...]
    X: np.ndarray
    mask: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    randomized: np.ndarray
    ts: np.ndarray
    contexts: list | None = field(default=None, repr=False)
    #: where each decision was made (placement ids), when the log says
    placements: np.ndarray | None = field(default=None, repr=False)
    #: True for a decision still inside its attribution window (its reward is what is known
    #: so far, not final): only ever read with ``include_open``, never for estimates
    open: np.ndarray | None = field(default=None, repr=False)
    #: "treatment" or "holdout" per decision, when the log says
    groups: np.ndarray | None = field(default=None, repr=False)
    #: per decision, a holdout visitor's would-have draw (the action index a treated visitor
    #: would have got, -1 where none is logged) and its probability (NaN where none)
    would_have: np.ndarray | None = field(default=None, repr=False)
    would_have_propensities: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.actions)

    def subset(self, rows) -> "LoggedData":
        """The logged decisions at ``rows`` (a boolean mask or indices)."""
        rows = np.asarray(rows)
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows
        return LoggedData(self.action_ids, self.X[idx], self.mask[idx], self.actions[idx],
                          self.propensities[idx], self.rewards[idx], self.randomized[idx],
                          self.ts[idx], None if self.contexts is None
                          else [self.contexts[i] for i in idx],
                          *(None if column is None else column[idx] for column in (
                              self.placements, self.open, self.groups, self.would_have,
                              self.would_have_propensities)))

    @staticmethod
    def concat(parts: "list[LoggedData]") -> "LoggedData":
        """The rows of ``parts`` (same actions), one after the other."""
        first = parts[0]
        # an optional column missing from a part (none of its rows had one) is its default
        optional = {"placements": (object, None), "open": (bool, False),
                    "groups": (object, None), "would_have": (np.intp, -1),
                    "would_have_propensities": (float, np.nan)}

        def joined(name):
            columns = [getattr(p, name) for p in parts]
            if all(c is None for c in columns):
                return None
            dtype, default = optional[name]
            return np.concatenate([np.full(len(p), default, dtype=dtype) if c is None else c
                                   for p, c in zip(parts, columns)])

        return LoggedData(first.action_ids, np.concatenate([p.X for p in parts]),
                          *(np.concatenate([getattr(p, name) for p in parts]) for name in (
                              "mask", "actions", "propensities", "rewards", "randomized",
                              "ts")),
                          None if any(p.contexts is None for p in parts)
                          else [c for p in parts for c in p.contexts],
                          *(joined(name) for name in optional))

    def evaluable(self) -> "LoggedData":
        """Only randomized decisions: forced ones carry no information about other actions."""
        return self.subset(self.randomized)

    @property
    def logging_value(self) -> float:
        """The logger's own value: the mean observed reward."""
        return float(self.rewards.mean())
