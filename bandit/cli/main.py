"""The ``cartwheel`` command: one sub-command per way in (simulate, serve, train, replay, ...);
what each does is in ``bandit.cli.commands``."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys

from bandit.cli import commands, logs, operations
from bandit.cli import insight as commands_insight
from bandit.cli import policies as policies_command
from bandit.domain.errors import CartwheelError


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
                     help="world: default, drift (preferences change mid-run), random "
                          "(a different plausible shop per seed) or placements (a visit passes "
                          "product page, cart and an exit pop-up; each policy learns per "
                          "placement)")
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
    sim.set_defaults(func=commands.simulate)

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
                          "./cartwheel-data without a config); a --role decide replica keeps "
                          "nothing on disk")
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
                                                  "with --role decide (or CARTWHEEL_BUS_URL)")
    srv.add_argument("--secrets", metavar="FILE",
                     help="with --role decide: a 0600 file of NAME=value lines "
                          "(CARTWHEEL_HASH_KEY, CARTWHEEL_BUS_KEY, CARTWHEEL_TOKEN, "
                          "CARTWHEEL_BUS_URL); the environment wins")
    srv.add_argument("--bus-timeout", type=float, default=0.5, metavar="S",
                     help="seconds a Redis call may take before requests answer 503")
    srv.set_defaults(func=commands.serve)

    trn = sub.add_parser(
        "train", help="learn from the decide replicas' log on a bus (one per shop)",
        description="The one trainer of a shop whose decide replicas log to Redis: ingests "
                    "their decisions and outcomes exactly once into DIR/events.sqlite3 (report, "
                    "export and replay work on it), learns, and publishes the model to them. "
                    "Serves /v1/report, /healthz and /metrics.",
        formatter_class=_Formatter)
    trn.add_argument("--bus", metavar="URL",
                     help="redis://HOST:PORT/DB (or CARTWHEEL_BUS_URL: keeps a password off "
                          "the command line)")
    trn.add_argument("--secrets", metavar="FILE",
                     help="a 0600 file of NAME=value lines (CARTWHEEL_HASH_KEY, "
                          "CARTWHEEL_BUS_KEY, CARTWHEEL_TOKEN, CARTWHEEL_BUS_URL); the "
                          "environment wins")
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
    trn.set_defaults(func=commands.train)

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
    rep.add_argument("--placement", metavar="ID",
                     help="replay the decisions made at this placement, over its actions "
                          "(required when the shop declares [[placements]])")
    rep.add_argument("--alpha", type=float, default=0.05, help="1 - interval confidence")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    rep.set_defaults(func=logs.replay)

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
    exp.add_argument("--include-open", action="store_true",
                     help="also write the decisions still inside their attribution window, "
                          "marked \"open\": true (readers leave them out of estimates)")
    exp.add_argument("--placement", metavar="ID",
                     help="only the decisions made at this placement, over its actions "
                          "(default: every placement, each row naming its own)")
    exp.set_defaults(func=logs.export)

    fgt = sub.add_parser(
        "forget", help="erase one visitor's rows on request (GDPR erasure)",
        description="Blank every row of one visitor in the data dir's event log: their "
                    "hashed id, contexts and order ids (the decisions stay as anonymous "
                    "records so the log's counts hold); the old bytes are scrubbed from the "
                    "database and its write-ahead log. The model is left as it is. Needs the "
                    "data dir's lock: with a server running, use POST /v1/forget instead.",
        formatter_class=_Formatter)
    fgt.add_argument("--visitor", required=True, metavar="ID",
                     help="the visitor id the storefront sent (as given to /v1/decide)")
    _shop_args(fgt)
    fgt.set_defaults(func=operations.forget)

    bak = sub.add_parser(
        "backup", help="copy a data dir consistently, also while it serves",
        description="Copy the event log (SQLite's online backup: one consistent state, the "
                    "server goes on writing) and the model snapshots into a new directory "
                    "(the token and the hash key only with --with-secrets). Restore by "
                    "starting `cartwheel serve --data-dir DEST`.",
        formatter_class=_Formatter)
    bak.add_argument("dest", help="a new (or empty) directory to write the copy to")
    bak.add_argument("--with-secrets", action="store_true",
                     help="also copy the token and the hash key (kept apart by default)")
    _shop_args(bak)
    bak.set_defaults(func=operations.backup)

    cpt = sub.add_parser(
        "compact", help="remove decisions older than [storage] keep_days now",
        description="Retention on demand (a running server does it by itself every few "
                    "minutes): decisions older than keep_days, closed, final and covered by "
                    "every kept model snapshot are removed with their outcomes; the report's "
                    "history stays (it is kept as aggregates).",
        formatter_class=_Formatter)
    _shop_args(cpt)
    cpt.set_defaults(func=operations.compact)

    rpt = sub.add_parser(
        "report", help="KPIs per group and action, uplift vs holdout",
        description="Conversion rate, order value, revenue, incentive cost and profit per "
                    "visitor for the treatment and the holdout, the uplift of treatment with "
                    "intervals, per-action KPIs and today's spend, from a data dir's event log "
                    "(read-only: safe beside a running server).",
        formatter_class=_Formatter)
    _shop_args(rpt)
    rpt.add_argument("--alpha", type=float, default=0.05, help="1 - interval confidence")
    rpt.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    rpt.add_argument("--plot", metavar="FILE",
                     help="draw KPIs of both groups over time with intervals (PNG; needs [plot])")
    rpt.add_argument("--html", metavar="FILE",
                     help="write the dashboard page with this report (and the segments when "
                          "a model snapshot exists) as one self-contained file, for sharing")
    rpt.set_defaults(func=commands.report)

    seg = sub.add_parser(
        "segments", help="what the policy learned, as readable segments with uplift",
        description="Summarize what the current policy does as a shallow decision tree over "
                    "the context (default depth 3, at most 8 segments): per segment its "
                    "condition, share of traffic, the action the policy prefers and how often "
                    "it picks it, and the uplift of that action over the control with an "
                    "interval from the segment's randomized logged decisions. The model is the "
                    "data dir's newest snapshot over its newest 50,000 decisions; with --log, "
                    "the config's policy trained by replay on that log. --write-rules freezes "
                    "segments as [[rules]] for the shop's config.",
        formatter_class=_Formatter)
    _shop_args(seg)
    seg.add_argument("--log", metavar="LOG", help="a log from `cartwheel export` (or any "
                                                  "format replay reads) instead of the data dir")
    seg.add_argument("--format", choices=("sqlite", "jsonl", "parquet", "dsjson"),
                     help="--log's format (default: from the file name)")
    seg.add_argument("--ignore-unknown-keys", action="store_true",
                     help="leave out context keys the schema does not declare (with --log)")
    seg.add_argument("--placement", metavar="ID",
                     help="the model of this placement, over the decisions made there "
                          "(required when the shop declares [[placements]])")
    seg.add_argument("--depth", type=int, default=3, choices=range(1, 9), metavar="{1..8}",
                     help="tree depth (deeper: more faithful, less readable; see docs/insight.md)")
    seg.add_argument("--alpha", type=float, default=0.05, help="1 - interval confidence")
    seg.add_argument("--seed", type=int, default=0, help="seed of the replay-trained policy")
    seg.add_argument("--json", metavar="FILE", help="also write the segments as JSON")
    seg.add_argument("--write-rules", metavar="FILE",
                     help="write segments as [[rules]] that force their action (default: "
                          "those whose uplift interval lies above zero)")
    seg.add_argument("--segment", type=int, action="append", metavar="N",
                     help="with --write-rules: write segment N (as listed; repeatable)")
    seg.add_argument("--force", action="store_true",
                     help="with --write-rules: write a segment whose interval is not above "
                          "zero, or that has few data (refused otherwise)")
    seg.set_defaults(func=commands_insight.segments)

    pol = sub.add_parser(
        "policies", help="list the registered policies; a shop's promotion gates",
        description="Without options: the registered policies and their parameters. With "
                    "--status: how each placement's challengers stand against its champion, "
                    "as of its newest snapshot (beside a running server too). --promote, "
                    "--pin, --unpin and --roll-back are a person's decision on a gate "
                    "(logged, written to a snapshot at once). These need the data dir's "
                    "lock: with a server running, use POST /v1/policies instead.",
        formatter_class=_Formatter)
    pol.add_argument("--status", action="store_true",
                     help="show the promotion gates of the shop's data dir (as of their "
                          "newest snapshots)")
    gate_change = pol.add_mutually_exclusive_group()
    gate_change.add_argument("--promote", metavar="SPEC", dest="change",
                             type=lambda s: ("promote", s),
                             help="make challenger SPEC the champion")
    gate_change.add_argument("--pin", metavar="SPEC", dest="change", nargs="?",
                             const=("pin", None), type=lambda s: ("pin", s),
                             help="keep the champion (or make SPEC it) until --unpin")
    gate_change.add_argument("--unpin", dest="change", action="store_const",
                             const=("unpin", None), help="let the gate promote again")
    gate_change.add_argument("--roll-back", dest="change", action="store_const",
                             const=("roll_back", None),
                             help="bring back the champion the last promotion replaced")
    pol.add_argument("--placement", metavar="ID", help="the placement (a shop with several)")
    pol.add_argument("--json", action="store_true", help="print the standing as JSON")
    _shop_args(pol)
    pol.set_defaults(func=policies_command.policies)

    ini = sub.add_parser(
        "init", help="write a commented example shop config to start from",
        description="Write the example shop's configuration, every key commented, to FILE "
                    "(never over an existing file without --force), then say what to edit.",
        formatter_class=_Formatter)
    ini.add_argument("file", nargs="?", default="cartwheel.toml", metavar="FILE")
    ini.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    ini.set_defaults(func=commands.init)
    return parser


def _shop_args(parser) -> None:
    """The two options of every command that works on one shop's data dir."""
    parser.add_argument("--data-dir", help="the engine's data dir (default: the config's)")
    parser.add_argument("--config", metavar="FILE", help="shop config (default: embedded shop)")


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

