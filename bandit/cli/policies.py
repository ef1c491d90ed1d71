"""``cartwheel policies``: the registered policies and their parameters, and a shop's
promotion gates (``--status``; a person's ``--promote``, ``--pin``, ``--unpin``,
``--roll-back``: docs/architecture.md, "The promotion gate")."""

from __future__ import annotations

import json


def policies(args) -> int:
    if args.status or args.change:
        return _gates(args)
    import policies

    for name, cls in sorted(policies.REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name}: {doc}")
        for param, default, meaning in policies.param_info(cls):
            print(f"    {param:14s} {'= ' + repr(default):14s} {meaning}")
    print("\nspec: NAME or NAME:key=value,...  e.g. linucb:alpha=0.5 or fixed:action=none")
    print("challengers: [policy] challengers = [SPEC, ...] measures them against the spec "
          "(the promotion gate); `cartwheel policies --status` shows how they stand")
    return 0


def _gates(args) -> int:
    if not args.change:
        return _status(args)
    from bandit.cli.operations import open_data_dir
    from bandit.core.gate import change

    engine, _ = open_data_dir(args)  # a running server: POST /v1/policies
    try:
        what, spec = args.change
        views = {engine.config.placement(args.placement).id: change(
            engine, what, spec, args.placement)}
    finally:
        engine.close()
    return _show(args, views)


def _status(args) -> int:
    """The gates as of their newest snapshots: read without the data dir's lock, so beside a
    running server too (its snapshot follows every change a person makes at once)."""
    import policies
    from bandit.cli.insight import snapshot_gates
    from bandit.cli.operations import data_dir_of
    from bandit.config.shop import load_config

    config = load_config(args.config)
    gated = [p.id for p in config.placements if policies.gate_members(p.model_spec)]
    if not gated:
        print("no placement runs a promotion gate: set [policy] challengers")
        return 0
    data_dir = data_dir_of(args, config)
    views = snapshot_gates(config, data_dir) or {}
    if args.placement is not None:
        views = {pid: v for pid, v in views.items() if pid == config.placement(args.placement).id}
    if not views:
        print(f"no model snapshot in {data_dir / 'snapshots'} yet for {', '.join(gated)} "
              "(serve writes one as it learns and when it stops)")
        return 0
    return _show(args, views)


def _show(args, views: dict) -> int:
    if args.json:
        print(json.dumps(views, indent=2))
        return 0
    for pid, view in views.items():
        print(describe(pid, view))
    return 0


def describe(placement: str, view: dict) -> str:
    """A gate's standing in lines a person reads."""
    lines = [f"placement {placement}: champion {view['champion']} ({view['mode']} mode, "
             f"challengers share {view['share']:.0%} of traffic, {view['confidence']:.0%} "
             f"bounds, {view['rows_compared']:,} rows compared)"]
    for p in view["policies"]:
        line = f"  {p['role']:10s} {p['spec']}: {p['share']:.0%} of traffic, decided " \
               f"{p['decided']:,}"
        if p.get("estimate") is not None:
            lower, upper = (f"{v:+.4f}" if v is not None else "?" for v in (p["lower"],
                                                                           p["upper"]))
            line += f"; advantage {p['estimate']:+.4f} per visitor [{lower}, {upper}]"
            if p["role"] == "challenger" and p.get("rows_needed") is not None:
                line += f", about {p['rows_needed']:,} more rows to decide at this estimate"
        if p.get("ready"):
            line += "  <- its bound cleared: promote it with --promote"
        if p.get("pinned"):
            line += "  (pinned)"
        lines.append(line)
    for e in view["promotions"]:
        lines.append(f"  promoted {e['to_spec']} over {e['from_spec']} at row {e['row']:,} "
                     f"({'by a person' if e['by'] == 'person' else 'by the gate'})")
    for e in view["retired"]:
        if e["reason"] == "bound":
            lines.append(f"  retired {e['spec']} at row {e['row']:,}: no better by its bound")
    for e in view["rollbacks"]:
        lines.append(f"  rolled back {e['from_spec']} to {e['to_spec']} at row {e['row']:,}: "
                     f"{e['reason']}")
    return "\n".join(lines)
