"""CPU-bound processes beside a benchmark, for measurements of what load does (a tight loop
each, stopped by pid when the block ends)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager


@contextmanager
def cpu_bound(n: int):
    """``n`` processes that keep a core busy each while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
