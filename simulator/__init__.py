"""Worlds to learn in (``worlds``), and estimators to judge policies from logs (``evaluation``)."""

from simulator.worlds.runner import RunResult, run
from simulator.worlds.scenarios import SCENARIOS, make_world
from simulator.worlds.world import Outcomes, VisitorBatch, World

__all__ = ["make_world", "SCENARIOS", "World", "VisitorBatch", "Outcomes", "run", "RunResult"]
