"""The verdict: one plain sentence on whether personalization pays (bandit.insight.verdict)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from engine_helpers import Clock, shop

from bandit import Engine
from bandit.insight.report import build_report
from bandit.insight.stats import welch_interval
from bandit.insight.verdict import verdict, visitors_needed

ROW = {"kpi": "profit_per_visitor", "holdout": 2.0}


def test_earning_losing_and_undecided_say_so_with_the_currency():
    up = verdict({**ROW, "difference": 0.42, "lower": 0.10, "upper": 0.74}, sd=(20, 20),
                 visitors=(9000, 1000), per_day=740.0, currency="EUR", confidence=0.95)
    assert up["status"] == "earning"
    assert up["sentence"] == ("Personalization is earning EUR 0.42 more profit per visitor than "
                              "the holdout (95%: 0.10 to 0.74), about EUR 311 a day at today's "
                              "traffic.")
    down = verdict({**ROW, "difference": -0.3, "lower": -0.5, "upper": -0.1}, sd=(20, 20),
                   visitors=(9000, 1000), per_day=None, currency="USD", confidence=0.9)
    assert down["status"] == "losing" and down["sentence"].startswith(
        "Personalization is losing USD 0.30 profit per visitor against the holdout (90%: -0.50 "
        "to -0.10): check")
    unsure = verdict({**ROW, "difference": 0.05, "lower": -0.4, "upper": 0.5}, sd=(20, 20),
                     visitors=(9000, 1000), per_day=740.0, currency="EUR", confidence=0.95)
    assert unsure["status"] == "undecided"
    # delta: the larger of the estimate and 5% of the holdout's 2.0 -> 0.10
    assert unsure["delta"] == pytest.approx(0.10)
    assert "more visitors to tell a EUR 0.10 difference" in unsure["sentence"]
    expected = visitors_needed((20, 20), 0.1, 0.10) - 10_000
    assert unsure["visitors_needed"] == pytest.approx(expected)
    assert type(unsure["visitors_needed"]) is float  # JSON-encodable, not a numpy scalar
    # two significant digits, as people say it
    assert f"about {float(f'{expected:.2g}'):,.0f} more visitors" in unsure["sentence"]


def test_no_holdout_and_no_data_get_their_own_sentence():
    none = verdict(None, sd=(0, 0), visitors=(50, 0), per_day=None, currency="EUR",
                   confidence=0.95, holdout_fraction=0.0)
    assert none["status"] == "no_holdout" and "[holdout] fraction" in none["sentence"]
    # the holdout is configured: no hint to set it, only that it is early
    early = verdict(None, sd=(0, 0), visitors=(50, 1), per_day=None, currency="EUR",
                    confidence=0.95, holdout_fraction=0.05)
    assert early["status"] == "waiting" and "[holdout]" not in early["sentence"]
    assert "50 treated and 1 in the holdout" in early["sentence"]


def test_visitors_needed_gives_the_stated_power():
    """At the N the formula gives, a 95% Welch interval excludes zero in 80% of experiments
    whose true difference is delta (seeded: 600 simulated experiments, accepted 0.74-0.86,
    3 binomial sd around 0.8)."""
    rng = np.random.default_rng(0)
    sd, share, delta = (3.0, 2.0), 0.2, 0.25
    n = visitors_needed(sd, share, delta)
    nt, nh = int(round(n * (1 - share))), int(round(n * share))
    hits = 0
    for _ in range(600):
        t = rng.normal(delta, sd[0], nt)
        h = rng.normal(0.0, sd[1], nh)
        _, lower, _ = welch_interval(t, h, 0.05)
        hits += lower > 0
    assert 0.74 <= hits / 600 <= 0.86, hits / 600


def test_the_report_carries_the_verdict_and_the_daily_traffic(tmp_path):
    """12 hours of traffic, 100 decisions an hour, one per visitor: about 2,400 visitors a day,
    of whom the treated share is counted."""
    config = shop(holdout={"fraction": 0.3})
    clock = Clock(1_700_000_000.0)
    engine = Engine.open(config, tmp_path / "data", seed=0, clock=clock)
    for hour in range(12):
        engine.decide_batch([(f"h{hour}v{i}", {}, None) for i in range(100)])
        clock.t += 3600
    report = build_report(engine.store, config.objective.margin, holdout_fraction=0.3,
                          currency="EUR")
    treated = report.groups["treatment"]["visitors"]
    assert report.treated_visitors_per_day == pytest.approx(treated * 2)
    assert report.verdict["status"] == "undecided"  # nothing converted: 0 vs 0
    assert report.to_dict()["verdict"]["sentence"].startswith("Not distinguishable")
    msgspec.json.encode(report.to_dict())  # plain numbers: the HTTP answer encodes them
    engine.close()
