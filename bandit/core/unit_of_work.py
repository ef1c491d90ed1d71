"""A request group's writes, all or nothing (docs/architecture.md, "The engine").

The writes between two commits form a *request group*. :class:`UnitOfWork` owns its
transaction: :meth:`~UnitOfWork.begin` remembers the state of every part that a group changes
in memory (counters, watermarks, the policy's random state), :meth:`~UnitOfWork.rollback` drops
the storage's writes and puts every part back, and :meth:`~UnitOfWork.commit` makes the writes
durable. The storage is the engine's SQLite store or a replica's pending bus entry; a part is
anything with ``checkpoint()`` and ``restore(token)`` (``restore(None)``: no group was begun, drop
staged work only).

>>> class Counter:
...     def __init__(self): self.n = 0
...     def checkpoint(self): return self.n
...     def restore(self, token): self.n = self.n if token is None else token
>>> class Memory:
...     def commit(self): pass
...     def rollback(self): pass
>>> counter = Counter()
>>> work = UnitOfWork(Memory(), [counter])
>>> work.begin(); counter.n += 5; work.rollback()
>>> counter.n, work.group_id
(0, 1)
>>> work.begin(); counter.n += 2; work.commit()
>>> counter.n, work.open
(2, False)
"""

from __future__ import annotations

from typing import Any, Protocol

from bandit.domain.errors import StorageError


class Storage(Protocol):
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class Part(Protocol):
    def checkpoint(self) -> Any: ...
    def restore(self, token: Any) -> None: ...


class UnitOfWork:
    """Begin, commit and roll back one request group (see the module docstring)."""

    def __init__(self, storage: Storage, parts: list[Part]):
        self.storage, self.parts = storage, parts
        self._saved: list | None = None
        #: grows at every commit and rollback: a writer that saw another number than the one
        #: committed had its write rolled back (the server fails it)
        self.group_id = 0
        #: why the storage cannot write, while it cannot (the health check says so)
        self.degraded: str | None = None

    @property
    def open(self) -> bool:
        """Whether a group has begun writing and is not committed yet."""
        return self._saved is not None

    def begin(self) -> None:
        """Remember every part's state before the group's first write (later calls: no-op)."""
        if self._saved is None:
            self._saved = [part.checkpoint() for part in self.parts]

    def rollback(self, cause: BaseException | None = None) -> None:
        """Drop the open group: the storage's writes and everything the parts staged. A
        ``cause`` that is a :class:`StorageError` marks the work degraded until a commit
        succeeds again."""
        if isinstance(cause, StorageError):
            self.degraded = str(cause)
        self.group_id += 1
        self.storage.rollback()
        saved, self._saved = self._saved, None
        for part, token in zip(self.parts, saved or [None] * len(self.parts)):
            part.restore(token)

    def commit(self) -> None:
        """Make the group's writes durable; on failure roll it back and raise."""
        try:
            self.storage.commit()
        except Exception as exc:
            self.rollback(exc)
            raise
        self.group_id += 1
        self.degraded = None
        self._saved = None


class PolicyDraws:
    """The policy's random state as a part: a rolled-back group leaves no draw behind (the
    next group draws what it would have drawn). ``model`` is called for the current one; a
    model swapped in since the checkpoint keeps its own state (the old one is put back into
    the old policy, which nothing decides with any more)."""

    def __init__(self, model):
        self.model = model

    def checkpoint(self):
        policy = self.model().policy
        return policy, policy.rng.bit_generator.state

    def restore(self, token) -> None:
        if token is not None:
            token[0].rng.bit_generator.state = token[1]


class Staged(list):
    """Work staged for after the commit (a list): a rolled-back group's is dropped."""

    def checkpoint(self) -> None:
        return None

    def restore(self, token) -> None:
        self.clear()
