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


def write_log(data: LoggedData, path, fmt: str | None = None) -> int:
    """Write ``data`` as JSON Lines, Parquet or DSJSON; returns the number of rows."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    rows = records(data)
    if fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # every row gets every column (None where it has none): pyarrow takes the columns
        # of the first row only, and a holdout's or an open row's fields come later
        keys = list(dict.fromkeys(k for r in rows for k in r))
        table = pa.Table.from_pylist([{**dict.fromkeys(keys), **r,
                                       "context": json.dumps(r["context"]),
                                       "eligible": json.dumps(r["eligible"])} for r in rows])
        pq.write_table(table, path)
    elif fmt == "dsjson":
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                index = r["eligible"].index(r["action"])
                f.write(json.dumps({
                    "_label_cost": -r["reward"], "_label_probability": r["probability"],
                    "_label_Action": index + 1, "_labelIndex": index, "Timestamp": r["ts"],
                    "a": [index + 1] + [i + 1 for i in range(len(r["eligible"])) if i != index],
                    "c": {**r["context"], "_multi": [{"id": a} for a in r["eligible"]]},
                    "p": [r["probability"]]}, separators=(",", ":")) + "\n")
    else:
        raise ValueError(f"cannot write format {fmt!r}; choose jsonl, parquet or dsjson")
    return len(rows)
