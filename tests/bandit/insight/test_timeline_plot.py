"""`report --plot`: the time axis spans the data, whatever its length."""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine_helpers import Clock, shop

from bandit import Engine
from bandit.insight.timeline import plot, timeline

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("minutes, longest", [(50, timedelta(hours=2)),
                                              (3 * 24 * 60, timedelta(days=4, hours=1))])
def test_the_plots_time_axis_spans_the_data(tmp_path, minutes, longest):
    """A shop with under an hour of data was drawn over years (one point); the axis now holds
    the buckets shown and half a bucket either side."""
    clock = Clock(1_700_000_000.0)
    engine = Engine.open(shop(holdout={"fraction": 0.5}), tmp_path / "data", seed=0, clock=clock)
    for i in range(0, minutes, 10):
        engine.decide_batch([(f"m{i}v{j}", {}, None) for j in range(4)])
        clock.t += 600
    series = timeline(engine.store, 0.3)
    start, end = plot(series, str(tmp_path / "plot.png"), "EUR")
    engine.close()
    assert timedelta(0) < end - start <= longest
    assert (tmp_path / "plot.png").stat().st_size > 10_000
