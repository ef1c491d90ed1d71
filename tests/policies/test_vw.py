"""Vowpal Wabbit policies: resumable learning, interactions, masks, costs, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import policies

EXPLORATIONS = ("squarecb", "epsilon", "softmax", "bag", "cover", "regcb", "regcbopt")


def events(n, seed=0, d=4, K=3):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, d - 1))])
    a = rng.integers(0, K, n)
    r = np.where(a == (X[:, 1] > 0).astype(int), 10.0, 0.0) + rng.normal(size=n)
    return X, a, r, np.full(n, 1 / K)


def vw(exploration, seed=0, **kw):
    spec = policies.format_spec("vw", {"exploration": exploration, **kw})
    return policies.make(spec, n_actions=3, n_features=4, seed=seed)


@pytest.mark.parametrize("exploration", ["squarecb", "epsilon", "softmax", "regcb", "regcbopt"])
def test_saved_model_resumes_learning_exactly(exploration):
    X, a, r, p = events(600)
    whole = vw(exploration)
    whole.update(X, a, r, p)
    first = vw(exploration)
    first.update(X[:400], a[:400], r[:400], p[:400])
    resumed = vw(exploration, seed=7)
    resumed.set_state(first.get_state())
    resumed.update(X[400:], a[400:], r[400:], p[400:])
    test = events(200, seed=1)[0]
    np.testing.assert_allclose(resumed.probabilities(test), whole.probabilities(test),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("exploration", ["bag", "cover"])
def test_bag_and_cover_match_right_after_loading(exploration):
    X, a, r, p = events(400)
    pol = vw(exploration)
    pol.update(X, a, r, p)
    twin = vw(exploration, seed=3)
    twin.set_state(pol.get_state())
    test = events(100, seed=2)[0]
    np.testing.assert_allclose(twin.probabilities(test), pol.probabilities(test), atol=1e-6)
    assert not pol.lossless_learning


def _personalization(interactions: bool) -> float:
    # the best action depends on the sign of x1; the action namespace carries only the action id
    pol = policies.make(f"vw:interactions={interactions},exploration=epsilon,epsilon=0.2",
                        n_actions=2, n_features=2, seed=0, feature_names=("bias", "x1"),
                        action_ids=("left", "right"))
    rng = np.random.default_rng(4)
    for _ in range(30):
        X = np.column_stack([np.ones(100), rng.normal(size=100)])
        a, prob = pol.act(X)
        best = (X[:, 1] > 0).astype(int)
        pol.update(X, a, np.where(a == best, 1.0, 0.0) + 0.1 * rng.normal(size=100), prob)
    x1 = rng.normal(size=1000)
    X = np.column_stack([np.ones(1000), np.where(np.abs(x1) < 0.5, np.sign(x1) * 0.5, x1)])
    greedy = pol.probabilities(X).argmax(axis=1)
    return float((greedy == (X[:, 1] > 0)).mean())


def test_action_features_need_interactions_to_personalize():
    # seeded; scored on visitors with |x1| >= 0.5. Without -q sa the greedy action is the same
    # for everyone (~50% right); with it VW learns which visitor each action suits
    without, with_ = _personalization(False), _personalization(True)
    assert without < 0.65 and with_ > 0.9, (without, with_)


def test_masked_actions_are_left_out_and_mapped_back():
    pol = vw("squarecb")
    X, a, r, p = events(300)
    pol.update(X, a, r, p)
    mask = np.array([[True, False, True]] * 5)
    P = pol.probabilities(X[:5], mask)
    assert (P[:, 1] == 0).all() and np.allclose(P.sum(axis=1), 1)
    # an update under a mask logs only the eligible actions
    pol.update(X[:5], np.array([0, 2, 0, 2, 0]), np.ones(5), np.full(5, 0.5), mask)


def test_reward_becomes_cost_with_the_right_sign():
    pol = policies.make("vw:exploration=epsilon,epsilon=0.1", n_actions=2, n_features=1, seed=0)
    X = np.ones((400, 1))
    a = np.tile([0, 1], 200)
    pol.update(X, a, np.where(a == 1, 25.0, 0.0), np.full(400, 0.5))
    assert pol.probabilities(X[:1])[0, 1] > 0.9


def test_unknown_exploration_and_missing_package(monkeypatch):
    with pytest.raises(ValueError, match="exploration must be one of"):
        vw("thompson")
    with pytest.raises(ValueError, match="cb_type must be one of"):
        vw("squarecb", cb_type="xyz")
    with pytest.raises(ValueError, match="supports cb_type"):
        vw("squarecb", cb_type="dr")
    assert vw("epsilon", cb_type="dr").probabilities(np.ones((1, 4))).shape == (1, 3)
    monkeypatch.setitem(sys.modules, "vowpalwabbit", None)
    with pytest.raises(ImportError, match=r"cartwheel\[vw\]"):
        vw("squarecb")


def test_lambda_parameter_is_spelled_plainly():
    pol = policies.make("vw:exploration=softmax,lambda=3", n_actions=2, n_features=1)
    assert "--lambda 3" in pol.args and pol.spec == "vw:exploration=softmax,lambda=3"
    assert "lambda" in policies.accepted_params(policies.REGISTRY["vw"])


def test_new_actions_are_picked_up_by_adf():
    pol = policies.make("vw", n_actions=2, n_features=2, seed=0, action_ids=("a", "b"),
                        feature_names=("bias", "x"))
    X = np.column_stack([np.ones(50), np.linspace(-1, 1, 50)])
    pol.update(X, np.zeros(50, int), np.ones(50), np.full(50, 0.5))
    pol.add_actions(1, action_ids=["c"])
    P = pol.probabilities(X[:3])
    assert P.shape == (3, 3) and (P[:, 2] > 0).all()


def test_a_ones_column_is_vw_constant_whatever_its_name():
    # a research matrix with an unnamed column of ones learns exactly as without it (VW has
    # its own constant); a column that stops being constant is VW's from then on
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    ones = np.column_stack([np.ones(200), X])
    actions = rng.integers(0, 3, 200)
    rewards = (X[:, 0] > 0).astype(float) * (actions == 1)
    p, mask = np.full(200, 1 / 3), np.ones((200, 3), bool)
    plain = policies.make("vw:floor=0", n_actions=3, n_features=3, seed=1,
                          feature_names=("a", "b", "c"))
    padded = policies.make("vw:floor=0", n_actions=3, n_features=4, seed=1,
                           feature_names=("one", "a", "b", "c"))  # not named "bias"
    plain.update(X, actions, rewards, p, mask)
    padded.update(ones, actions, rewards, p, mask)
    assert padded._shared(ones[0]) == plain._shared(X[0])  # the same line reaches VW
    test = rng.normal(size=(20, 3))
    np.testing.assert_allclose(padded.probabilities(np.column_stack([np.ones(20), test])),
                               plain.probabilities(test), atol=1e-12)
    # restart-exact: the constant columns are part of the state
    twin = policies.make("vw:floor=0", n_actions=3, n_features=4, seed=1,
                         feature_names=("one", "a", "b", "c"))
    twin.set_state(padded.get_state())
    assert twin._constant.tolist() == [True, False, False, False]
    varied = np.column_stack([rng.choice([0.0, 1.0], 50), rng.normal(size=(50, 3))])
    twin.update(varied, rng.integers(0, 3, 50), np.zeros(50), np.full(50, 1 / 3),
                np.ones((50, 3), bool))
    assert twin._constant.tolist() == [False, False, False, False]


def test_reward_scale_is_the_mean_of_the_first_nonzero_rewards_and_is_saved():
    from policies.vw import SCALE_REWARDS

    pol = vw("squarecb")
    X, a, _, p = events(SCALE_REWARDS + 10)
    pol.update(X[:3], a[:3], np.zeros(3), p[:3])
    assert pol.reward_scale is None  # every cost so far is 1 whatever the scale
    pol.update(X[3:6], a[3:6], np.array([0.0, -24.5, 3.0]), p[3:6])
    assert pol.reward_scale == pytest.approx(13.75)  # the mean size of 24.5 and 3
    twin = vw("squarecb")
    twin.set_state(pol.get_state())
    rest = np.r_[np.full(SCALE_REWARDS - 2, 1.0), 500.0, np.zeros(5)]
    for model in (pol, twin):  # the running mean continues after a restart
        model.update(X[6:], a[6:], rest, p[6:])
    expected = (27.5 + SCALE_REWARDS - 2) / SCALE_REWARDS  # 500 came after the 20th: ignored
    assert pol.reward_scale == pytest.approx(expected) and twin.reward_scale == pol.reward_scale
    fixed = vw("squarecb", reward_scale=10.0)
    fixed.update(X[:6], a[:6], np.full(6, 3.0), p[:6])
    assert fixed.reward_scale == 10.0


PROFIT = policies.ObjectiveSpec("profit", 0.3, (0,) * 3, (0,) * 3)


def test_money_rewards_get_half_the_mean_reward_as_scale_a_smaller_rate_and_the_1pct_floor():
    X, a, _, p = events(6)
    rewards = np.array([0.0, 30.0, 0.0, 10.0, 0.0, 0.0])
    for kind, share, rate, floor in (("profit", 0.5, 0.1, 0.01), ("revenue", 0.5, 0.1, 0.01),
                                     ("conversion", 1.0, 0.5, 0.005), (None, 1.0, 0.5, 0.005)):
        objective = None if kind is None else policies.ObjectiveSpec(kind, 0.3, (0,) * 3,
                                                                      (0,) * 3)
        pol = policies.make("vw", n_actions=3, n_features=4, seed=0, objective=objective)
        assert f"-l {rate} " in pol.args, (kind, pol.args)
        assert pol.floor_for(8) == pytest.approx(floor), kind  # 8 eligible: the per-action cap
        assert pol.floor_for(40) == pytest.approx(2 * floor / 10), kind  # the budget
        pol.update(X, a, rewards, p)
        assert pol.reward_scale == pytest.approx(share * 20.0), kind
    tuned = policies.make("vw:learning_rate=0.3", n_actions=3, n_features=4, objective=PROFIT)
    assert "-l 0.3 " in tuned.args


def learned_costs(pol, X, a, rewards, p):
    """The costs VW is really taught: the labels of the examples it learns (a recorder
    around the real workspace's learn, which still learns)."""
    labels, learn = [], pol.ws.learn

    def recording(lines):
        labels.extend(float(line.split(":")[1]) for line in lines if line[:2] == "0:")
        return learn(lines)

    pol.ws.learn = recording
    pol.update(X, a, rewards, p)
    return labels


def test_money_costs_start_at_0_for_no_sale_and_01_costs_at_1():
    X, a, _, p = events(4)
    rewards = np.array([0.0, 30.0, 0.0, 10.0])
    money = policies.make("vw", n_actions=3, n_features=4, seed=0, objective=PROFIT)
    # scale: half the running mean size (15 after the first sale, 10 after the second)
    assert learned_costs(money, X, a, rewards, p) == [0.0, -2.0, 0.0, -1.0]
    assert "--cb_min_cost -5.0 --cb_max_cost 0.5" in policies.make(
        "vw:exploration=regcb", n_actions=3, n_features=4, objective=PROFIT).args
    zero_one = policies.make("vw", n_actions=3, n_features=4, seed=0)
    assert learned_costs(zero_one, X, a, np.array([0.0, 1.0, 0.0, 1.0]), p) == [1, 0, 1, 0]
    assert "--cb_min_cost 0.0 --cb_max_cost 1.0" in vw("regcb").args


def test_a_model_that_learned_other_costs_is_relearned_not_mixed():
    X, a, r, p = events(20)
    conversion = vw("squarecb")
    conversion.update(X, a, (r > 5).astype(float), p)
    money = policies.make("vw", n_actions=3, n_features=4, objective=PROFIT)
    with pytest.raises(ValueError, match="costs 1 - reward / scale.*0 - reward / scale"):
        money.set_state(conversion.get_state())
    # a state saved before the offset was kept learned 1 - reward / scale
    earlier = conversion.get_state()
    del earlier["policy.cost_offset"]
    with pytest.raises(ValueError, match="re-learned"):
        money.set_state(earlier)
    vw("squarecb").set_state(earlier)  # the same convention: it continues


def test_an_old_state_is_refused_so_the_model_is_relearned():
    state = vw("squarecb").get_state()
    del state["policy.reward_scale"]
    with pytest.raises(ValueError, match="re-learned"):
        vw("squarecb").set_state(state)


def test_without_a_floor_it_is_direct_vowpal_wabbit_on_the_bakeoff():
    # the paper's protocol on iris: the wrapper (costs 1 - reward, VW's learning rate) and VW
    # fed the same examples by hand make the same decisions on every row
    from simulator.evaluation import bakeoff

    data = bakeoff.load("iris")
    for seed in range(2):
        wrapped = bakeoff.CartwheelLearner("vw:floor=0", data, seed=seed)
        direct = bakeoff.VowpalWabbitLearner("--squarecb", data, seed=seed)
        assert (bakeoff.progressive_reward(wrapped, data, seed=seed, batch=1)
                == bakeoff.progressive_reward(direct, data, seed=seed, batch=1))
