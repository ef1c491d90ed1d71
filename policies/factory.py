"""``make``: a policy, or a promotion gate of policies, from its spec string.

A gate (``gated(champion | challenger | ...)``, :mod:`policies.gated`) is made of policies
the registry makes (:func:`policies.registry.make`); this module sits above both, so the
registry never imports the gate.

>>> make("gated(linucb | egreedy)", n_actions=3, n_features=2, seed=0).spec
'gated(linucb | egreedy)'
>>> make("linucb:alpha=0.5", n_actions=3, n_features=2).spec
'linucb:alpha=0.5'
"""

from __future__ import annotations

from . import registry
from .gated import gated
from .spec import gate_members


def make(spec: str, *, n_actions: int, n_features: int, seed: int | None = None, **kwargs):
    """Build a policy from ``NAME`` or ``NAME:key=value,...`` (:func:`policies.registry.make`:
    extra keyword arguments go to the constructor), or a gate from
    ``gated(champion | challenger | ...)`` with its default share, confidence and effect (a
    shop sets them in ``[policy] promote``)."""
    members = gate_members(spec)
    if members is None:
        return registry.make(spec, n_actions=n_actions, n_features=n_features, seed=seed,
                             **kwargs)
    return gated(members[0], members[1:], n_actions=n_actions, n_features=n_features,
                 seed=seed, **kwargs)
