"""Where a log's rows come from: one reader per format, each yielding ``(line, record)``
and counting in the :class:`~bandit.store.logread.LoadReport` what it reads but passes over
(a line that is not JSON, a decision of an event store still inside its window: censoring,
see :mod:`bandit.store.logread`). :func:`bandit.store.logread.read_log` validates the records.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from bandit.store.events import EventStore

_decode = msgspec.json.Decoder().decode  # several times faster than json.loads


def records_jsonl(path, config, report):
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                yield n, _decode(text)
            except (msgspec.DecodeError, RecursionError) as exc:  # nested too deep: one line
                report.read += 1
                report.refuse(n, f"not valid JSON: {exc}")


def records_parquet(path, config, report):
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):  # bounded memory
        for rec in batch.to_pylist():
            n += 1
            # a null is a field the row does not have (the columns are the file's, fixed)
            rec = {k: v for k, v in rec.items() if v is not None}
            try:
                for key in ("context", "eligible"):
                    if isinstance(rec.get(key), str):
                        rec[key] = _decode(rec[key])
            except (msgspec.DecodeError, RecursionError) as exc:
                report.read += 1
                report.refuse(n, f"{key} is not valid JSON: {exc}")
                continue
            yield n, rec


def records_sqlite(path, config, report, tail: int | None = None,
                    placement: str | None = None, now: float | None = None,
                    include_open: bool = False):
    path = Path(path)
    db_path = path / "events.sqlite3" if path.is_dir() else path
    if not db_path.exists():
        raise ValueError(f"no event store at {db_path}: `cartwheel serve --data-dir DIR` "
                         "writes one")
    window = report.window_s = config.attribution.window_s
    cutoff = (time.time() if now is None else now) - window
    store = EventStore.read_only(db_path)
    try:
        after = 0 if tail is None else max(0, store.max_seq("decisions") - tail)
        for (seq, event_id, ts, context, eligible, action, p, randomized, grp,
             reward, at, reason, would_have, would_have_p) in store.decisions_with_rewards(after):
            if placement is not None and at != placement:
                report.read += 1
                report.elsewhere += 1
                continue
            if reason == "inactive":  # deferred and never shown
                report.read += 1
                report.inactive += 1
                continue
            row = {"event_id": event_id, "ts": ts, "context": _decode(context),
                   "eligible": _decode(eligible), "action": action, "probability": p,
                   "randomized": bool(randomized) and grp == "treatment", "placement": at,
                   "group": grp}
            if would_have is not None:
                row["would_have_action"], row["would_have_probability"] = would_have, would_have_p
            if not ts < cutoff:  # inside its window: the outcome is not final (censoring)
                if include_open:  # exported as open, with what is known so far
                    yield seq, {**row, "reward": config.attribution.default_reward
                                if reward is None else reward, "open": True}
                    continue
                report.read += 1
                report.pend(ts)
                continue
            # past its window: final (not closed yet by expiry: the default reward)
            yield seq, {**row, "reward": config.attribution.default_reward if reward is None
                        else reward}
    finally:
        store.close()


def records_dsjson(path, config, report):
    """VW's decision-service JSON: shared features in ``c``, actions in ``c._multi``."""
    for n, rec in records_jsonl(path, config, report):
        try:
            out = _dsjson_decision(rec)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            report.read += 1
            report.refuse(n, "not a DSJSON decision (needs c, c._multi and an "
                             f"integer _labelIndex into it): {exc}")
            continue
        yield n, out


def _dsjson_decision(rec) -> dict:
    """One DSJSON line as a log row (the builder then checks it like any other row)."""
    multi = rec["c"]["_multi"]
    eligible = [m["id"] for m in multi]
    index = rec["_labelIndex"]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(eligible):
        raise ValueError(f"_labelIndex {index!r} is not one of the {len(eligible)} actions")
    out = {"event_id": rec.get("EventId"), "ts": rec.get("Timestamp"),
           "context": {k: v for k, v in rec["c"].items() if k != "_multi"},
           "eligible": eligible, "action": eligible[index],
           "probability": rec.get("_label_probability")}
    if "_label_cost" in rec:
        cost = rec["_label_cost"]
        # a cost that is not a number goes on as it is, for the builder to refuse (a bool is
        # negated like the number it is, as the reader did before it checked types)
        out["reward"] = -cost if isinstance(cost, (int, float)) else cost
    return out


#: the file formats' readers (an event store's, with its censoring, is :func:`records_sqlite`)
READERS = {"jsonl": records_jsonl, "parquet": records_parquet, "dsjson": records_dsjson}
