"""Where segments come from: a policy and a log, for the server, the CLI and notebooks.

* the serving model over the newest ``tail`` decisions of its own log
  (:func:`for_store`; ``GET /v1/segments``, ``cartwheel segments``);
* a policy trained by replay over a log from ``export`` or another system
  (:func:`trained_by_replay`; ``cartwheel segments --log LOG``).

The server computes on a worker thread from a *copy* of the model taken on the event loop
(:class:`bandit.http.segments_cache.SegmentsCache`), never from the policy that the loop keeps
updating.
"""

from __future__ import annotations

import numpy as np

from bandit.core.model import make_policy
from bandit.domain.errors import CartwheelError
from bandit.domain.logged import EmptyLogError, LoggedData
from bandit.insight import segments

#: the newest decisions a segment summary looks at (recent traffic; a bounded cost)
TAIL = 50_000
#: the most rows of a log (``cartwheel segments --log``) its segment tree is fitted on: a
#: uniform sample, so a log of any size fits in bounded memory
SAMPLE_ROWS = 100_000


def policy_probabilities(policy, policy_ids, data, chunk: int = 5000) -> np.ndarray:
    """``policy``'s action probabilities over ``data``'s rows, in ``data.action_ids`` order
    (the policy's columns may be ordered otherwise: actions added later)."""
    col = [list(policy_ids).index(a) for a in data.action_ids]
    out = np.zeros((len(data), len(data.action_ids)))
    for s in range(0, len(data), chunk):
        mask = np.zeros((min(chunk, len(data) - s), len(policy_ids)), dtype=bool)
        mask[:, col] = data.mask[s:s + chunk]
        out[s:s + chunk] = policy.probabilities(data.X[s:s + chunk], mask)[:, col]
    return out


def trained_by_replay(config, log, seed: int = 0, batch: int = 100, spec: str | None = None,
                      sample_rows: int = SAMPLE_ROWS):
    """The config's policy (or ``spec``: a placement's) learned from ``log``'s randomized
    rows in log order, in batches as the engine learns (logged propensities; rewards as
    logged), and a uniform sample of at most ``sample_rows`` of its rows to find segments
    on. ``log`` is a :class:`LoggedData` or a re-iterable of chunks of one
    (:class:`bandit.store.logread.LogChunks`): read once, in bounded memory.

    The sample is the rows with the ``sample_rows`` smallest of seeded uniform keys (every
    subset of that size is equally likely; Fan, Muller and Rezucha 1962's bottom-k), in log
    order. Returns (policy, ids, sample, rows read).
    """
    policy, ids, sample, keys, rows = None, None, None, np.zeros(0), 0
    keys_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E65]))
    for chunk in (log,) if isinstance(log, LoggedData) else log:
        if policy is None:
            ids = list(chunk.action_ids)
            policy = make_policy(config, config.feature_space(), chunk.action_ids, seed, spec)
        learn = chunk.evaluable()
        for s in range(0, len(learn), batch):
            at = slice(s, s + batch)
            policy.update(learn.X[at], learn.actions[at], learn.rewards[at],
                          learn.propensities[at], learn.mask[at])
        rows += len(chunk)
        u = keys_rng.random(len(chunk))
        if len(keys) >= sample_rows:  # full: only rows under the largest kept key can enter
            chunk, u = chunk.subset(u < keys.max()), u[u < keys.max()]
        sample = chunk if sample is None else LoggedData.concat([sample, chunk])
        keys = np.concatenate([keys, u])
        if len(keys) > sample_rows:
            keep = np.sort(np.argpartition(keys, sample_rows)[:sample_rows])
            sample, keys = sample.subset(keep), keys[keep]
    if policy is None:
        raise EmptyLogError("no usable rows in the log to train a policy on")
    return policy, ids, sample, rows


def for_data(config, data, policy, policy_ids, *, depth: int = segments.DEFAULT_DEPTH,
             alpha: float = 0.05, model_version: int | None = None,
             control: str | None = None) -> segments.Segments:
    """Segments of ``policy`` over ``data`` (uplift against ``control``: the holdout's, or a
    placement's)."""
    if len(data) == 0:
        return segments.unavailable("no closed decisions yet: segments appear once visitors "
                                    "have been decided for and their outcomes joined",
                                    model_version=model_version)
    return segments.find(data, policy_probabilities(policy, policy_ids, data),
                         config.feature_space(), control or config.holdout.control, depth=depth,
                         alpha=alpha, objective=config.objective.kind,
                         model_version=model_version)


def for_store(config, store_path, policy, policy_ids, *, tail: int = TAIL,
              placement: str | None = None, **kw):
    """Segments of ``policy`` over the newest ``tail`` decisions of the event store (those
    made at ``placement``, when given)."""
    from bandit.store.logread import read_log

    try:
        data, loaded = read_log(store_path, config, "sqlite", unknown_keys="ignore", tail=tail,
                                placement=placement)
    except ValueError:  # nothing final yet (read_log refuses a log without a usable row)
        return for_data(config, [], policy, policy_ids, **kw)
    try:
        loaded.require_final()
    except CartwheelError as exc:  # a young log: its segments would be made of conversions
        return segments.unavailable(exc.message, model_version=kw.get("model_version"))
    return for_data(config, data, policy, policy_ids, **kw)
