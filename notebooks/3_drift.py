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
# # When tastes drift: forgetting, and how to choose a halflife
#
# A shop's visitors change: a competitor's sale makes discounts matter more, a banner wears
# out. A policy whose statistics are sums over *all* past visitors adapts ever more slowly,
# because new evidence is a shrinking share of the total. **Forgetting** (`halflife=H`) gives
# a learned row half its weight after `H` more rows, so the model always reflects roughly the
# last few `H` visitors.
#
# The trade-off: a short halflife adapts fast but learns from fewer rows, so it is noisier
# when nothing changes; a long one is steady but slow. The `drift` world makes this visible:
# its response changes over `RAMP` visitors starting at `CHANGE`. Small sizes for CI; the
# README's table (`benchmarks/drift_adaptation.py`) runs 300,000 visitors.

# %%
import matplotlib.pyplot as plt
import numpy as np

import simulator

CHANGE, RAMP, VISITORS, SEEDS, WINDOW = 30_000, 5_000, 60_000, 2, 5_000
SPECS = ["linucb", "linucb:halflife=5000", "linucb:halflife=20000"]

curves = {spec: [] for spec in SPECS}
for seed in range(SEEDS):
    world = simulator.make_world("drift", seed=seed, start=CHANGE, ramp=RAMP)
    for spec in SPECS:
        policy = world.policy(spec, seed=seed)  # as the engine builds it for this shop
        result = simulator.run(world, policy, visitors=VISITORS, seed=seed, batch_size=500)
        # captured gain in each window, against the oracle *of that window*
        curves[spec].append([result.captured_gain_between(s, s + WINDOW)
                             for s in range(0, VISITORS, WINDOW)])

# %%
x = np.arange(0, VISITORS, WINDOW) + WINDOW / 2
fig, ax = plt.subplots(figsize=(7, 4))
for spec, runs in curves.items():
    runs = np.array(runs)
    ax.plot(x, runs.mean(axis=0), marker="o", label=spec)
    ax.fill_between(x, runs.min(axis=0), runs.max(axis=0), alpha=0.15)
ax.axvspan(CHANGE, CHANGE + RAMP, color="grey", alpha=0.2, label="the change")
ax.set(xlabel="visitors", ylabel=f"captured gain per {WINDOW:,} visitors")
ax.legend()
plt.show()

# %% [markdown]
# ## Choosing a halflife
#
# * After the change, the policy without forgetting keeps acting on the old tastes for a
#   long time; the forgetting ones recover within a few halflives.
# * Before it, the short halflife pays for its agility: it learns from fewer rows.
# * A rule of thumb: a halflife of a few times the number of visitors it takes to learn
#   the shop at all (here: tens of thousands), and shorter only if tastes change faster than
#   that. Judge candidates on your own log with `cartwheel replay` (notebook 5): replay
#   learns through the log in order, so a drifting log favours the right halflife.

# %%
for spec, runs in curves.items():
    runs = np.array(runs)
    before = runs[:, : CHANGE // WINDOW].mean()
    after = runs[:, (CHANGE + RAMP) // WINDOW:].mean()
    print(f"{spec:24s} before {before:6.1%}   after {after:6.1%}")
