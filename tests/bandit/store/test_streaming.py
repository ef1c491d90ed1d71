"""Logs read and written in chunks: what streams out is exactly what one read gives, for
every format, with each chunk bounded (export of a store of any size; bandit.store.logread
``iter_log``, bandit.store.logwrite ``LogWriter``)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop

from bandit import Engine
from bandit.domain.logged import LoggedData
from bandit.store.load_report import PROBLEMS_KEPT
from bandit.store.logread import LoadReport, LogChunks, iter_log, read_log
from bandit.store.logwrite import LogWriter, write_log

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streaming")
    config = shop(holdout={"fraction": 0.3})
    clock = Clock(T0)
    engine = Engine.open(config, tmp / "data", seed=0, clock=clock)
    rng = np.random.default_rng(0)
    for hour in range(10):
        decided = engine.decide_batch([(f"h{hour}v{i}", {"cart_value": float(i)}, None)
                                       for i in range(97)])
        for d in decided:
            if rng.random() < 0.2:
                engine.record_outcome(d.event_id, True, float(rng.uniform(10, 90)),
                                      commit=False)
        engine.commit()
        clock.t += 3600
    engine.close()
    return tmp / "data", config


def _same(a, b) -> None:
    for name in ("actions", "propensities", "rewards", "randomized", "ts", "mask", "X"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert list(a.groups) == list(b.groups) and list(a.placements) == list(b.placements)
    np.testing.assert_array_equal(a.would_have, b.would_have)
    np.testing.assert_array_equal(a.would_have_propensities, b.would_have_propensities)


def test_chunks_are_bounded_and_add_up_to_one_read(store):
    data_dir, config = store
    whole, report = read_log(data_dir, config, "sqlite", now=T0 + 30 * 86400)
    assert len(whole) == 970
    streamed = LoadReport()
    chunks = list(iter_log(data_dir, config, streamed, "sqlite", now=T0 + 30 * 86400,
                           chunk_rows=100))
    assert [len(c) for c in chunks] == [100] * 9 + [70]
    _same(LoggedData.concat(chunks), whole)
    assert streamed.read == report.read == 970


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_file_written_in_chunks_reads_back_as_one(store, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    data_dir, config = store
    whole, _ = read_log(data_dir, config, "sqlite", now=T0 + 30 * 86400)
    path = tmp_path / f"log.{fmt}"
    with LogWriter(path) as writer:
        for chunk in iter_log(data_dir, config, LoadReport(), "sqlite", now=T0 + 30 * 86400,
                              chunk_rows=128):
            writer.write(chunk)
    assert writer.rows == 970
    again, report = read_log(path, config)
    assert report.problems == []
    _same(again, whole)
    # and one write of the whole gives the same file contents, read back
    write_log(whole, tmp_path / f"one.{fmt}")
    _same(read_log(tmp_path / f"one.{fmt}", config)[0], whole)


def test_log_chunks_read_again_from_the_start_censored_at_one_moment(store):
    data_dir, config = store
    whole, _ = read_log(data_dir, config, "sqlite", now=T0 + 30 * 86400)
    log = LogChunks(data_dir, config, "sqlite", now=T0 + 30 * 86400, chunk_rows=300)
    for _ in range(2):  # every iteration is a fresh read of the same rows
        chunks = list(log)
        assert [len(c) for c in chunks] == [300, 300, 300, 70]
        _same(LoggedData.concat(chunks), whole)
    assert log.reads == 2 and log.report.read == 970
    # censored at its own moment (an hour after the first decisions): every read sees the
    # same rows, although the clock has long passed all their windows
    early = LogChunks(data_dir, config, "sqlite", now=T0 + 3600)
    assert sum(map(len, early)) == sum(map(len, early)) < 970
    with pytest.raises(FileNotFoundError):
        LogChunks(data_dir / "nothing-here", config)


def test_a_log_of_garbage_is_counted_in_full_and_kept_in_part(tmp_path):
    from engine_helpers import shop

    path = tmp_path / "garbage.jsonl"
    path.write_text("{not json\n" * (PROBLEMS_KEPT + 500))
    report = LoadReport()
    assert list(iter_log(path, shop(), report)) == []
    assert report.bad == report.read == PROBLEMS_KEPT + 500
    assert len(report.problems) == PROBLEMS_KEPT and report.problems[-1][0] == PROBLEMS_KEPT
    assert "... and 500 more" in report.summary(show=PROBLEMS_KEPT)


def test_a_store_with_millions_pending_keeps_only_the_earliest_times():
    from bandit.store.load_report import PENDING_KEPT

    rng = np.random.default_rng(3)
    times = rng.uniform(0, 86_400, 3 * PENDING_KEPT)  # any order
    report = LoadReport(window_s=3600.0)
    for ts in times:
        report.pend(float(ts))
    assert report.pending == 3 * PENDING_KEPT and len(report.pending_ts) == PENDING_KEPT
    ordered = np.sort(times)
    for more in (1, 200, PENDING_KEPT):
        assert report.final_by(more) == ordered[more - 1] + 3600.0
    assert report.final_by(PENDING_KEPT + 1) is None  # not kept: the message leaves it out
