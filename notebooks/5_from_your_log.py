# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From a shop's own log to a policy in its config
#
# A shop that already runs cartwheel (or logged its own randomized decisions) has the best
# test bed there is: its own visitors. The path is
#
# 1. export the log (`cartwheel export --format jsonl|parquet|dsjson`), or bring one written
#    by another system in Vowpal Wabbit's DSJSON;
# 2. load it against the shop's config (the feature schema turns contexts into vectors);
# 3. estimate candidate policies: fixed ones with an off-policy estimator, learning ones by
#    *replaying* them through the log in order;
# 4. pick one with care for the intervals, and write its spec into the config.
#
# This notebook makes a log in the simulated default shop so that it runs anywhere; with a
# real log, start at step 2 with your file and your `cartwheel.toml`.

# %%
import tempfile
from importlib import resources
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import policies
import simulator
from bandit import load_config
from bandit.store.logread import LogChunks, read_log
from bandit.store.logwrite import write_log
from simulator.evaluation.replay import evaluate
from simulator.worlds.simulated_log import simulate_log

work = Path(tempfile.mkdtemp())
world = simulator.make_world("default", seed=0)
logger = policies.make("uniform", n_actions=world.n_actions, n_features=world.space.dim, seed=1)
logged = simulate_log(world, logger, 15_000, seed=2)
for fmt in ("jsonl", "parquet", "dsjson"):  # what `cartwheel export` writes
    write_log(logged, work / f"shop.{fmt}")
sorted(p.name for p in work.iterdir())

# %% [markdown]
# ## Load it against the shop's config
#
# The report counts what was used and lists bad rows by line number; nothing is silently
# dropped. A DSJSON log from another system loads the same way.

# %%
config = load_config()  # your shop: load_config("cartwheel.toml")
log, report = read_log(work / "shop.jsonl", config)
dsjson, _ = read_log(work / "shop.dsjson", config)
print(report)
print(f"{len(log):,} decisions; the DSJSON copy holds the same {len(dsjson):,}")
assert np.array_equal(log.actions, dsjson.actions)

# %% [markdown]
# ## Estimate the candidates
#
# On a uniformly logged log, learning policies are replayed with Li et al.'s method (a logged
# event counts when the policy would have chosen the same action). Every estimate has a 95%
# interval; prefer the candidate whose *lower* bound is best when two are close.
#
# `LogChunks` reads the file in chunks, again at each pass, and `evaluate` keeps running sums
# only: a log of any size is estimated in bounded memory (`log` above was read whole to look
# at; a shop's year of decisions should not be).

# %%
candidates = ["uniform", "fixed:action=free_shipping", "egreedy", "linucb", "lints"]
chunks = LogChunks(work / "shop.jsonl", config, chunk_rows=5_000)
results = evaluate(chunks, candidates, seed=0)
for r in results:
    print(f"{r.spec:28s} {r.kind:8s} {r.value:6.3f} [{r.lower:6.3f}, {r.upper:6.3f}] "
          f"ESS {r.ess:8,.0f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.errorbar(range(len(results)), [r.value for r in results],
            yerr=[[r.value - r.lower for r in results], [r.upper - r.value for r in results]],
            fmt="o", capsize=4)
ax.set_xticks(range(len(results)), [r.spec for r in results], rotation=20)
ax.set_ylabel(f"{config.objective.kind} per visitor")
plt.tight_layout()
plt.show()

# %% [markdown]
# With 15,000 uniformly logged visitors the intervals overlap: the learned policies may well
# be better, but this log cannot show it, and the lower-bound rule keeps the safe choice. That
# is the honest answer (log more, or run the candidate beside a holdout); on the README's
# 200,000-visitor logs the learners separate (`benchmarks/replay_ranking.py`).
#
# ## Write the choice into the config
#
# The spec string is the same in code, on the command line and in `[policy] spec`. The edited
# file is loaded back, which validates it exactly as `cartwheel serve` will.

# %%
best = max(results, key=lambda r: r.lower)
print(f"chosen: {best.spec} (lower bound {best.lower:.3f})")
# your shop: text = Path("cartwheel.toml").read_text()
text = resources.files("bandit.config").joinpath("default_shop.toml").read_text()
lines = [f'spec = "{best.spec}"' if line.startswith("spec = ") else line
         for line in text.splitlines()]
(work / "cartwheel.toml").write_text("\n".join(lines) + "\n")
print(load_config(work / "cartwheel.toml").policy_spec)
