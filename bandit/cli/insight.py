"""``cartwheel segments`` and ``cartwheel report --html``: what was learned, for people."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bandit.cli.operations import data_dir_of
from bandit.domain.errors import CartwheelError


def _snapshot_policy(config, data_dir: Path, placement: str = "default"):
    """(policy, its action ids, model version) of the newest snapshot of ``placement`` in
    ``data_dir``, or None when there is none."""
    from bandit.core.keeper import snapshot_folder
    from bandit.core.model import policy_from_state
    from bandit.store.snapshots import latest_snapshot

    snap = latest_snapshot(snapshot_folder(data_dir / "snapshots", placement))
    if snap is None:
        return None
    state, meta = snap
    policy, ids = policy_from_state(config, config.feature_space(), state, meta, 0)
    return policy, ids, policy.n_updates + policy.n_relabels, int(meta["last_learned_seq"])


def snapshot_gates(config, data_dir: Path) -> dict | None:
    """Each gated placement's standing (:func:`bandit.core.gate.gate_view`) as of its newest
    snapshot, read without the data dir's lock (beside a running server); None when no
    placement runs a gate or none has a snapshot yet."""
    import policies
    from bandit.core.gate import gate_view

    views = {}
    for placement in config.placements:
        if policies.gate_members(placement.model_spec) is None:
            continue
        found = _snapshot_policy(config, data_dir, placement.id)
        if found is not None:
            views[placement.id] = gate_view(found[0])
    return views or None


def compute(args, config):
    """Segments for ``cartwheel segments`` (and the HTML report): of the data dir's newest
    model snapshot over its newest decisions, or of a policy trained by replay on ``--log``."""
    from bandit.insight import segments_source

    placement = config.placement(getattr(args, "placement", None))
    at = f" at placement {placement.id}" if config.declares_placements else ""
    if getattr(args, "log", None):
        from bandit.cli.progress import log_progress
        from bandit.domain.logged import EmptyLogError
        from bandit.store.logread import LogChunks

        log = LogChunks(args.log, config, args.format,
                        "ignore" if args.ignore_unknown_keys else "refuse",
                        placement=placement.id,
                        bar=lambda label: log_progress(args.log, args.format, label))
        try:
            policy, ids, sample, rows = segments_source.trained_by_replay(
                config, log, seed=args.seed, spec=placement.spec)
        except EmptyLogError:
            log.report.explain_empty()
            raise
        print(log.report.summary(), file=sys.stderr)
        log.report.require_final()
        sampled = (f" (the tree on a uniform sample of {len(sample):,} of its {rows:,} rows)"
                   if len(sample) < rows else "")
        return segments_source.for_data(config, sample, policy, ids, depth=args.depth,
                                        alpha=args.alpha, control=placement.control), \
            f"{placement.spec} trained by replay on {args.log}{at}{sampled}"
    data_dir = data_dir_of(args, config)
    store = data_dir / "events.sqlite3"
    if not store.exists():
        raise FileNotFoundError(2, "no event log (serve writes one; or give --log)", str(store))
    found = _snapshot_policy(config, data_dir, placement.id)
    if found is None:
        raise CartwheelError(f"no model snapshot in {data_dir / 'snapshots'} yet (serve "
                             "writes one as it learns and when it stops); or give --log LOG "
                             "to train a policy by replay")
    policy, ids, version, _ = found
    return segments_source.for_store(config, store, policy, ids, depth=args.depth,
                                     alpha=args.alpha, model_version=version,
                                     placement=placement.id, control=placement.control), \
        f"{placement.spec} (snapshot, model version {version}){at}"


def print_segments(result, source: str) -> None:
    if result.status != "ok":
        print(f"no segments: {result.reason}")
        return
    print(f"segments of {source}: a depth-{result.depth} tree agreeing with the policy's "
          f"choice for {result.fidelity:.1%} of {result.rows:,} visitors; uplift in "
          f"{result.objective} per decision, {result.confidence:.0%} intervals (SNIPS over the "
          "segment's randomized decisions)")
    width = max(len(s.action) for s in result.segments)
    print(f"{'#':>2s} {'traffic':>7s}  {'prefers':{width}s} {'picks':>6s}  "
          f"{'uplift [interval]':>32s} {'vs':{max(len(s.versus) for s in result.segments)}s} "
          f"{'rows':>7s}  segment")
    for i, s in enumerate(result.segments, 1):
        u = s.uplift
        interval = ("n/a" if u.lower is None else
                    f"{u.difference:+.4f} [{u.lower:+.4f}, {u.upper:+.4f}]")
        flag = "" if u.reliable else " (few data)"
        print(f"{i:2d} {s.share:7.1%}  {s.action:{width}s} {s.picks:6.1%}  {interval:>32s} "
              f"{s.versus} {u.rows:7,d}  {s.condition}{flag}")


def segments(args) -> int:
    from bandit.config.shop import load_config
    from bandit.insight.segments import rules_toml

    config = load_config(args.config)
    result, source = compute(args, config)
    print_segments(result, source)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2, default=str))
    if args.write_rules:
        if result.status != "ok":
            raise CartwheelError(f"no rules to write: {result.reason}")
        text = rules_toml(result, args.segment, force=args.force)
        Path(args.write_rules).write_text(text)
        count = text.count("[[rules]]")
        print(f"wrote {count} rule{'s' * (count != 1)} to {args.write_rules}" + (
            "" if count else " (no segment's interval lies above zero: pick some with "
                             "--segment N)"))
    return 0


def write_html(path: str, report, config, store, data_dir, alpha: float) -> None:
    """The dashboard page with ``report``, the segments and the snapshot's model embedded:
    one file that needs no server (``cartwheel report --html``)."""
    import argparse
    import time
    from dataclasses import replace

    from bandit.http.dashboard import render
    from bandit.insight.segments import DEFAULT_DEPTH, unavailable

    args = argparse.Namespace(log=None, data_dir=data_dir, depth=DEFAULT_DEPTH, alpha=alpha)
    try:
        result, _ = compute(args, config)
    except (CartwheelError, FileNotFoundError) as exc:
        result = unavailable(str(getattr(exc, "message", exc)))
    model = None
    found = _snapshot_policy(config, Path(data_dir or config.storage.path))
    if found is not None:
        until = store.closed_ts(found[3])
        model = {"version": found[2], "learned_until": until,
                 "age_s": None if until is None else max(0.0, time.time() - until)}
    report = replace(report, shop=config.name, currency=config.currency, model=model)
    page, _ = render({"report": report.to_dict(), "segments": result.to_dict()})
    Path(path).write_text(page, encoding="utf-8")
