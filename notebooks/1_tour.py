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
# # A tour of cartwheel: a simulated shop and the policies that learn in it
#
# cartwheel chooses one intervention (a banner, a discount, an upsell, nothing) per anonymous
# visitor and learns which pays for whom. Before any policy meets a visitor it can be judged
# in a **simulated shop**: a world whose true response to every intervention is known, so we
# can score a policy against the *oracle* that always picks the best action.
#
# The score is the **captured gain**: `(V_policy - V_uniform) / (V_oracle - V_uniform)`, the
# share of the oracle's gain over picking at random that the policy captured while learning.
# It is computed from the world's exact expected rewards of the actions chosen, so it has far
# less noise than the sampled orders the policy itself learns from.
#
# Sizes here are small so that the notebook runs in CI in seconds; raise `VISITORS` and
# `SEEDS` for conclusions (the README's table uses 200,000 visitors).

# %%
import matplotlib.pyplot as plt
import numpy as np

import simulator

VISITORS, SEEDS = 20_000, 3
SPECS = ["uniform", "egreedy", "linucb", "lints"]

world = simulator.make_world("default", seed=0)
batch = world.visitors(3, np.random.default_rng(0))
print("actions:", world.actions)
print("a visitor's context:", batch.contexts[0])

# %% [markdown]
# ## Learning curves with their uncertainty
#
# Each policy meets the same visitors and the same outcome draws for a given seed (common
# random numbers), so differences between policies are not luck of the draw. Across seeds
# the spread is real: the band is mean ± one standard deviation.

# %%
results = {spec: [] for spec in SPECS}
for seed in range(SEEDS):
    world = simulator.make_world("default", seed=seed)
    for spec in SPECS:
        policy = world.policy(spec, seed=seed)  # as the engine builds it for this shop
        results[spec].append(simulator.run(world, policy, visitors=VISITORS, seed=seed))

fig, ax = plt.subplots(figsize=(7, 4))
for spec, runs in results.items():
    curves = np.array([r.captured_gain_curve() for r in runs])
    x = runs[0].counts
    mean, sd = curves.mean(axis=0), curves.std(axis=0)
    ax.plot(x, mean, label=spec)
    ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
ax.axhline(0, color="grey", lw=0.5)
ax.set(xlabel="visitors", ylabel="captured gain (cumulative)", ylim=(-0.2, 1))
ax.legend()
plt.show()

# %% [markdown]
# ## The shop's KPIs
#
# Captured gain is what the learner is judged by; a shop reads conversion rate, average order
# value and profit per visitor. Error bars are one standard deviation over seeds.

# %%
kpis = {"conversion rate": "conversion_rate", "AOV": "aov",
        "profit / visitor": "profit_per_visitor"}
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
for ax, (label, attr) in zip(axes, kpis.items()):
    values = np.array([[getattr(r, attr) for r in results[s]] for s in SPECS])
    ax.bar(SPECS, values.mean(axis=1), yerr=values.std(axis=1), capsize=3)
    ax.set_title(label)
    ax.tick_params(axis="x", rotation=45)
plt.tight_layout()
plt.show()
gains = {s: np.mean([r.captured_gain for r in results[s]]) for s in SPECS}
print({s: f"{g:.1%}" for s, g in gains.items()})
assert gains["linucb"] > gains["uniform"]

# %% [markdown]
# The same comparison as a table is one call (`cartwheel simulate` on the command line):

# %%
from simulator.worlds.compare import compare

print(compare(["uniform", "linucb"], visitors=5_000, seeds=2).format())
