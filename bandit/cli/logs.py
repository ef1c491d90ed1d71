"""The commands that read a whole log: ``cartwheel replay`` and ``cartwheel export``. Both read
it in chunks (:class:`bandit.store.logread.LogChunks`, :func:`~bandit.store.logread.iter_log`),
so a log of any size takes the memory of one chunk."""

from __future__ import annotations

import sys
from pathlib import Path

from bandit.cli.commands import check_specs, need
from bandit.domain.errors import CartwheelError


def replay(args) -> int:
    import json

    from bandit.cli.progress import log_progress
    from bandit.config.shop import load_config
    from bandit.core.model import objective_spec, policy_from_state
    from bandit.store.logread import LogChunks
    from bandit.store.snapshots import latest_snapshot
    from simulator.evaluation import replay as replays

    specs = check_specs(args.policies) if args.policies else []
    replays.refuse_gates(specs)  # before a long read
    if str(args.log).endswith(".parquet") or args.format == "parquet":
        need("pyarrow")
    config = load_config(args.config)
    # each placement has its own actions and model: a log is replayed at one of them
    placement = config.placement(args.placement)
    snapshots = []
    for directory in args.snapshot or []:
        snap = latest_snapshot(directory)
        if snap is None:
            raise ValueError(f"no snapshot in {directory}")
        state, meta = snap
        if tuple(meta["action_ids"]) != placement.actions:
            raise ValueError(f"snapshot in {directory} has actions {meta['action_ids']}, "
                             f"placement {placement.id!r} has {list(placement.actions)}")
        policy, _ = policy_from_state(config, config.feature_space(), state, meta, None)
        snapshots.append((f"snapshot:{directory}", policy))
    if not specs and not snapshots:
        raise ValueError("nothing to evaluate: give --policies and/or --snapshot")
    # read in chunks, never whole (a log of any size; the docs' results give the memory)
    log = LogChunks(args.log, config, args.format,
                    "ignore" if args.ignore_unknown_keys else "refuse", placement=placement.id,
                    bar=lambda label: log_progress(args.log, args.format, label))
    try:
        run = replays.replay(log, specs, method=args.method, alpha=args.alpha, seed=args.seed,
                             snapshots=snapshots,
                             action_features=config.action_features()[0][
                                 [config.action_index(a) for a in placement.actions]],
                             objective=objective_spec(config, placement.actions))
    except replays.NothingToEvaluate:
        print(log.report.summary(), file=sys.stderr)
        log.report.explain_empty()
        raise  # usable rows, none randomized
    print(log.report.summary(), file=sys.stderr)
    log.report.require_final()
    results, totals = run.results, run.totals
    print(f"log: {totals.decisions:,} decisions, {totals.randomized:,} randomized; logging "
          f"policy's own value {totals.logging_value:.4f} per decision")
    width = max(len(r.spec) for r in results)
    print(f"{'policy':{width}s}  {'method':15s} {'estimate':>9s}  {'95% interval':>21s} "
          f"{'ESS':>9s} {'n':>9s}".replace("95%", f"{1 - args.alpha:.0%}"))
    for r in results:
        print(f"{r.spec:{width}s}  {r.kind:15s} {r.value:9.4f}  [{r.lower:9.4f}, {r.upper:9.4f}] "
              f"{r.ess:9,.0f} {r.n:9,d}")
    if args.json:
        from dataclasses import asdict
        with open(args.json, "w") as f:
            json.dump({"logging_value": totals.logging_value, "decisions": totals.decisions,
                       "refused": log.report.problems, "refused_rows": log.report.bad,
                       "results": [asdict(r) for r in results]}, f, indent=2)
    return 0


def export(args) -> int:
    from bandit.cli.progress import log_progress
    from bandit.config.shop import load_config
    from bandit.store.logread import LoadReport, detect_format, iter_log, nothing_usable
    from bandit.store.logwrite import LogWriter

    out = Path(args.out)
    try:
        by_name = detect_format(out)
    except ValueError:
        by_name = None
    fmt = args.format or by_name
    if fmt is None or fmt == "sqlite":
        raise CartwheelError(f"cannot tell the format of {out} from its name: end it in .jsonl, "
                             ".parquet or .dsjson, or give --format")
    if args.format and by_name and by_name != args.format:
        raise CartwheelError(f"--format {args.format} but {out.name} ends like {by_name}: "
                             f"rename it, or leave --format out")
    if fmt == "parquet":
        need("pyarrow")
    config = load_config(args.config)
    placement = None if args.placement is None else config.placement(args.placement).id
    if fmt == "dsjson" and args.include_open:
        raise CartwheelError("DSJSON has no field to mark a decision open: export open "
                             "decisions as .jsonl or .parquet")
    if fmt == "dsjson" and placement is None and config.declares_placements:
        raise CartwheelError("DSJSON has no field for the placement: export one placement "
                             f"at a time with --placement (this shop's: "
                             f"{list(config.placement_ids)})")
    # chunk by chunk: a store of any size is exported with bounded memory
    report, rows, opened = LoadReport(), 0, 0
    with log_progress(args.data_dir, "sqlite") as bar, LogWriter(out, fmt) as writer:
        for chunk in iter_log(args.data_dir, config, report, "sqlite", "refuse", bar.update,
                              placement=placement, include_open=args.include_open):
            rows += writer.write(chunk)
            opened += 0 if chunk.open is None else int(chunk.open.sum())
    if not rows:
        out.unlink(missing_ok=True)
        raise nothing_usable(report)
    print(report.summary(), file=sys.stderr)
    at = "" if placement is None else f" at placement {placement}"
    print(f"wrote {rows:,} decisions{at} to {out} ({fmt}): {rows - opened:,} final"
          + (f", {opened:,} still inside their window (marked open)" if opened else ""))
    return 0
