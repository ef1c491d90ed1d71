"""Engine: the wiring of one process (one engine per data dir)."""

from __future__ import annotations

import pytest
from engine_helpers import open_engine

from bandit.domain.errors import (
    CartwheelError,
)


def test_second_engine_on_same_data_dir_is_refused(tmp_path, clock):
    first = open_engine(tmp_path, clock)  # held: a collected engine would release its lock
    with pytest.raises(CartwheelError, match="another cartwheel process"):
        open_engine(tmp_path, clock)
    first.close()
    open_engine(tmp_path, clock).close()  # closed: the directory is free again
