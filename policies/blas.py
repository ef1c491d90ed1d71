"""One BLAS thread for the small matrices policies work on, without the user tuning anything.

A policy's linear algebra is on d x d blocks (d in the tens): threaded BLAS gains nothing
there, and on a machine whose cores are busy its threads spin-wait for each other, which made
the policies 7-15x slower in a notebook or a service unless the user had set
``OPENBLAS_NUM_THREADS=1`` before importing numpy (the CLI always limited them). So the first
policy built limits the process's BLAS to one thread (``threadpoolctl``), unless the user
chose a number themselves (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, or ``CARTWHEEL_BLAS_THREADS`` for cartwheel's own choice). Measured:
``benchmarks/blas_threads.py``.

>>> limit_blas_threads() in (True, False)
True
"""

from __future__ import annotations

import os

#: environment variables by which a user already chose a thread count
CHOSEN = ("CARTWHEEL_BLAS_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
          "MKL_NUM_THREADS")
_done = False


def limit_blas_threads() -> bool:
    """Limit BLAS to ``CARTWHEEL_BLAS_THREADS`` (default 1) threads, once per process, unless
    the user set a thread count in the environment; returns whether it did now."""
    global _done
    if _done:
        return False
    _done = True
    chosen = os.environ.get("CARTWHEEL_BLAS_THREADS")
    if chosen is None and any(os.environ.get(name) for name in CHOSEN):
        return False  # the user's own choice stands
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(chosen or 1), user_api="blas")
    return True
