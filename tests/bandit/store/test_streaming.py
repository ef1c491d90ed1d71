"""Logs read and written in chunks: what streams out is exactly what one read gives, for
every format, with each chunk bounded (export of a store of any size; bandit.store.logread
``iter_log``, bandit.store.logwrite ``LogWriter``)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import Clock, shop

from bandit import Engine
from bandit.store.logread import LoadReport, iter_log, read_log
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


def _concat(chunks):
    from bandit.domain.logged import LoggedData

    first = chunks[0]
    return LoggedData(first.action_ids, *(np.concatenate([getattr(c, n) for c in chunks])
                                          for n in ("X", "mask", "actions", "propensities",
                                                    "rewards", "randomized", "ts")),
                      [x for c in chunks for x in c.contexts],
                      np.concatenate([c.placements for c in chunks]), None,
                      np.concatenate([c.groups for c in chunks]),
                      np.concatenate([c.would_have for c in chunks]),
                      np.concatenate([c.would_have_propensities for c in chunks]))


def test_chunks_are_bounded_and_add_up_to_one_read(store):
    data_dir, config = store
    whole, report = read_log(data_dir, config, "sqlite", now=T0 + 30 * 86400)
    assert len(whole) == 970
    streamed = LoadReport()
    chunks = list(iter_log(data_dir, config, streamed, "sqlite", now=T0 + 30 * 86400,
                           chunk_rows=100))
    assert [len(c) for c in chunks] == [100] * 9 + [70]
    _same(_concat(chunks), whole)
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
