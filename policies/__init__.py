"""Learning algorithms behind one contract; they know nothing of HTTP, SQL or visitors.

>>> import policies
>>> sorted(n for n in policies.REGISTRY if n != "vw")
['bts', 'egreedy', 'fixed', 'lints', 'linucb', 'profit', 'uniform']
>>> policies.make("linucb:alpha=0.5", n_actions=3, n_features=4).alpha
0.5
"""

from . import linear, profit, simple, vw  # noqa: F401  (registers the policies)
from .base import NonFiniteStateError, Policy
from .factory import make
from .gated import Gated, gated
from .objective import ObjectiveSpec, Outcomes
from .registry import REGISTRY, accepted_params, check_spec, param_info, register
from .spec import canonical_spec, format_spec, gate_members, parse_spec, split_specs

__all__ = ["Policy", "Gated", "gated", "gate_members", "canonical_spec", "NonFiniteStateError", "ObjectiveSpec", "Outcomes", "REGISTRY", "make", "register", "accepted_params",
           "param_info", "check_spec", "parse_spec", "split_specs", "format_spec"]
