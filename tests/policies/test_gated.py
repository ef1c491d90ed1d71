"""The promotion gate's mechanics (policies.gated): mixture propensities, assignment, notes,
promotion and retirement by the bound, manual mode, pinning, rollback, state."""

from __future__ import annotations

import numpy as np
import pytest

import policies


def shop_rows(rng, n=100):
    return np.column_stack([np.ones(n), rng.normal(size=n)])


def feed(gate, rng, rows, rates, value=50.0, batch=100):
    """Act and learn ``rows`` rows where action k converts with ``rates[k]`` (order value
    ``value``); returns the actions drawn."""
    drawn = []
    for _ in range(rows // batch):
        X = shop_rows(rng, batch)
        actions, p = gate.act(X)
        converted = rng.random(batch) < np.asarray(rates)[actions]
        gate.update(X, actions, np.where(converted, value, 0.0), p)
        drawn.append(actions)
    return np.concatenate(drawn)


def test_logged_propensity_is_the_mixture_and_assignment_follows_the_share():
    gate = policies.gated("fixed:action=0", ["fixed:action=2"], n_actions=3, n_features=2,
                          seed=1, share=0.3)
    X = shop_rows(np.random.default_rng(0), 20_000)
    mixture = gate.probabilities(X)
    expected = 0.7 * np.array([0.99, 0.005, 0.005]) + 0.3 * np.array([0.005, 0.005, 0.99])
    np.testing.assert_allclose(mixture, np.tile(expected, (len(X), 1)), atol=1e-12)
    actions, p = gate.act(X)
    np.testing.assert_allclose(p, expected[actions], atol=1e-12)
    # the notes say who acted: about 30% the challenger (binomial sd 0.3% at 20,000 rows)
    acted = gate.last_notes[:, 0]
    assert abs(acted.mean() - 0.3) < 0.012
    # and each policy's probability of the drawn action
    np.testing.assert_allclose(gate.last_notes[:, 2], np.array([0.99, 0.005, 0.005])[actions])
    # the actions follow the mixture (0.6945, 0.005, 0.3005): within 4 sd
    freq = np.bincount(actions, minlength=3) / len(actions)
    assert np.all(np.abs(freq - expected) < 4 * np.sqrt(expected * (1 - expected) / len(X)))


def test_a_much_better_challenger_is_promoted_and_a_worse_one_retired():
    rng = np.random.default_rng(3)
    gate = policies.gated("fixed:action=0", ["fixed:action=1", "fixed:action=2"],
                          n_actions=3, n_features=2, seed=3, share=0.2)
    feed(gate, rng, 60_000, rates=[0.05, 0.12, 0.01])
    assert [p.to_spec for p in gate.promotions] == ["fixed:action=1"]
    assert gate.promotions[0].bound > 0
    retired = {r.spec: r.reason for r in gate.retired}
    assert retired == {"fixed:action=0": "replaced", "fixed:action=2": "bound"}
    assert gate.shares().tolist() == [0.0, 1.0, 0.0]  # nobody left to measure
    assert gate.roles == ["retired", "champion", "retired"]


def test_manual_mode_marks_ready_and_waits_for_a_person():
    rng = np.random.default_rng(4)
    gate = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2,
                          seed=4, share=0.2, mode="manual")
    feed(gate, rng, 40_000, rates=[0.05, 0.12, 0.01])
    assert gate.promotions == [] and gate.ready == [1]
    assert gate.status()[1]["ready"] is True
    gate.promote("fixed:action=1")
    assert gate.promotions[-1].by == "person" and gate.champion == 1


def test_a_pinned_champion_stays_and_unpinning_lets_the_gate_promote():
    rng = np.random.default_rng(5)
    gate = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2,
                          seed=5, share=0.2)
    gate.pin()
    feed(gate, rng, 40_000, rates=[0.05, 0.12, 0.01])
    assert gate.promotions == [] and gate.champion == 0
    gate.unpin()
    feed(gate, rng, 200, rates=[0.05, 0.12, 0.01])
    assert gate.champion == 1


def test_the_previous_champion_comes_back_when_the_new_one_falls_behind():
    rng = np.random.default_rng(6)
    gate = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2,
                          seed=6, share=0.2)
    feed(gate, rng, 30_000, rates=[0.05, 0.12, 0.01])
    assert gate.champion == 1
    # tastes turn: the new champion's action now converts far less than the old one's
    feed(gate, rng, 300_000, rates=[0.30, 0.01, 0.01])
    assert [r.to_spec for r in gate.rollbacks] == ["fixed:action=0"]
    assert gate.champion == 0 and gate.roles[1] == "retired"
    with pytest.raises(ValueError, match="no promotion to roll back"):
        gate.roll_back("again")


def test_shadow_mode_measures_but_never_acts_nor_promotes():
    rng = np.random.default_rng(7)
    gate = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2,
                          seed=7, share=0.0)
    drawn = feed(gate, rng, 20_000, rates=[0.05, 0.12, 0.01])
    assert gate.promotions == [] and gate.evidence.acted[1] == 0
    assert np.mean(drawn == 1) < 0.01  # only the champion's floor shows it
    assert gate.status()[1]["estimate"] > 0  # measured all the same


def test_state_round_trip_resumes_exactly():
    rng = np.random.default_rng(8)
    kw = dict(n_actions=3, n_features=2, share=0.2)
    a = policies.gated("linucb", ["egreedy"], seed=8, **kw)
    feed(a, rng, 5_000, rates=[0.05, 0.08, 0.02])
    b = policies.gated("linucb", ["egreedy"], seed=99, **kw)
    b.set_state(a.get_state())
    X = shop_rows(np.random.default_rng(1), 500)
    np.testing.assert_array_equal(a.act(X)[0], b.act(X)[0])
    np.testing.assert_array_equal(a.last_notes, b.last_notes)
    assert a.status() == b.status()
    with pytest.raises(ValueError, match="gate state is for"):
        policies.gated("linucb", ["lints"], seed=8, **kw).set_state(a.get_state())


def test_notes_passed_back_explicitly_count_like_those_of_the_last_act():
    rng = np.random.default_rng(9)
    a = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2, seed=9)
    b = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2, seed=9)
    X = shop_rows(rng, 300)
    actions, p = a.act(X)
    notes = a.last_notes.copy()
    b.act(X)
    b.act(shop_rows(rng, 7))  # another decision in between: the engine stores notes per row
    r = np.where(rng.random(300) < 0.1, 40.0, 0.0)
    a.update(X, actions, r, p)
    b.update(X, actions, r, p, decision_notes=notes)
    assert a.evidence.rows == b.evidence.rows == 300
    np.testing.assert_allclose(a.evidence.products, b.evidence.products)
    # rows without notes (NaN: decided before the gate) are learned, not compared
    b.update(X[:5], actions[:5], r[:5], p[:5], decision_notes=np.full((5, 6), np.nan))
    assert b.evidence.rows == 300 and b.n_updates == 305


@pytest.mark.parametrize("bad, match", [
    (dict(share=1.0), "share"), (dict(confidence=0.3), "confidence"),
    (dict(min_effect=-1), "min_effect"), (dict(mode="sometimes"), "mode")])
def test_settings_are_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        policies.gated("linucb", ["uniform"], n_actions=2, n_features=1, **bad)


def test_each_policy_appears_once():
    with pytest.raises(ValueError, match="once"):
        policies.gated("linucb", ["linucb"], n_actions=2, n_features=1)


def test_in_shadow_mode_a_persons_promotion_is_still_watched_by_the_bound():
    rng = np.random.default_rng(10)
    gate = policies.gated("fixed:action=0", ["fixed:action=1"], n_actions=3, n_features=2,
                          seed=10, share=0.0)
    feed(gate, rng, 5_000, rates=[0.05, 0.05, 0.01])
    gate.promote("fixed:action=1")  # a person overrules the measurement
    feed(gate, rng, 300_000, rates=[0.30, 0.01, 0.01])
    assert [r.to_spec for r in gate.rollbacks] == ["fixed:action=0"]
