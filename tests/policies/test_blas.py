"""The first policy built limits BLAS to one thread unless the user chose a number
(policies.blas); measured in benchmarks/blas_threads.py."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = ("import policies; policies.make('linucb', n_actions=2, n_features=3); "
         "from threadpoolctl import threadpool_info; "
         "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))")


def _threads(**env) -> int:
    clean = {k: v for k, v in os.environ.items() if k not in (
        "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CARTWHEEL_BLAS_THREADS")}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def test_the_library_limits_blas_unless_the_user_chose():
    assert _threads() == 1
    assert _threads(OPENBLAS_NUM_THREADS="2") == 2  # the user's choice stands
    assert _threads(CARTWHEEL_BLAS_THREADS="2") == 2
