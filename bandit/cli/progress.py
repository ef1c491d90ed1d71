"""A progress bar over a log's rows on the terminal: replay, segments --log and export share it."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from bandit.store.logread import count_rows


def log_progress(path, fmt, label: str = "reading log"):
    """A progress bar over a log's rows, on the terminal (a context manager; ``update(n)``)."""
    if not Path(path).exists():
        raise FileNotFoundError(2, "no such log", str(path))
    return tqdm(total=count_rows(path, fmt), unit="row", unit_scale=True, desc=label,
                file=sys.stderr, disable=None, leave=False)
