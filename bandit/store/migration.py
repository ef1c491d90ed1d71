"""Upgrading an event store written by an older cartwheel, on the engine's first start.

Schema 1 (cartwheel 0.1.0) stored each context as the request sent it and each outcome id in
the clear. Schema 2 stores only what the model uses: contexts as
:meth:`~bandit.domain.features.FeatureSpace.normalize_stored` gives them (undeclared categories as the
unknown marker, numbers clipped, cyclic values modulo their period) and outcome ids as keyed
hashes with the shop's salt, so an id retried from before the upgrade is still a duplicate.
What the model learned does not change (it only ever saw the encoded row, which is the same).
All of it happens in one transaction: a crash midway leaves the store at schema 1.
"""

from __future__ import annotations

import logging

from bandit.domain.privacy import hash_outcome_id
from bandit.store.events import SCHEMA_VERSION

log = logging.getLogger("cartwheel.migration")


def migrate(store, space, salt: bytes) -> None:
    """Bring ``store`` to the current schema (a log line says what was done)."""
    if store.schema_version == SCHEMA_VERSION:
        return
    if store.schema_version != 1:
        raise RuntimeError(f"{store.path}: no migration from schema {store.schema_version}")
    contexts, ids = store.rewrite_v1(space.normalize_stored,
                                     lambda outcome_id: hash_outcome_id(outcome_id, salt))
    log.warning("migrated %s from schema 1 to %d: %d contexts rewritten as the model sees "
                "them, %d outcome ids replaced by keyed hashes", store.path, SCHEMA_VERSION,
                contexts, ids)
