"""Building the engine's policy, and restoring it from the newest snapshot that still fits.

Each placement has a model of its own (docs/architecture.md, "Placements"), over its actions and
with its spec; its snapshot metadata names it (``placement``; snapshots written before
placements belong to ``"default"``). A snapshot fits when the feature schema and the placement's
policy spec are unchanged; actions added to the placement since are appended (what was learned
about the others is kept), actions removed stay in the model but are never eligible again. A snapshot that does not fit is refused, or with
``fresh`` replaced by a new model that learns only from events logged after the restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import policies
from bandit.domain.errors import SnapshotMismatchError
from bandit.domain.records import DEFAULT_PLACEMENT, Placement
from bandit.store.snapshots import snapshots

log = logging.getLogger("cartwheel.model")


@dataclass
class Restored:
    """A policy, the action ids of its columns, and where in the log its learning stands."""

    policy: object
    action_ids: list[str]
    last_learned_seq: int = 0   # closed.seq of the last closing the model learned
    last_decision_seq: int = 0  # decisions.seq of the last provisional update
    first_decision_seq: int = 0  # decisions up to here predate the model (fresh start)
    from_snapshot: bool = False
    clip_state: dict | None = None  # RewardClip state at last_learned_seq
    deferred: list | None = None  # [closing seq, learned reward] of relabels awaiting rows
    held: list | None = None  # closing seqs a non-additive policy holds for decision order


def make_policy(config, space, action_ids: Sequence[str], seed, spec: str | None = None):
    """The config's policy (or ``spec``; a gate's ``gated(...)`` spec builds the promotion
    gate with the shop's ``[policy] promote`` settings) over ``action_ids`` (known actions
    described by their features)."""
    features, _ = config.action_features()
    known = {a.id: row for a, row in zip(config.actions, features)}
    rows = np.array([known.get(a, np.zeros(features.shape[1])) for a in action_ids])
    spec = spec or config.placements[0].model_spec
    described = dict(n_actions=len(action_ids), n_features=space.dim, seed=seed,
                     feature_names=space.names, action_ids=tuple(action_ids),
                     action_features=rows, objective=objective_spec(config, action_ids))
    members = policies.gate_members(spec)
    if members is None:
        return policies.make(spec, **described)
    promote = config.promote
    return policies.gated(members[0], members[1:], share=promote.share,
                          confidence=promote.confidence, min_effect=promote.min_effect,
                          mode=promote.mode, **described)


def objective_spec(config, action_ids: Sequence[str]) -> policies.ObjectiveSpec:
    """The shop's objective as policies read it: costs per action (``cost_pct`` as a
    fraction of the order; an action the config no longer has costs nothing)."""
    by_id = {a.id: a for a in config.actions}
    costed = [by_id.get(a) for a in action_ids]
    return policies.ObjectiveSpec(
        config.objective.kind, config.objective.margin,
        cost_pct=[a.cost_pct / 100 if a else 0.0 for a in costed],
        cost_fixed=[a.cost_fixed if a else 0.0 for a in costed])


def snapshot_placement(meta: dict) -> str:
    """The placement a snapshot's model decides at."""
    return meta.get("placement", DEFAULT_PLACEMENT)


def policy_from_state(config, space, state: dict, meta: dict, seed):
    """The policy a snapshot's ``state`` and ``meta`` hold, grown by the actions the config
    added to its placement since, and the action id of each of its columns. Raises
    ValueError, KeyError or TypeError when the state does not load."""
    old_ids = list(meta["action_ids"])
    # the snapshot's own spec: replay may load a snapshot of another policy than the config's
    policy = make_policy(config, space, old_ids, seed, meta.get("policy_spec"))
    policy.set_state(state)
    pid = snapshot_placement(meta)
    now = next((p.actions for p in config.placements if p.id == pid), ())
    added = [a for a in now if a not in old_ids]
    if added:
        policy.add_actions(len(added), action_ids=added,
                           action_features=make_policy(config, space, added, None).action_features)
        policy.objective = objective_spec(config, old_ids + added)  # the new ones' costs too
    return policy, old_ids + added


def mismatch(config, meta: dict, placement: Placement | None = None) -> str | None:
    """Why a snapshot no longer fits ``placement`` of ``config`` (its first by default), or
    None."""
    placement = placement or config.placements[0]
    if meta.get("schema_hash") != config.schema_hash():
        return "the feature schema changed since the last snapshot"
    if snapshot_placement(meta) != placement.id:
        return (f"the snapshot is of placement {snapshot_placement(meta)!r}, not "
                f"{placement.id!r}")
    if meta.get("policy_spec") != policies.canonical_spec(placement.model_spec):
        where = "" if placement.id == DEFAULT_PLACEMENT else f" at placement {placement.id!r}"
        return (f"the policy{where} changed from {meta.get('policy_spec')!r} to "
                f"{placement.model_spec!r}")
    return None


def restore(config, space, store, snapshot_dir, seed, fresh: bool,
            skip: int = 0, placement: Placement | None = None) -> Restored:
    """The newest usable snapshot's policy, or a new one (see module docstring).

    Unreadable or non-finite snapshots, and ones whose state does not load, are skipped with
    a warning (bandit.store.snapshots); ``skip`` passes over that many usable ones too (the engine
    asks for an older one when the model turned non-finite since). Only the newest usable
    snapshot is checked against the config: an older one never overrides a mismatch.
    ``placement``: whose model (the config's first by default)."""
    placement = placement or config.placements[0]
    ids = list(placement.actions)
    spec = placement.model_spec
    checked = False
    for marker, state, meta in snapshots(snapshot_dir):
        if not checked:
            checked = True
            problem = mismatch(config, meta, placement)
            if problem:
                if not fresh:
                    raise SnapshotMismatchError(
                        f"{problem}; the learned model in {snapshot_dir} no longer fits. "
                        "Restore the previous config, or start with a fresh model "
                        "(Engine.open(fresh=True), `cartwheel serve --fresh-model`), which "
                        "keeps the event log but not the model")
                break
        if skip > 0:
            skip -= 1
            continue
        try:
            policy, action_ids = policy_from_state(config, space, state, meta, seed)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping snapshot %s: its state does not load (%s)", marker.name, exc)
            continue
        return Restored(policy, action_ids, int(meta["last_learned_seq"]),
                        int(meta.get("last_decision_seq", 0)),
                        int(meta.get("first_decision_seq", 0)), from_snapshot=True,
                        clip_state=meta.get("reward_clip"),
                        deferred=meta.get("deferred_relabels"),
                        held=meta.get("held_closings"))
    if fresh:
        # events logged under the old schema may not encode any more: learn only new ones
        last = store.max_seq("decisions")
        return Restored(make_policy(config, space, ids, seed, spec), ids,
                        store.max_seq("closed"), last, last)
    return Restored(make_policy(config, space, ids, seed, spec), ids)


def pack_models(contents: dict[str, tuple[dict, dict]], meta: dict) -> tuple[dict, dict]:
    """Every placement's (state, metadata) as one snapshot (the model the trainer publishes):
    state keys prefixed ``<placement>/``, metadata ``meta`` plus ``placements``.

    >>> state, meta = pack_models({"cart": ({"theta": np.zeros(2)}, {"placement": "cart"})}, {})
    >>> sorted(state), sorted(unpack_models(state, meta))
    (['cart/theta'], ['cart'])
    """
    state = {f"{pid}/{key}": value for pid, (part, _) in contents.items()
             for key, value in part.items()}
    return state, {**meta, "placements": {pid: m for pid, (_, m) in contents.items()}}


def unpack_models(state: dict, meta: dict) -> dict[str, tuple[dict, dict]]:
    """A packed snapshot's (state, metadata) per placement; a snapshot of one model (written
    before placements) is the default placement's. Raises KeyError or TypeError when the
    metadata does not describe the state."""
    if "placements" not in meta:
        return {snapshot_placement(meta): (state, meta)}
    out = {}
    for pid, part_meta in meta["placements"].items():
        prefix = f"{pid}/"
        out[str(pid)] = ({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                         {**part_meta, "config_hash": meta.get("config_hash"),
                          "schema_hash": part_meta.get("schema_hash", meta.get("schema_hash"))})
    return out
