"""The ``cartwheel`` command: one sub-command per way in (simulate, serve, replay, ...)."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from pathlib import Path

from .errors import CartwheelError


def _simulate(args) -> int:
    from simulator.compare import compare, plot_curves
    from tqdm import tqdm

    specs = _check_specs(args.policies)
    if args.plot:
        need("matplotlib")
    total = args.visitors * args.seeds * len(specs)
    with tqdm(total=total, unit="visitor", unit_scale=True, disable=args.quiet or None,
              desc=f"simulate {args.scenario}", file=sys.stderr) as bar:
        table = compare(specs, scenario=args.scenario, visitors=args.visitors, seeds=args.seeds,
                        objective=args.objective, batch_size=args.batch_size, progress=bar.update)
    print(table.format())
    print("captured gain: the share of the best possible gain over showing uniformly random "
          "interventions that the policy earned (0% = random, 100% = an oracle that knows "
          "every visitor)")
    if args.json:
        with open(args.json, "w") as f:
            f.write(table.to_json())
        print(f"wrote {args.json}")
    if args.plot:
        plot_curves(table, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _serve(args) -> int:
    need("aiohttp", "prometheus_client")
    if args.role == "decide":
        if not args.bus:
            raise CartwheelError("--role decide needs --bus redis://HOST:PORT/DB (the shop's "
                                 "Redis, which the trainer reads: cartwheel train --bus URL)")
        need("redis")
        from . import scaleout

        return scaleout.run(scaleout.serve_replica(
            args.config, args.bus, args.host, args.port, auth=not args.no_auth,
            timeout=args.bus_timeout))
    if args.bus:
        raise CartwheelError("--bus is for --role decide (one replica of many); a single "
                             "process keeps its own log and needs no bus")
    from . import server
    from .engine import Engine

    engine = Engine.open(args.config, args.data_dir or (None if args.config else
                                                       "cartwheel-data"),
                         fresh=args.fresh_model)
    try:
        token, source = server.outcome_token(engine, auth=not args.no_auth)
    except OSError as exc:
        engine.close()
        raise CartwheelError(f"cannot keep the outcome token in {engine.data_dir}: "
                             f"{exc.strerror}") from None

    def announce(url: str) -> None:
        example = engine.config.action_ids
        auth = (f"outcomes: -H 'Authorization: Bearer {token}'   (token {source})"
                if token else f"outcome token: {source}")
        print(f"cartwheel serving shop {engine.config.name!r} ({len(example)} actions, policy "
              f"{engine.policy.spec}, model version {engine.model_version}) at {url}\n"
              f"data: {engine.data_dir.resolve()}   stop: Ctrl-C (flushes and snapshots)\n"
              f"try:\n  curl -s -X POST {url}/v1/decide -H 'Content-Type: application/json' "
              "-d '{\"visitor_id\": \"visitor-42\", \"context\": {\"device\": \"mobile\", "
              "\"cart_value\": 35.5, \"page_type\": \"cart\"}}'\n"
              f"  {auth}\n"
              f"  API: {url}/openapi.json   report: {url}/v1/report   metrics: {url}/metrics",
              flush=True)

    server.serve(engine, args.host, args.port, token=token, announce=announce)
    return 0


def _train(args) -> int:
    need("aiohttp", "prometheus_client", "redis")
    from . import scaleout

    return scaleout.run(scaleout.train(
        args.config, args.bus, args.data_dir, args.host, args.port,
        replace_config=args.replace_config, fresh=args.fresh_model, publish_every_s=args.publish_every, timeout=args.bus_timeout))


def _replay(args) -> int:
    import json

    import policies
    from simulator.replay import evaluate

    from .config import load_config
    from .snapshots import latest_snapshot

    specs = _check_specs(args.policies) if args.policies else []
    if str(args.log).endswith(".parquet") or args.format == "parquet":
        need("pyarrow")
    config = load_config(args.config)
    data, report = _read_with_progress(args.log, config, args.format,
                                       "ignore" if args.ignore_unknown_keys else "refuse")
    print(report.summary(), file=sys.stderr)
    snapshots = []
    for directory in args.snapshot or []:
        snap = latest_snapshot(directory)
        if snap is None:
            raise ValueError(f"no snapshot in {directory}")
        state, meta = snap
        if tuple(meta["action_ids"]) != config.action_ids:
            raise ValueError(f"snapshot in {directory} has actions {meta['action_ids']}, the "
                             f"config has {list(config.action_ids)}")
        policy = policies.make(meta["policy_spec"], n_actions=len(config.action_ids),
                               n_features=data.X.shape[1],
                               feature_names=config.feature_space().names,
                               action_ids=config.action_ids,
                               action_features=config.action_features()[0])
        policy.set_state(state)
        snapshots.append((f"snapshot:{directory}", policy))
    if not specs and not snapshots:
        raise ValueError("nothing to evaluate: give --policies and/or --snapshot")
    results = evaluate(data, specs, method=args.method, alpha=args.alpha, seed=args.seed,
                       snapshots=snapshots, action_features=config.action_features()[0])
    evaluable = data.evaluable()
    print(f"log: {len(data):,} decisions, {len(evaluable):,} randomized; logging policy's own "
          f"value {evaluable.logging_value:.4f} per decision")
    width = max(len(r.spec) for r in results)
    print(f"{'policy':{width}s}  {'method':15s} {'estimate':>9s}  {'95% interval':>21s} "
          f"{'ESS':>9s} {'n':>9s}".replace("95%", f"{1 - args.alpha:.0%}"))
    for r in results:
        print(f"{r.spec:{width}s}  {r.kind:15s} {r.value:9.4f}  [{r.lower:9.4f}, {r.upper:9.4f}] "
              f"{r.ess:9,.0f} {r.n:9,d}")
    if args.json:
        from dataclasses import asdict
        with open(args.json, "w") as f:
            json.dump({"logging_value": evaluable.logging_value, "decisions": len(data),
                       "refused": report.problems, "results": [asdict(r) for r in results]},
                      f, indent=2)
    return 0


def _read_with_progress(path, config, fmt, unknown_keys):
    """read_log with a progress bar and ETA on the terminal (large logs take a while)."""
    from simulator.logio import count_rows, read_log
    from tqdm import tqdm

    if not Path(path).exists():
        raise FileNotFoundError(2, "no such log", str(path))
    with tqdm(total=count_rows(path, fmt), unit="row", unit_scale=True, desc="reading log",
              file=sys.stderr, disable=None, leave=False) as bar:
        return read_log(path, config, fmt, unknown_keys=unknown_keys, progress=bar.update)


def _export(args) -> int:
    from simulator.logio import write_log

    from .config import load_config

    from simulator.logio import detect_format

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
    data, report = _read_with_progress(args.data_dir, config, "sqlite", "refuse")
    print(report.summary(), file=sys.stderr)
    rows = write_log(data, out, fmt)
    print(f"wrote {rows:,} closed decisions to {out} ({fmt})")
    return 0


def _report(args) -> int:
    import json

    from .config import load_config
    from .guardrails import SpendTracker
    from .report import build_report, plot_timeline, timeline
    from .store import EventStore

    config = load_config(args.config)
    # read-only: a report beside a running server must not touch its store
    store = EventStore.read_only(Path(args.data_dir or config.storage.path) / "events.sqlite3")
    report = build_report(store, config.objective.margin, alpha=args.alpha,
                          spend=SpendTracker(store, config.budget))
    for title, rows in (("group", report.groups), ("action", report.actions)):
        width = max([len(title), *map(len, rows)])
        print(f"{title:{width}s} {'visitors':>9s} {'decisions':>10s} {'conv rate':>10s} "
              f"{'AOV':>8s} {'revenue/vis':>12s} {'profit/vis':>11s} {'cost/vis':>9s}")
        for name, k in sorted(rows.items()):
            print(f"{name:{width}s} {k['visitors']:9,d} {k['decisions']:10,d} "
                  f"{k['conversion_rate']:10.2%} {k['aov']:8.2f} {k['revenue_per_visitor']:12.3f} "
                  f"{k['profit_per_visitor']:11.3f} {k['cost_per_visitor']:9.3f}")
        print()
    if report.uplift:
        print(f"uplift of treatment over holdout ({report.confidence:.0%} intervals; "
              "Welch over visitors, delta method for ratios)")
        for u in report.uplift:
            rel = f"{u['relative']:+.1%}" if u["relative"] is not None else "-"
            print(f"  {u['kpi']:24s} {u['difference']:+10.4f}  [{u['lower']:+.4f}, "
                  f"{u['upper']:+.4f}]  ({rel}, {u['method']})")
    else:
        print("no uplift yet: both groups need at least two visitors")
    if report.daily_budget is not None:
        print(f"\nincentive spend today {report.incentive_spend_today:.2f} of "
              f"{report.daily_budget:.2f}")
    print(f"pending events: {report.pending_events:,}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    if args.plot:
        plot_timeline(timeline(store, config.objective.margin, alpha=args.alpha), args.plot,
                      config.currency)
        print(f"wrote {args.plot}")
    store.close()
    return 0


def _policies(args) -> int:
    import policies

    for name, cls in sorted(policies.REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name}: {doc}")
        for param, default, meaning in policies.param_info(cls):
            print(f"    {param:14s} {'= ' + repr(default):14s} {meaning}")
    print("\nspec: NAME or NAME:key=value,...  e.g. linucb:alpha=0.5 or fixed:action=none")
    return 0


def _init(args) -> int:
    from importlib import resources

    path = Path(args.file)
    if path.exists() and not args.force:
        raise CartwheelError(f"{path} exists; choose another FILE or add --force to overwrite it")
    text = resources.files("bandit").joinpath("example_shop.toml").read_text("utf-8")
    path.write_text(text.replace("cartwheel serve --config cartwheel.toml",
                                 f"cartwheel serve --config {path}"))
    print(f"wrote {path}: the example shop, every key commented.\n"
          "edit first: [[actions]] (your interventions and their costs), [features] (the "
          "context your storefront sends), [objective] margin and max_order_value.\n"
          f"then: cartwheel serve --config {path}")
    return 0


_EXTRAS = {"vowpalwabbit": "vw", "aiohttp": "server", "prometheus_client": "server",
           "matplotlib": "plot", "pyarrow": "parquet", "redis": "redis"}


def need(*modules: str) -> None:
    """Refuse at once, in one line, when an optional dependency is missing (before any work)."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            extra = _EXTRAS[module]
            raise MissingExtra(f"this needs {module}, which is not installed: "
                               f"pip install \"cartwheel[{extra}]\"")


class MissingExtra(CartwheelError):
    pass


def _check_specs(text: str) -> list[str]:
    import policies

    specs = policies.split_specs(text)
    for spec in specs:
        policies.check_spec(spec)
    if any(policies.parse_spec(s)[0] == "vw" for s in specs):
        need("vowpalwabbit")
    return specs


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default once, and only where there is one to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cartwheel",
        description="Adaptive contextual-bandit optimizer for e-commerce interventions.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser(
        "simulate", help="compare policies on a simulated shop",
        description="Run policies against a simulated shop and print, per policy, the share of "
                    "the oracle's gain over uniform it captures, KPIs and speed. Every policy "
                    "meets the same visitors for a given seed.",
        formatter_class=_Formatter)
    sim.add_argument("--scenario", default="default",
                     help="world: default, drift (preferences change mid-run) or random "
                          "(a different plausible shop per seed)")
    sim.add_argument("--policies", default="uniform,egreedy,linucb,lints,bts",
                     help="comma-separated policy specs NAME[:key=value,...]; a key=value token "
                          "belongs to the spec before it (see `cartwheel policies`)")
    sim.add_argument("--visitors", type=int, default=20_000, help="visitors per run")
    sim.add_argument("--seeds", type=int, default=3, help="runs per policy, seeds 0..N-1")
    sim.add_argument("--objective", choices=("conversion", "revenue", "profit"), default=None,
                     help="what to optimize (default: the shop's, profit)")
    sim.add_argument("--batch-size", type=int, default=100,
                     help="visitors decided between two model updates (feedback delay)")
    sim.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    sim.add_argument("--plot", metavar="FILE",
                     help="draw cumulative captured gain over visitors (PNG; needs [plot])")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_simulate)

    srv = sub.add_parser(
        "serve", help="run the decision endpoint (HTTP)",
        description="Serve POST /v1/decide, POST /v1/outcome, GET /v1/report, /healthz, "
                    "/metrics and /openapi.json. Without --config it serves the embedded default "
                    "shop and stores under ./cartwheel-data/. SIGTERM or Ctrl-C stops accepting, "
                    "finishes in-flight requests, flushes the store, snapshots and exits 0.",
        formatter_class=_Formatter)
    srv.add_argument("--config", metavar="FILE", help="shop config (cartwheel.toml)")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    srv.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    srv.add_argument("--data-dir", metavar="DIR",
                     help="event store and snapshots (default: the config's storage.path, "
                          "./cartwheel-data without a config)")
    srv.add_argument("--no-auth", action="store_true",
                     help="leave POST /v1/outcome open (no token); without it, outcomes need "
                          "the [server] token, CARTWHEEL_TOKEN, or the one generated into the "
                          "data dir on first start and printed at each start")
    srv.add_argument("--fresh-model", action="store_true",
                     help="start a new model when the saved one no longer fits the config "
                          "(the event log is kept)")
    srv.add_argument("--role", choices=("all", "decide"), default="all",
                     help="all: one process decides, logs and learns; decide: one of many "
                          "replicas that decide and log to --bus for `cartwheel train`")
    srv.add_argument("--bus", metavar="URL", help="the shop's Redis (redis://HOST:PORT/DB), "
                                                  "with --role decide")
    srv.add_argument("--bus-timeout", type=float, default=0.5, metavar="S",
                     help="seconds a Redis call may take before requests answer 503")
    srv.set_defaults(func=_serve)

    trn = sub.add_parser(
        "train", help="learn from the decide replicas' log on a bus (one per shop)",
        description="The one trainer of a shop whose decide replicas log to Redis: ingests "
                    "their decisions and outcomes exactly once into DIR/events.sqlite3 (report, "
                    "export and replay work on it), learns, and publishes the model to them. "
                    "Serves /v1/report, /healthz and /metrics.",
        formatter_class=_Formatter)
    trn.add_argument("--bus", required=True, metavar="URL", help="redis://HOST:PORT/DB")
    trn.add_argument("--config", metavar="FILE", help="shop config (the replicas' own)")
    trn.add_argument("--data-dir", metavar="DIR", help="the trainer's store and snapshots "
                                                       "(default: the config's storage.path)")
    trn.add_argument("--host", default="127.0.0.1", help="address of the report and metrics")
    trn.add_argument("--port", type=int, default=8081, help="port (0: any free port)")
    trn.add_argument("--publish-every", type=float, default=1.0, metavar="S",
                     help="publish the model to the replicas at most every S seconds")
    trn.add_argument("--replace-config", action="store_true",
                     help="make this config the shop's (after stopping the replicas that run "
                          "the old one); otherwise a config that differs is refused")
    trn.add_argument("--fresh-model", action="store_true",
                     help="start a new model when the snapshot no longer fits the config")
    trn.add_argument("--bus-timeout", type=float, default=0.5, metavar="S",
                     help="seconds a Redis call may take before it is retried")
    trn.set_defaults(func=_train)

    rep = sub.add_parser(
        "replay", help="estimate candidate policies' value from a logged log",
        description="Off-policy evaluation on logged decisions. Policies that do not learn "
                    "(uniform, fixed:action=ID, --snapshot models) are fixed targets scored by "
                    "--method; learning policies are replayed through the log (Li et al. 2011 "
                    "on uniform logs, importance-weighted otherwise). Refused rows are listed "
                    "with their line numbers.",
        formatter_class=_Formatter)
    rep.add_argument("log", help="events.sqlite3 or a data dir, .jsonl, .parquet or .dsjson")
    rep.add_argument("--policies", default="uniform,linucb",
                     help="comma-separated policy specs")
    rep.add_argument("--snapshot", action="append", metavar="DIR",
                     help="also evaluate the newest model snapshot in DIR (repeatable)")
    rep.add_argument("--method", default="dr",
                     choices=("dm", "ips", "snips", "dr", "sndr", "switch-dr"),
                     help="estimator for fixed targets")
    rep.add_argument("--config", metavar="FILE",
                     help="shop config the log belongs to (default: the embedded shop)")
    rep.add_argument("--format", choices=("sqlite", "jsonl", "parquet", "dsjson"),
                     help="log format (default: from the file name)")
    rep.add_argument("--ignore-unknown-keys", action="store_true",
                     help="leave out context keys the shop's schema does not declare (counted "
                          "in the summary) instead of refusing those rows")
    rep.add_argument("--alpha", type=float, default=0.05, help="1 - interval confidence")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    rep.set_defaults(func=_replay)

    exp = sub.add_parser(
        "export", help="export closed decisions from an event store",
        description="Write the closed decisions of a data dir's event log (context as stored, "
                    "eligible actions, action, probability, reward, time) as JSON Lines, "
                    "Parquet or Vowpal Wabbit's DSJSON, for `cartwheel replay` or other tools. "
                    "The format follows --out's extension.",
        formatter_class=_Formatter)
    exp.add_argument("--format", choices=("jsonl", "parquet", "dsjson"), default=None,
                     help="file format (default: from --out's extension; a mismatch is an "
                          "error)")
    exp.add_argument("--data-dir", default="cartwheel-data", help="the engine's data dir")
    exp.add_argument("--config", metavar="FILE", help="shop config (default: embedded shop)")
    exp.add_argument("--out", required=True, metavar="FILE", help="file to write")
    exp.set_defaults(func=_export)

    rpt = sub.add_parser(
        "report", help="KPIs per group and action, uplift vs holdout",
        description="Conversion rate, order value, revenue, incentive cost and profit per "
                    "visitor for the treatment and the holdout, the uplift of treatment with "
                    "intervals, per-action KPIs and today's spend, from a data dir's event log "
                    "(read-only: safe beside a running server).",
        formatter_class=_Formatter)
    rpt.add_argument("--data-dir", help="the engine's data dir (default: the config's)")
    rpt.add_argument("--config", metavar="FILE", help="shop config (default: embedded shop)")
    rpt.add_argument("--alpha", type=float, default=0.05, help="1 - interval confidence")
    rpt.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    rpt.add_argument("--plot", metavar="FILE",
                     help="draw KPIs of both groups over time with intervals (PNG; needs [plot])")
    rpt.set_defaults(func=_report)

    pol = sub.add_parser("policies", help="list the registered policies and their parameters")
    pol.set_defaults(func=_policies)

    ini = sub.add_parser(
        "init", help="write a commented example shop config to start from",
        description="Write the example shop's configuration, every key commented, to FILE "
                    "(never over an existing file without --force), then say what to edit.",
        formatter_class=_Formatter)
    ini.add_argument("file", nargs="?", default="cartwheel.toml", metavar="FILE")
    ini.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    ini.set_defaults(func=_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cartwheel`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # cartwheel's matrices are small (d x d per action): BLAS threads only add contention, and
    # on a busy machine their spin-waits slow every decision down many times over
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(os.environ.get("CARTWHEEL_BLAS_THREADS", "1")))
    # warnings (a skipped snapshot, a migration, a degraded store) reach the terminal or the
    # service's journal with a time and their source
    logging.basicConfig(level=logging.INFO if args.command in ("serve", "train")
                        else logging.WARNING,
                        format="%(asctime)s cartwheel %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0
    except (CartwheelError, ValueError, RuntimeError, OSError, sqlite3.Error) as exc:
        if isinstance(exc, BrokenPipeError):  # `cartwheel policies | head`
            sys.stderr.close()
            return 0
        message = exc.message if isinstance(exc, CartwheelError) else (
            f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename
            else str(exc))
        print(f"cartwheel {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
