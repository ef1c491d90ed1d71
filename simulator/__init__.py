"""Worlds to learn in, and (in ``ope``/``replay``) estimators to judge policies from logs."""

from .runner import RunResult, run
from .scenarios import SCENARIOS, make_world
from .world import Outcomes, VisitorBatch, World

__all__ = ["make_world", "SCENARIOS", "World", "VisitorBatch", "Outcomes", "run", "RunResult"]
