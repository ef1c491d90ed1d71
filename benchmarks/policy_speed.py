"""Policy speed: act+update throughput (K=10, d=40, batch 100) and single-visitor act latency.

Run: ``python benchmarks/policy_speed.py [--visitors 50000] [--policies linucb,lints,...]``.
The baseline row is a textbook LinUCB that inverts A_k per event; compare ratios within one run
(the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

# one BLAS thread: the matrices are small, and threads only fight over a shared machine's cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import policies  # noqa: E402
from policies.spec import split_specs  # noqa: E402

K, D, BATCH = 10, 40, 100


class NaiveLinUCB:
    """Textbook disjoint LinUCB: np.linalg.inv on every score, per-event loops (baseline)."""

    spec = "naive-linucb (inv per event)"

    def __init__(self):
        self.A = np.stack([np.eye(D)] * K)
        self.b = np.zeros((K, D))

    def act(self, X, mask):
        out = np.empty(len(X), dtype=int)
        for i, x in enumerate(X):
            s = [x @ np.linalg.inv(self.A[k]) @ self.b[k]
                 + np.sqrt(x @ np.linalg.inv(self.A[k]) @ x) if mask[i, k] else -np.inf
                 for k in range(K)]
            out[i] = int(np.argmax(s))
        return out, np.ones(len(X))

    def update(self, X, a, r, p, mask):
        for x, k, rew in zip(X, a, r):
            self.A[k] += np.outer(x, x)
            self.b[k] += rew * x


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.random((n, D - 1))])
    mask = rng.random((n, K)) < 0.8
    mask[:, 0] = True
    theta = rng.normal(0, 0.3, (K, D))
    return X, mask, theta, rng


def throughput(policy, visitors):
    X, mask, theta, rng = data(visitors)
    t0 = time.perf_counter()
    for s in range(0, visitors, BATCH):
        rows = slice(s, s + BATCH)
        a, p = policy.act(X[rows], mask[rows])
        r = (X[rows] @ theta.T)[np.arange(len(a)), a] + rng.normal(size=len(a))
        policy.update(X[rows], a, r, p, mask[rows])
    return visitors / (time.perf_counter() - t0)


def latency(policy, n=2000):
    """Single-visitor act and update latency percentiles (p50, p99 of each), in microseconds."""
    X, mask, theta, rng = data(n, seed=1)
    acts, updates = np.empty(n), np.empty(n)
    for i in range(n):
        x, m = X[i:i + 1], mask[i:i + 1]
        t0 = time.perf_counter()
        a, p = policy.act(x, m)
        t1 = time.perf_counter()
        policy.update(x, a, (x @ theta.T)[0, a] + rng.normal(size=1), p, m)
        t2 = time.perf_counter()
        acts[i], updates[i] = t1 - t0, t2 - t1
    return [float(np.percentile(t, q)) * 1e6 for t in (acts, updates) for q in (50, 99)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=50_000)
    parser.add_argument("--policies", default="uniform,egreedy,linucb,lints,bts,vw")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, python "
          f"{platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cores, BLAS threads "
          f"{os.environ['OPENBLAS_NUM_THREADS']}; K={K}, d={D}, batch {BATCH}")
    rows = []
    for spec in split_specs(args.policies):
        pol = policies.make(spec, n_actions=K, n_features=D, seed=0)
        visitors = args.visitors if not spec.startswith("vw") else min(args.visitors, 10_000)
        rows.append((spec, throughput(pol, visitors), *latency(pol)))
    if not args.no_baseline:
        base = NaiveLinUCB()
        rows.append((base.spec, throughput(base, 2000), *latency(base, 300)))
    ref = next((r[1] for r in rows if r[0].startswith("naive")), None)
    print(f"{'policy':30s} {'visitors/s':>11s} {'act p50 us':>10s} {'act p99 us':>10s} "
          f"{'upd p50 us':>10s} {'upd p99 us':>10s} {'x naive':>8s}")
    for spec, tput, a50, a99, u50, u99 in rows:
        ratio = f"{tput / ref:8.1f}" if ref else "       -"
        print(f"{spec:30s} {tput:11,.0f} {a50:10.1f} {a99:10.1f} {u50:10.1f} {u99:10.1f} {ratio}")


if __name__ == "__main__":
    main()
