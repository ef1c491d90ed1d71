"""Worlds to learn in, and (in ``ope``/``replay``) estimators to judge policies from logs."""

from simulator.worlds.runner import RunResult, run
from simulator.worlds.scenarios import SCENARIOS, make_world
from simulator.worlds.world import Outcomes, VisitorBatch, World

__all__ = ["make_world", "SCENARIOS", "World", "VisitorBatch", "Outcomes", "run", "RunResult"]
