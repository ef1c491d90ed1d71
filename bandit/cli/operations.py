"""Commands that care for a data dir: ``forget`` (erase a visitor on request), ``backup`` (a
consistent copy while serving) and ``compact`` (retention on demand; docs/operations.md)."""

from __future__ import annotations

from pathlib import Path


def data_dir_of(args, config) -> Path:
    """The shop's data dir: ``--data-dir``, else the config's ``[storage] path``."""
    return Path(args.data_dir or config.storage.path)


def open_data_dir(args):
    """(engine, data dir) of the shop's existing data dir (``--config``, ``--data-dir``).
    It takes the data dir's lock: with a server running, its HTTP endpoint does the same."""
    from bandit import Engine
    from bandit.config.shop import load_config

    config = load_config(args.config)
    data_dir = data_dir_of(args, config)
    if not (data_dir / "events.sqlite3").exists():
        raise FileNotFoundError(2, "no event store in this data dir", str(data_dir))
    return Engine.open(config, data_dir), data_dir


def forget(args) -> int:
    from bandit.store.erasure import NOTE

    engine, data_dir = open_data_dir(args)  # a running server: POST /v1/forget
    try:
        erased = engine.forget(args.visitor)
    finally:
        engine.close()
    print(f"forgotten: {erased.decisions:,} decisions, {erased.outcomes:,} order ids and "
          f"{erased.activations:,} activations of that visitor blanked in {data_dir} (the "
          "model is left as it is: it holds sums over many visitors, not rows)")
    print(f"note: {NOTE}")
    return 0


def backup(args) -> int:
    from bandit.config.shop import load_config
    from bandit.store.backup import backup as copy

    data_dir = Path(args.data_dir or load_config(args.config).storage.path)
    done = copy(data_dir, args.dest, with_secrets=args.with_secrets)
    print(f"backed up {data_dir} to {done.path}: {done.decisions:,} decisions, {done.files} "
          f"files, {done.bytes / 2**20:,.1f} MB (consistent as of the moment it started; "
          f"restore: cartwheel serve --data-dir {done.path})")
    if done.left_out:
        print(f"not copied: {', '.join(done.left_out)} (secrets: keep them apart from the "
              f"backup; to restore with the same token and visitor hashes, put them into "
              f"{done.path} as 0600 files, or back up with --with-secrets)")
    return 0


def compact(args) -> int:
    from bandit import Engine
    from bandit.config.shop import load_config

    config = load_config(args.config)
    data_dir = data_dir_of(args, config)
    if config.retention_s is None:
        print("[storage] keep_days = 0: this shop keeps every decision; nothing to remove")
        return 0
    engine = Engine.open(config, data_dir)  # the lock: a running server compacts by itself
    try:
        removed = engine.compact()
        kept = engine.store.count("decisions")
    finally:
        engine.close()
    print(f"removed {removed:,} decisions older than {config.retention_s / 86400:g} days "
          f"(final and covered by every kept snapshot), with their outcomes; {kept:,} kept. "
          "The file keeps its size; SQLite reuses the freed pages for new decisions.")
    return 0
