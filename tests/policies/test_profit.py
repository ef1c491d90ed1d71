"""The profit policy in closed form: the pooled ridge is the multi-task ridge it claims to
be, the pooled logistic model's blocks are the Laplace updates it claims, the conversion and
order-value models are fitted on the rows each should see, the expected reward and its
bounds combine them per objective, and a scalar-only log teaches the same model as the
outcomes would."""

from __future__ import annotations

import numpy as np
import pytest

import policies
from policies._logistic import PooledLogistic, sigmoid
from policies._pooled import PooledRidge

K, D = 3, 4
SPEC = policies.ObjectiveSpec("profit", 0.4, cost_pct=(0.0, 0.1, 0.0),
                              cost_fixed=(0.0, 0.0, 5.0))


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, D - 1))])
    a = rng.integers(0, K, n)
    converted = rng.random(n) < 0.3
    values = np.where(converted, rng.lognormal(3.5 + 0.2 * X[:, 1], 0.4), 0.0)
    pct, fixed = SPEC.costs(K)
    costs = np.where(converted, pct[a] * values + fixed[a], 0.0)
    rewards = SPEC.value(converted, values, a)
    return X, a, converted, values, costs, rewards


def _design(X, a, scale):
    Z = np.zeros((len(X), D * (K + 1)))
    Z[:, :D] = X
    for i, k in enumerate(a):
        Z[i, D * (1 + k):D * (2 + k)] = scale * X[i]
    return Z


@pytest.mark.parametrize("scale", [0.3, 1.0])
def test_pooled_ridge_is_the_multi_task_ridge(scale):
    X, a, converted, *_ = _data()
    y = converted.astype(float)
    ridge = PooledRidge(K, D, lam=2.0, scale=scale)
    for s in range(0, len(X), 37):  # uneven chunks: rank-1 steps and refreshes both
        ridge.update(X[s:s + 37], a[s:s + 37], y[s:s + 37])
    # the same fit with unscaled deviations and their own penalty lam / scale**2
    Z1 = _design(X, a, 1.0)
    penalty = np.r_[np.full(D, 2.0), np.full(D * K, 2.0 / scale**2)]
    coef = np.linalg.solve(Z1.T @ Z1 + np.diag(penalty), Z1.T @ y)
    beta, delta = coef[:D], coef[D:].reshape(K, D)
    Xq = np.column_stack([np.ones(5), np.linspace(-1, 1, 5), np.zeros(5), np.ones(5)])
    np.testing.assert_allclose(ridge.means(Xq), Xq @ (beta[None, :] + delta).T, atol=1e-10)
    # widths: sqrt(z_a' A^-1 z_a) on the scaled design, for every action
    Z = _design(X, a, scale)
    Ainv = np.linalg.inv(Z.T @ Z + 2.0 * np.eye(D * (K + 1)))
    for k in range(K):
        Zq = _design(Xq, np.full(5, k), scale)
        np.testing.assert_allclose(ridge.widths(Xq)[:, k],
                                   np.sqrt(((Zq @ Ainv) * Zq).sum(axis=1)), atol=1e-10)
    np.testing.assert_array_equal(ridge.counts, np.bincount(a, minlength=K))


def test_the_models_see_their_rows_and_the_score_combines_them():
    X, a, converted, values, costs, rewards = _data()
    pol = policies.make("profit:conversion=linear,spread=0.8,value_spread=0.4,alpha=1.5,"
                        "warmup=0", n_actions=K, n_features=D, objective=SPEC)
    pol.update(X, a, rewards, np.full(len(X), 1 / K), converted=converted,
               order_values=values, costs=costs)
    # conversion: every row, target converted; value: converted rows, target log(value)
    conv, val = PooledRidge(K, D, 1.0, 0.8), PooledRidge(K, D, 1.0, 0.4)
    conv.update(X, a, converted.astype(float))
    val.update(X[converted], a[converted], np.log(values[converted]))
    for mine, ref in ((pol.conv, conv), (pol.value, val)):
        np.testing.assert_allclose(mine.ridge.theta, ref.ridge.theta, atol=1e-10)
        assert mine.ridge.counts.sum() == ref.ridge.counts.sum()
    assert pol.value.ridge.counts.sum() == converted.sum()
    # expected profit p * ((m - c) v - f), v = exp(mu + s^2 / 2), and the delta-method se
    Xq = X[:7]
    p = np.clip(conv.means(Xq), 0, 1)
    s = val.noise_sd()
    v = np.exp(val.means(Xq) + s * s / 2)
    pct, fixed = SPEC.costs(K)
    h, g = 0.4 - pct, (0.4 - pct) * v - fixed
    se = np.sqrt((g * conv.noise_sd() * conv.widths(Xq)) ** 2
                 + (p * h * v * s * val.widths(Xq)) ** 2)
    mean, got_se = pol.means_and_se(Xq)
    np.testing.assert_allclose(mean, p * g, rtol=1e-10)
    np.testing.assert_allclose(got_se, se, rtol=1e-10)
    np.testing.assert_allclose(pol.scores(Xq), p * g + 1.5 * se, rtol=1e-10)
    # the policy's choice (its most probable action; act() draws from the floor too)
    P = pol.probabilities(Xq, np.ones((7, K), bool))
    assert (P.argmax(axis=1) == (p * g + 1.5 * se).argmax(axis=1)).all()


@pytest.mark.parametrize("kind", ["conversion", "revenue"])
def test_conversion_and_revenue_objectives(kind):
    X, a, converted, values, costs, _ = _data(seed=2)
    spec = policies.ObjectiveSpec(kind, 1.0, (0.0,) * K, (0.0,) * K)
    rewards = spec.value(converted, values, a)
    pol = policies.make("profit:conversion=linear,warmup=0", n_actions=K, n_features=D,
                        objective=spec)
    pol.update(X, a, rewards, np.full(len(X), 1 / K), converted=converted,
               order_values=values, costs=np.zeros(len(X)))
    mean, se = pol.means_and_se(X[:5])
    p = np.clip(pol.conv.means(X[:5]), 0, 1)
    if kind == "conversion":
        np.testing.assert_allclose(mean, p)
        np.testing.assert_allclose(se, pol.conv.noise_sd() * pol.conv.widths(X[:5]))
    else:
        s = pol.value.noise_sd()
        np.testing.assert_allclose(mean, p * np.exp(pol.value.means(X[:5]) + s * s / 2))


@pytest.mark.parametrize("conversion", ["logistic", "linear"])
def test_a_scalar_only_log_teaches_the_same_model(conversion):
    """A log that kept only rewards: the outcome is read back through the objective."""
    X, a, converted, values, costs, rewards = _data(seed=3)
    spec = f"profit:conversion={conversion}"
    with_parts = policies.make(spec, n_actions=K, n_features=D, objective=SPEC)
    scalar = policies.make(spec, n_actions=K, n_features=D, objective=SPEC)
    with_parts.update(X, a, rewards, np.full(len(X), 1 / K), converted=converted,
                      order_values=values, costs=costs)
    scalar.update(X, a, rewards, np.full(len(X), 1 / K))
    for key, value in with_parts.get_state().items():
        if key.startswith("policy.") and value.dtype.kind == "f":
            np.testing.assert_allclose(scalar.get_state()[key], value, rtol=1e-9, atol=1e-9,
                                       err_msg=key)


def test_a_relabel_from_a_conversion_is_refused():
    pol = policies.make("profit:conversion=linear", n_actions=K, n_features=D, objective=SPEC)
    X = np.ones((1, D))
    with pytest.raises(ValueError, match="not converted"):
        pol.relabel(X, [0], [3.0], [0.0], [0.5])


@pytest.mark.parametrize("conversion", ["logistic", "linear",
                                        "logistic,bonus=ridge,value_spread=auto"])
def test_the_engine_teaches_profit_the_outcomes_of_its_log(tmp_path, conversion):
    """Online (the linear model: provisional rows, relabels when orders arrive, expiry; the
    logistic one: closed rows once every earlier decision has closed) the model is the one
    learned directly from the log's closed rows with their outcomes (the logistic one's in
    decision order): the parts reach it, and the value spreads the evidence chose online are
    the ones it chooses from the log."""
    from engine_helpers import Clock, shop

    import simulator
    from bandit import Engine
    from bandit.core.model import make_policy
    from simulator.worlds.online import drive

    config = shop(policy={"spec": f"profit:conversion={conversion}"}, holdout={"fraction": 0.1},
                  attribution={"window_s": 900})
    clock = Clock()
    engine = Engine.open(config, tmp_path, seed=0, clock=clock)
    visitors = 7000 if "auto" in conversion else 3000  # the spreads are first chosen at 50 sales
    drive(engine, simulator.make_world("default"), visitors=visitors, rate=1.0, seed=4)
    clock.t += 3600
    engine.expire()
    engine.flush()
    closed = list(engine.store.closed_events(learned_only=True))
    assert sum(e.converted for e in closed) >= 30
    if conversion.startswith("logistic"):
        closed.sort(key=lambda e: e.decision.seq)
    direct = make_policy(config, engine.space, engine.learner.action_ids, 0)
    X, actions, props, mask = engine.learner.batch([e.decision for e in closed])
    direct.update(X, actions, np.array([e.reward for e in closed]), props, mask,
                  converted=np.array([e.converted for e in closed]),
                  order_values=np.array([e.order_value for e in closed]),
                  costs=np.array([e.cost for e in closed]))
    mine, ref = engine.policy.get_state(), direct.get_state()
    parts = [k for k in ref if k.startswith(("policy.conv.", "policy.value."))
             and not k.endswith("rank1_steps")]  # how a ridge got there, not what it holds
    assert any(k.startswith("policy.conv.logistic.") for k in parts) == conversion.startswith(
        "logistic")
    if "auto" in conversion:  # the spreads were chosen, more than once, and moved
        assert ref["policy.value.pooled.rows_learned"][0] >= 100
        assert not np.all(ref["policy.value.pooled.scale"] == 0.3)
    for key in parts:
        np.testing.assert_allclose(mine[key], ref[key], rtol=1e-9, atol=1e-8, err_msg=key)
    assert direct.objective == engine.policy.objective and direct.objective.kind == "profit"
    engine.close()


def _laplace_blocks(Z, y, lam, block, keep=1.0):
    """The posterior ``N(m, H^-1)`` after each full block, from scipy's trust-region solver
    on the block's objective (an implementation independent of the policy's Newton loop)."""
    from scipy.optimize import minimize

    n_dim = Z.shape[1]
    m, H = np.zeros(n_dim), lam * np.eye(n_dim)
    for start in range(0, len(y) - block + 1, block):
        Zb, yb = Z[start:start + block], y[start:start + block]
        fade = keep ** block
        H0 = fade * H + (1 - fade) * lam * np.eye(n_dim)
        w = keep ** np.arange(block - 1, -1, -1.0)

        def objective(t, m0=m, H0=H0, Zb=Zb, yb=yb, w=w):
            eta = Zb @ t
            nll = w @ (np.logaddexp(0, eta) - yb * eta)
            return 0.5 * (t - m0) @ H0 @ (t - m0) + nll

        def grad(t, m0=m, H0=H0, Zb=Zb, yb=yb, w=w):
            return H0 @ (t - m0) - Zb.T @ (w * (yb - sigmoid(Zb @ t)))

        def hess(t, H0=H0, Zb=Zb, w=w):
            p = sigmoid(Zb @ t)
            return H0 + (Zb * (w * p * (1 - p))[:, None]).T @ Zb

        mode = minimize(objective, m, jac=grad, hess=hess, method="trust-exact",
                        options={"gtol": 1e-12}).x
        m, H = mode, hess(mode)
    return m, H


@pytest.mark.parametrize("halflife", [None, 60.0])
def test_the_logistic_model_is_the_blockwise_laplace_posterior(halflife):
    """Each full block moves the posterior to the mode of prior x block likelihood, with the
    precision at the mode (faded toward the prior when forgetting); rows of an unfinished
    block wait. Same result however the rows are split into calls."""
    X, a, converted, *_ = _data(n=290, seed=5)
    y = converted.astype(float)
    model = PooledLogistic(K, D, lam=3.0, scale=0.7, halflife=halflife, block=40)
    for s in range(0, len(X), 37):
        model.update(X[s:s + 37], a[s:s + 37], y[s:s + 37])
    keep = 1.0 if halflife is None else 0.5 ** (1 / halflife)
    m, H = _laplace_blocks(_design(X, a, 0.7), y, 3.0, 40, keep)
    np.testing.assert_allclose(model.m, m, atol=1e-8)
    np.testing.assert_allclose(model.H, H, atol=1e-8)
    np.testing.assert_allclose(model.S, np.linalg.inv(H), atol=1e-8)
    assert len(model.pending_y) == 290 - 7 * 40  # 10 rows wait for the 8th block
    # rows per action, faded like the evidence when forgetting
    np.testing.assert_allclose(model.counts, np.bincount(
        a, weights=keep ** np.arange(len(a) - 1, -1, -1.0), minlength=K), rtol=1e-12)
    Xq = X[:6]
    Zq = [_design(Xq, np.full(6, k), 0.7) for k in range(K)]
    np.testing.assert_allclose(model.logits(Xq), np.stack([z @ m for z in Zq], 1), atol=1e-7)
    S = np.linalg.inv(H)
    np.testing.assert_allclose(model.logit_sds(Xq), np.stack(
        [np.sqrt(((z @ S) * z).sum(1)) for z in Zq], 1), atol=1e-7)


def test_logistic_scores_are_the_bounds_through_the_links():
    X, a, converted, values, costs, _ = _data(seed=6)
    # action 2's fixed cost outweighs most orders: its value part is a loss, so its bound
    # takes the lower bound of p
    spec = policies.ObjectiveSpec("profit", 0.4, cost_pct=(0.0, 0.1, 0.0),
                                  cost_fixed=(0.0, 0.0, 30.0))
    pol = policies.make("profit:conversion=logistic,alpha=1.3,warmup=0,block=50", n_actions=K,
                        n_features=D, objective=spec)
    pol.update(X, a, spec.value(converted, values, a), np.full(len(X), 1 / K),
               converted=converted, order_values=values, costs=costs)
    Xq = X[:9]
    l, sd_l = pol.conv.logits(Xq), pol.conv.logit_sds(Xq)
    s = pol.value.noise_sd()
    mu, sd_mu = pol.value.means(Xq), s * pol.value.widths(Xq)
    pct, fixed = spec.costs(K)
    g_hi = (0.4 - pct) * np.exp(mu + 1.3 * sd_mu + s * s / 2) - fixed
    assert (g_hi[:, 2] < 0).any() and (g_hi[:, :2] > 0).all()
    expected = np.where(g_hi > 0, sigmoid(l + 1.3 * sd_l), sigmoid(l - 1.3 * sd_l)) * g_hi
    np.testing.assert_allclose(pol.scores(Xq), expected, rtol=1e-12)
    # the estimate (no bonus) and what pacing prices use the posterior mean
    p, v = sigmoid(l), np.exp(mu + s * s / 2)
    np.testing.assert_allclose(pol.means_and_se(Xq)[0], p * ((0.4 - pct) * v - fixed))
    np.testing.assert_allclose(pol.expected_costs(Xq), p * (pct * v + fixed))


def test_the_ridge_bonus_is_the_linear_models_error_around_the_logistic_means():
    """``bonus=ridge``: the logistic model's expected reward plus alpha delta-method standard
    errors of a linear probability model fitted to the same rows."""
    X, a, converted, values, costs, rewards = _data(seed=7)
    pol = policies.make("profit:conversion=logistic,bonus=ridge,alpha=0.8,warmup=0,block=50",
                        n_actions=K, n_features=D, objective=SPEC)
    pol.update(X, a, rewards, np.full(len(X), 1 / K), converted=converted,
               order_values=values, costs=costs)
    ridge = PooledRidge(K, D, 1.0, 1.0)
    ridge.update(X, a, converted.astype(float))
    np.testing.assert_allclose(pol.conv_ridge.ridge.theta, ridge.ridge.theta, atol=1e-10)
    Xq = X[:8]
    p = sigmoid(pol.conv.logits(Xq))
    s = pol.value.noise_sd()
    v = np.exp(pol.value.means(Xq) + s * s / 2)
    pct, fixed = SPEC.costs(K)
    h = 0.4 - pct
    g = h * v - fixed
    se = np.sqrt((g * ridge.noise_sd() * ridge.widths(Xq)) ** 2
                 + (np.clip(ridge.means(Xq), 0, 1) * h * v * s * pol.value.widths(Xq)) ** 2)
    np.testing.assert_allclose(pol.scores(Xq), p * g + 0.8 * se, rtol=1e-10)


@pytest.mark.parametrize("key, cut", [("policy.conv.logistic.H", np.s_[:-1]),
                                      ("policy.conv.logistic.pending_X", np.s_[:, :-1]),
                                      ("policy.value.ridge.A", np.s_[:, :-1])])
def test_a_state_whose_arrays_do_not_fit_is_refused(key, cut):
    """A state with the right sizes in its meta but an array of another shape (a damaged or
    hand-edited snapshot) is refused by name, not loaded into a model that would fail later;
    the buffered rows of the logistic model may be any number, not any width."""
    X, a, converted, values, costs, rewards = _data(n=110)
    pol = policies.make("profit:conversion=logistic,block=30", n_actions=K, n_features=D)
    pol.update(X, a, rewards, np.full(len(a), 1 / K), converted=converted,
               order_values=values, costs=costs)
    state = pol.get_state()
    twin = policies.make("profit:conversion=logistic,block=30", n_actions=K, n_features=D)
    twin.set_state({**state, "policy.conv.logistic.pending_X": state[
        "policy.conv.logistic.pending_X"][:3], "policy.conv.logistic.pending_actions": state[
        "policy.conv.logistic.pending_actions"][:3], "policy.conv.logistic.pending_y": state[
        "policy.conv.logistic.pending_y"][:3]})
    assert len(twin.conv.pending_y) == 3
    with pytest.raises(ValueError, match=f"state {key.split('.')[-1]} has shape"):
        twin.set_state({**state, key: state[key][cut]})


@pytest.mark.parametrize("spec, message", [
    ("profit:bonus=ridge", "add conversion=logistic"),
    ("profit:conversion=linear,block=50", "add conversion=logistic"),
    ("profit:conversion=logistic,bonus=thompson", "bonus must be posterior or ridge"),
    ("profit:conversion=probit", "conversion must be one of")])
def test_options_that_would_do_nothing_are_refused(spec, message):
    """An option of the logistic model on the linear one would be silently ignored: refused
    with what to change instead."""
    with pytest.raises(ValueError, match=message):
        policies.make(spec, n_actions=K, n_features=D)


@pytest.mark.parametrize("uplift", [0.0, 0.7])
def test_value_spread_auto_is_chosen_from_the_order_values(uplift):
    """``value_spread=auto``: the value model is the evidence-fitted pooled ridge of the sold
    rows' log order values (same statistics, 1e-10), so each action's spread follows how far
    its order values differ: none -> near one model for all (every spread < 0.05), an upsell
    (action 2) that doubles the order (log + 0.7) -> its spread loose (>= 0.1), the others'
    still < 0.05 (1,500 rows, seed 5)."""
    X, a, converted, values, costs, rewards = _data(n=1500, seed=5)
    values = np.where(converted, values * np.exp(uplift * (a == 2)), 0.0)
    costs = np.where(converted, SPEC.costs(K)[0][a] * values + SPEC.costs(K)[1][a], 0.0)
    rewards = SPEC.value(converted, values, a)
    pol = policies.make("profit:value_spread=auto", n_actions=K, n_features=D, objective=SPEC)
    for part in np.array_split(np.arange(len(a)), 9):
        pol.update(X[part], a[part], rewards[part], np.full(len(part), 1 / K),
                   converted=converted[part], order_values=values[part], costs=costs[part])
    ref = PooledRidge(K, D, 1.0, 0.3, fit_scale=True)
    ref.update(X[converted], a[converted], np.log(values[converted]))
    np.testing.assert_array_equal(pol.value.scale, ref.scale)
    others = np.delete(ref.scale, 2)
    assert others.max() < 0.05 and (ref.scale[2] >= 0.1) == (uplift > 0), ref.scale
    np.testing.assert_allclose(pol.value.ridge.theta, ref.ridge.theta, atol=1e-10)


@pytest.mark.parametrize("spread", ["wide", 0, -0.5])
def test_a_value_spread_that_is_neither_a_number_nor_auto_is_refused(spread):
    with pytest.raises(ValueError, match="value_spread must be a number > 0 or auto"):
        policies.make(f"profit:value_spread={spread}", n_actions=K, n_features=D)
