"""Write logged decisions as JSON Lines, Parquet or VW's DSJSON, in the schema
:mod:`bandit.store.logread` reads back (a round trip keeps every row; ``tests/simulator/evaluation/test_replay.py``).

>>> import tempfile, pathlib, simulator, policies
>>> from simulator.worlds.simulated_log import simulate_log
>>> world = simulator.make_world()
>>> data = simulate_log(world, world.policy("uniform", 0), 50, keep_contexts=True)
>>> write_log(data, pathlib.Path(tempfile.mkdtemp()) / "log.jsonl")
50
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bandit.domain.logged import LoggedData
from bandit.store.logread import detect_format


def records(data: LoggedData) -> list[dict]:
    """The rows of ``data`` as JSON-ready dicts (the JSON Lines schema above)."""
    ids = data.action_ids
    rows = [{"ts": float(data.ts[i]), "context": data.contexts[i] if data.contexts else {},
             "eligible": [ids[k] for k in np.flatnonzero(data.mask[i])],
             "action": ids[int(data.actions[i])], "probability": float(data.propensities[i]),
             "reward": float(data.rewards[i]), "randomized": bool(data.randomized[i])}
            for i in range(len(data))]
    if data.placements is not None:
        for row, placement in zip(rows, data.placements):
            row["placement"] = str(placement)
    if data.groups is not None:
        for row, group in zip(rows, data.groups):
            if group is not None:
                row["group"] = str(group)
    if data.would_have is not None:  # a holdout row's draw for a treated visitor
        for row, k, p in zip(rows, data.would_have, data.would_have_propensities):
            if k >= 0:
                row["would_have_action"], row["would_have_probability"] = ids[int(k)], float(p)
    if data.open is not None:  # exported with --include-open: not final, and says so
        for row, is_open in zip(rows, data.open):
            if is_open:
                row["open"] = True
    return rows


#: Parquet's columns, fixed (a chunk without holdout or open rows writes nulls there): JSON
#: strings for the context and eligible list, so that any shop's context fits one schema
PARQUET_COLUMNS = (("ts", "float64"), ("context", "string"), ("eligible", "string"),
                   ("action", "string"), ("probability", "float64"), ("reward", "float64"),
                   ("randomized", "bool_"), ("placement", "string"), ("group", "string"),
                   ("would_have_action", "string"), ("would_have_probability", "float64"),
                   ("open", "bool_"))


class LogWriter:
    """Writes logged decisions chunk by chunk (export streams a store of any size with
    bounded memory): ``with LogWriter(path, fmt) as w: w.write(chunk)``."""

    def __init__(self, path, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = fmt or detect_format(self.path)
        if self.fmt not in ("jsonl", "parquet", "dsjson"):
            raise ValueError(f"cannot write format {self.fmt!r}; choose jsonl, parquet or dsjson")
        self.rows = 0
        self._file = self._parquet = None

    def __enter__(self) -> "LogWriter":
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.schema([(name, getattr(pa, kind)()) for name, kind
                                      in PARQUET_COLUMNS])
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        else:
            self._file = open(self.path, "w", encoding="utf-8")
        return self

    def write(self, data: LoggedData) -> int:
        """Append ``data``'s rows; returns how many."""
        rows = records(data)
        if self.fmt == "jsonl":
            self._file.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        elif self.fmt == "parquet":
            import pyarrow as pa

            self._parquet.write_table(pa.Table.from_pylist(
                [{**r, "context": json.dumps(r["context"]), "eligible": json.dumps(r["eligible"])}
                 for r in rows], schema=self._schema))
        else:
            self._file.writelines(_dsjson(r) + "\n" for r in rows)
        self.rows += len(rows)
        return len(rows)

    def __exit__(self, *exc) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._file is not None:
            self._file.close()


def _dsjson(r: dict) -> str:
    index = r["eligible"].index(r["action"])
    return json.dumps({
        "_label_cost": -r["reward"], "_label_probability": r["probability"],
        "_label_Action": index + 1, "_labelIndex": index, "Timestamp": r["ts"],
        "a": [index + 1] + [i + 1 for i in range(len(r["eligible"])) if i != index],
        "c": {**r["context"], "_multi": [{"id": a} for a in r["eligible"]]},
        "p": [r["probability"]]}, separators=(",", ":"))


def write_log(data: LoggedData, path, fmt: str | None = None) -> int:
    """Write ``data`` as JSON Lines, Parquet or DSJSON; returns the number of rows."""
    with LogWriter(path, fmt) as writer:
        return writer.write(data)
