"""What each ``cartwheel`` sub-command does (the parser is ``bandit.cli.main``): one function per
command, taking the parsed arguments and returning the exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from bandit.domain.errors import CartwheelError


def simulate(args) -> int:
    from tqdm import tqdm

    from simulator.worlds.compare import compare, plot_curves

    specs = check_specs(args.policies)
    if args.scenario == "placements":
        return _simulate_placements(args, specs)
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


def _simulate_placements(args, specs: list[str]) -> int:
    """``cartwheel simulate --scenario placements``: each policy learning per placement, with
    the best fixed combination and the per-placement limit beside it
    (:mod:`simulator.worlds.placements_run`)."""
    import json

    import numpy as np

    import simulator
    from simulator.worlds.placements_run import run_placements

    if args.plot or args.objective:
        raise CartwheelError("--plot and --objective are not available with --scenario "
                             "placements (the shop's profit objective, a table)")
    world = simulator.make_world("placements")
    learners = [s if s == "uniform" else f"per-placement:{s}" for s in specs]
    learners += ["best-fixed", "equilibrium"]
    rows = {}
    for name in learners:
        runs = [run_placements(world, name, visitors=args.visitors, seed=seed,
                               batch_size=args.batch_size) for seed in range(args.seeds)]
        captured = np.array([r.captured for r in runs])
        rows[name] = {"value": float(np.mean([r.value for r in runs])),
                      "captured": float(captured.mean()),
                      "se": float(captured.std(ddof=1) / np.sqrt(len(runs)))
                      if len(runs) > 1 else 0.0}
        print(f"{name:32s} {rows[name]['value']:8.4f} profit/visit  captured "
              f"{100 * rows[name]['captured']:5.1f}% ± {100 * rows[name]['se']:.1f}",
              flush=True)
    print("captured gain: the share of the joint oracle's gain (the best combination of the "
          "three placements per visitor) over showing nothing anywhere; equilibrium: what "
          "perfect per-placement models reach")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scenario": "placements", "visitors": args.visitors,
                       "seeds": args.seeds, "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def serve(args) -> int:
    need("aiohttp", "prometheus_client")
    if args.role == "decide":
        if args.fresh_model:
            raise CartwheelError("a replica keeps no model of its own: --fresh-model is the "
                                 "trainer's (cartwheel train --fresh-model)")
        need("redis")
        from bandit.cli import scaleout

        return scaleout.run(scaleout.serve_replica(
            args.config, args.bus, args.host, args.port, auth=not args.no_auth,
            timeout=args.bus_timeout, secrets_file=args.secrets))
    if args.bus:
        raise CartwheelError("--bus is for --role decide (one replica of many); a single "
                             "process keeps its own log and needs no bus")
    from bandit.core.engine import Engine
    from bandit.http import app as server
    from bandit.http import dashboard, tokens
    from bandit.http.sessions import Sessions

    engine = Engine.open(args.config, args.data_dir or (None if args.config else
                                                       "cartwheel-data"),
                         fresh=args.fresh_model)
    try:
        token, source = tokens.outcome_token(engine.config, not args.no_auth,
                                              lambda: tokens.data_dir_token(engine.data_dir))
        read, read_source = tokens.read_secret(engine.config, not args.no_auth,
                                                engine.data_dir)
    except OSError as exc:
        engine.close()
        raise CartwheelError(f"cannot keep the outcome token in {engine.data_dir}: "
                             f"{exc.strerror}") from None

    sessions = Sessions()

    def announce(url: str) -> None:
        example = engine.config.action_ids
        auth = (f"outcomes: -H \"Authorization: Bearer {tokens.token_hint(source)}\"   "
                f"(the write token, {source})"
                if token else f"outcome token: {source}")
        print(f"cartwheel serving shop {engine.config.name!r} ({len(example)} actions, policy "
              f"{engine.policy.spec}, model version {engine.model_version}) at {url}\n"
              f"data: {engine.data_dir.resolve()}   stop: Ctrl-C (flushes and snapshots)\n"
              f"try:\n  curl -s -X POST {url}/v1/decide -H 'Content-Type: application/json' "
              "-d '{\"visitor_id\": \"visitor-42\", \"context\": {\"device\": \"mobile\", "
              "\"cart_value\": 35.5, \"page_type\": \"cart\"}}'\n"
              f"  {auth}\n"
              f"  dashboard: {dashboard.link(url, sessions.issue_code() if token else None)}"
              f"   (a one-time sign-in link, 10 minutes; afterwards sign in with the read "
              f"secret, {read_source})\n"
              f"  API: {url}/openapi.json   report: {url}/v1/report   metrics: {url}/metrics",
              flush=True)

    final = server.serve(engine, args.host, args.port, token=token, announce=announce,
                         read_token=read, sessions=sessions)
    # an operator watching the terminal learns what a restart will continue from
    print(f"cartwheel stopped at model version {engine.model_version}: " + (
        f"saved in {final}" if final else "no final snapshot (the store could not write; a "
        f"restart re-learns from the log in {engine.data_dir.resolve()})"), flush=True)
    return 0


def train(args) -> int:
    need("aiohttp", "prometheus_client", "redis")
    from bandit.cli import scaleout

    return scaleout.run(scaleout.train(
        args.config, args.bus, args.data_dir, args.host, args.port,
        replace_config=args.replace_config, fresh=args.fresh_model,
        publish_every_s=args.publish_every, timeout=args.bus_timeout, secrets_file=args.secrets))


def _kpi_table(title: str, rows: dict, unit: str | None, per: str) -> None:
    """One block of ``cartwheel report``: a row of KPIs per group or action."""
    width = max([len(title), *map(len, rows)])
    short = per[:3]  # vis, dec
    print(f"{title:{width}s} {unit or '':>9s} {'decisions':>10s} {'conv rate':>10s} "
          f"{'AOV':>8s} {'revenue/' + short:>12s} {'profit/' + short:>11s} "
          f"{'cost/' + short:>9s}")
    for name, k in sorted(rows.items()):
        count = f"{k[unit]:9,d}" if unit else " " * 9
        print(f"{name:{width}s} {count} {k['decisions']:10,d} "
              f"{k['conversion_rate']:10.2%} {k['aov']:8.2f} "
              f"{k['revenue_per_' + per]:12.3f} {k['profit_per_' + per]:11.3f} "
              f"{k['cost_per_' + per]:9.3f}")
    print()


def report(args) -> int:
    import json

    from bandit.cli.operations import data_dir_of
    from bandit.config.shop import load_config
    from bandit.core.guardrails import SpendTracker
    from bandit.insight.report import build_report
    from bandit.insight.timeline import plot
    from bandit.store.events import EventStore

    config = load_config(args.config)
    # read-only: a report beside a running server must not touch its store
    data_dir = data_dir_of(args, config)
    store = EventStore.read_only(data_dir / "events.sqlite3")
    report = build_report(store, config.objective.margin, alpha=args.alpha,
                          spend=SpendTracker(store, config.budget),
                          placements=config.placement_ids, costed=config.costed_ids,
                          holdout_fraction=config.holdout.fraction, currency=config.currency)
    from dataclasses import replace

    from bandit.cli.insight import snapshot_gates

    report = replace(report, policy_gate=snapshot_gates(config, data_dir))
    print(report.verdict["sentence"] + "\n")
    if report.actions_left_out:
        print(f"per-action KPIs: {report.actions_left_out:,} decisions whose attribution window "
              "had not passed at the last expiry are left out (their outcome is not final)\n")
    # groups per visitor (the unit of the holdout's randomization), actions per decision
    tables = [("group", report.groups, "visitors", "visitor"),
              ("action", report.actions, None, "decision")]
    if config.declares_placements:
        tables += [(f"at {pid}", part["actions"], None, "decision")
                   for pid, part in report.placements.items()]
    for title, rows, unit, per in tables:
        _kpi_table(title, rows, unit, per)
    if report.uplift:
        print(f"uplift of treatment over holdout ({report.confidence:.0%} intervals; "
              "Welch over visitors, delta method for ratios)")
        for u in report.uplift:
            rel = f"{u['relative']:+.1%}" if u["relative"] is not None else "-"
            print(f"  {u['kpi']:24s} {u['difference']:+10.4f}  [{u['lower']:+.4f}, "
                  f"{u['upper']:+.4f}]  ({rel}, {u['method']})")
    else:
        print("no uplift yet: both groups need at least two visitors")
    _action_uplift_table(report.per_action_uplift, report.confidence, config.currency)
    if report.daily_budget is not None:
        plan = ("" if report.spend_target is None
                else f" (paced: the plan allows {report.spend_target:.2f} by now)")
        print(f"\nincentive spend today {report.incentive_spend_today:.2f} of "
              f"{report.daily_budget:.2f}{plan}")
    if report.policy_gate:
        from bandit.cli.policies import describe

        print("\nwhich policy decides (as of the newest model snapshot)")
        for pid, view in report.policy_gate.items():
            print(describe(pid, view))
    print(f"pending events: {report.pending_events:,}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    if args.plot:
        plot(report.timeline, args.plot, config.currency)
        print(f"wrote {args.plot}")
    if args.html:
        from bandit.cli.insight import write_html

        write_html(args.html, report, config, store, args.data_dir, args.alpha)
        print(f"wrote {args.html} (the dashboard as one file: open it in a browser)")
    store.close()
    return 0


def _action_uplift_table(rows: list[dict], confidence: float, currency: str) -> None:
    """``per_action_uplift`` as a table: each action against the holdout visitors it would
    have gone to."""
    if not rows:
        print("\nper-action uplift: no visitor's first decision is final yet")
        return

    def interval(u: dict) -> str:
        if u["lower"] is None:
            return "(too few visitors)"
        return f"[{u['lower']:+.3f}, {u['upper']:+.3f}]"

    print(f"\nper-action uplift (treated visitors drawn the action vs holdout visitors who "
          f"would have been; {confidence:.0%} intervals)")
    print(f"  {'placement':12s} {'action':18s} {'treated':>8s} {'holdout':>8s} "
          f"{'conv. diff':>11s} {'':24s} {'profit/visitor':>14s}")
    for u in rows:
        conv, profit = u["conversion_uplift"], u["profit_uplift"]
        print(f"  {u['placement'][:12]:12s} {u['action'][:18]:18s} "
              f"{u['treated']['visitors']:8,d} {u['holdout']['visitors']:8,d} "
              f"{conv['difference']:+11.4f} {interval(conv):24s} "
              f"{profit['difference']:+14.3f} {interval(profit)}")
        spent = u["cannibalized_spend"]
        if spent is not None and spent["spend"] > 0:
            bounds = ("" if spent["lower"] is None
                      else f" [{spent['lower']:,.2f}, {spent['upper']:,.2f}]")
            print(f"  {'':31s} cannibalized spend {spent['total']:,.2f}{bounds} of "
                  f"{spent['spend']:,.2f} {currency} paid to visitors who would have bought "
                  "anyway")


def init(args) -> int:
    from bandit.config.reference import init_text

    path = Path(args.file)
    if path.exists() and not args.force:
        raise CartwheelError(f"{path} exists; choose another FILE or add --force to overwrite it")
    text = init_text()
    path.write_text(text.replace("cartwheel serve --config cartwheel.toml",
                                 f"cartwheel serve --config {path}"))
    print(f"wrote {path}: the example shop, every key commented.\n"
          "edit first: [[actions]] (your interventions and their costs), [features] (the "
          "context your storefront sends), [objective] margin and max_order_value; "
          "[[placements]] (at the end, commented out) when you decide at several places.\n"
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


def check_specs(text: str) -> list[str]:
    import policies

    specs = policies.split_specs(text)
    if not specs:
        raise ValueError("no policy spec given; e.g. --policies uniform,linucb "
                         "(`cartwheel policies` lists them)")
    for spec in specs:
        policies.check_spec(spec)
    if any(policies.parse_spec(s)[0] == "vw" for s in specs):
        need("vowpalwabbit")
    return specs
