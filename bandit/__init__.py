"""cartwheel's online loop: the only package that knows about visitors, events and storage.

>>> from bandit import Engine, load_config
>>> load_config().name
'cartwheel demo shop'
"""

from .config import ShopConfig, load_config
from .engine import Engine
from .types import Action, Decision, LoggedEvent, Outcome

__all__ = ["Engine", "ShopConfig", "load_config", "Action", "Decision", "LoggedEvent", "Outcome"]
