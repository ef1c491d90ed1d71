"""Reading a log with a progress bar on the terminal: replay and segments share it."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from bandit.store.logread import count_rows, read_log


def log_progress(path, fmt, label: str = "reading log"):
    """A progress bar over a log's rows, on the terminal (a context manager; ``update(n)``)."""
    if not Path(path).exists():
        raise FileNotFoundError(2, "no such log", str(path))
    return tqdm(total=count_rows(path, fmt), unit="row", unit_scale=True, desc=label,
                file=sys.stderr, disable=None, leave=False)


def read_log_with_progress(path, config, fmt, unknown_keys, placement=None,
                           include_open=False):
    """read_log with a progress bar and ETA on the terminal (large logs take a while)."""
    with log_progress(path, fmt) as bar:
        return read_log(path, config, fmt, unknown_keys=unknown_keys, progress=bar.update,
                        placement=placement, include_open=include_open)
