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
# # Offline evaluation: judge a policy on a log before it meets a visitor
#
# Every decision cartwheel logs carries the **probability** it was drawn with. That is what
# makes a log evaluable: an off-policy estimator reweights the logged rewards to estimate what
# *another* policy would have earned on the same visitors. Here the log comes from a simulated
# shop, so each estimate can be compared with the truth.
#
# The estimators (`simulator.evaluation.estimators.METHODS`):
#
# * `ips`: inverse propensity scoring, unbiased, high variance;
# * `snips`: self-normalized IPS, a little biased, much steadier;
# * `dm`: the direct method, a reward model's prediction (biased when the model is wrong);
# * `dr`, `sndr`, `switch-dr`: doubly robust variants, a model plus an IPS correction.
#
# Each reports a 95% interval and the **effective sample size** (ESS): how many logged rows
# the estimate is really worth once reweighted. A small ESS means the log says little about
# that policy, whatever the point estimate.

# %%
import matplotlib.pyplot as plt
import numpy as np

import policies
import simulator
from policies.choice import greedy, uniform_over
from simulator.evaluation.estimators import METHODS, estimate
from simulator.worlds.simulated_log import simulate_log

N_LOG = 20_000
world = simulator.make_world("default", seed=0)
K, d = world.n_actions, world.space.dim
logger = policies.make("egreedy:epsilon=0.3", n_actions=K, n_features=d, seed=1)
simulator.run(world, logger, visitors=5_000, seed=1)  # a logger that has learned a little
log = simulate_log(world, logger, N_LOG, seed=2)
print(f"{len(log):,} logged decisions, smallest propensity {log.propensities.min():.3f}")

# %% [markdown]
# ## Candidates and their true values
#
# Two targets: a learned greedy policy (a linucb trained elsewhere) and "free shipping for
# everyone". Their true values come from the world's exact expected rewards over a large
# fresh population.

# %%
trained = policies.make("linucb", n_actions=K, n_features=d, seed=3)
simulator.run(world, trained, visitors=30_000, seed=3)
k = world.actions.index("free_shipping")
targets = {
    "linucb greedy": lambda X, mask: greedy(trained.ridge.means(X), mask),
    # free shipping where it is eligible, a uniform draw where it is not
    "free shipping": lambda X, mask: np.where(mask[:, [k]], np.eye(K)[k], uniform_over(mask)),
}
population = world.visitors(200_000, np.random.default_rng(7))
R = world.expected_rewards(population)
truth = {name: float((t(population.X, population.mask) * R).sum(axis=1).mean())
         for name, t in targets.items()}
truth

# %% [markdown]
# ## Every estimator, with intervals and effective sample sizes

# %%
rows = []
for name, target in targets.items():
    P = target(log.X, log.mask)
    for method in METHODS:
        e = estimate(method, log.rewards, log.actions, log.propensities, P, X=log.X)
        rows.append((name, method, e))
        print(f"{name:14s} {method:9s} {e.value:7.3f} [{e.lower:7.3f}, {e.upper:7.3f}] "
              f"ESS {e.ess:8,.0f}   truth {truth[name]:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=False)
for ax, name in zip(axes, targets):
    picked = [(m, e) for n, m, e in rows if n == name]
    ax.errorbar(range(len(picked)), [e.value for _, e in picked],
                yerr=[[e.value - e.lower for _, e in picked],
                      [e.upper - e.value for _, e in picked]], fmt="o", capsize=4)
    ax.axhline(truth[name], color="C3", ls="--", label="truth")
    ax.set_xticks(range(len(picked)), [m for m, _ in picked])
    ax.set_title(name)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Read it like this: an interval that covers the dashed truth is doing its job; a narrow one
# far from it (the direct method when its reward model is off) is the dangerous case.
# The greedy target agrees with the logger on fewer visitors than "free shipping" does, so
# its ESS is smaller and its intervals wider: the log knows less about it.
#
# On the command line the same judgement is `cartwheel replay LOG --policies ...`, which also
# replays *learning* policies through the log (see notebook 5).

# %%
covered = sum(e.lower <= truth[n] <= e.upper for n, m, e in rows if m in ("dr", "snips"))
print(f"dr and snips intervals covering the truth: {covered} of 4")
