"""cartwheel's online loop: the only package that knows about visitors, events and storage.

>>> from bandit import Engine, load_config
>>> load_config().name
'cartwheel demo shop'
"""

from bandit.config.shop import ShopConfig, load_config
from bandit.core.engine import Engine
from bandit.domain.records import Action, Decision, LoggedEvent, Outcome

__all__ = ["Engine", "ShopConfig", "load_config", "Action", "Decision", "LoggedEvent", "Outcome"]
