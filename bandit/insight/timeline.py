"""Uplift over time and the action mix, per hour and per day, from the store's hourly
aggregates (:mod:`bandit.store.aggregates`): the cost is that of the hours shown, never of
the log's size.

Each bucket holds the decisions made in it (an outcome counts in the hour of its decision),
per group: decisions, conversions, conversion rate, revenue, incentive cost and profit per
decision; the treatment group's action counts; and, when both groups have two decisions or
more, the uplift of treatment over holdout in conversion rate and profit per decision with a
Welch interval over *decisions* (within an hour a visitor rarely decides twice; the
headline uplift of the report groups by visitor, the unit of randomization).

>>> up = bucket_uplift(Sums(10, 2, 100.0, 4.0, 5000.0, 8.0, 200.0),
...                    Sums(10, 1, 50.0, 0.0, 2500.0, 0.0, 0.0), 0.3, 0.05)
>>> round(up["profit_per_decision"][0], 9)  # (0.3 * 100 - 4) / 10 - 0.3 * 50 / 10
1.1
"""

from __future__ import annotations

import numpy as np

from bandit.insight.stats import Sums, welch_t

HOURS_SHOWN = 48
DAYS_SHOWN = 30


def bucket_uplift(t: Sums, h: Sums, margin: float, alpha: float) -> dict:
    """Treatment minus holdout in profit per decision and conversion rate:
    ``{kpi: (difference, lower, upper)}``, Welch's interval over decisions."""
    out = {}
    for kpi, (mt, vt), (mh, vh) in (("profit_per_decision", t.profit(margin), h.profit(margin)),
                                    ("conversion_rate", t.conversion(), h.conversion())):
        out[kpi] = welch_t(mt - mh, vt / t.n, vh / h.n, t.n, h.n, alpha)
    return out


def _buckets(rows, width_h: int, margin: float, alpha: float) -> list[dict]:
    """Buckets of ``width_h`` hours from hourly rows (hour, grp, action, sums...)."""
    groups: dict[int, dict[str, Sums]] = {}
    actions: dict[int, dict[str, int]] = {}
    for hour, grp, action, *sums in rows:
        start = hour // width_h
        groups.setdefault(start, {}).setdefault(grp, Sums()).add(*sums)
        if grp == "treatment":
            mix = actions.setdefault(start, {})
            mix[action] = mix.get(action, 0) + int(sums[0])
    out = []
    for start in sorted(groups):
        by_group = groups[start]
        t, h = by_group.get("treatment"), by_group.get("holdout")
        uplift = None
        if t is not None and h is not None and t.n > 1 and h.n > 1:
            uplift = {kpi: {"difference": d, "lower": lo, "upper": hi}
                      for kpi, (d, lo, hi) in bucket_uplift(t, h, margin, alpha).items()}
        out.append({"start": start * width_h * 3600,
                    "groups": {g: s.kpis(margin) for g, s in sorted(by_group.items())},
                    "treatment_actions": dict(sorted(actions.get(start, {}).items())),
                    "uplift": uplift})
    return out


def timeline(store, margin: float, alpha: float = 0.05, hours: int = HOURS_SHOWN,
             days: int = DAYS_SHOWN) -> dict:
    """``{"hour": [...], "day": [...]}``: the last ``hours`` hours and ``days`` days (UTC)
    that have decisions, ending with the newest decision's hour (the log's time, not the
    clock's: a replayed or exported log shows its own days)."""
    last = store.aggregates.last_hour()
    if last is None:
        return {"hour": [], "day": []}
    first_day_hour = (last // 24 - days + 1) * 24
    rows = store.aggregates.hourly(min(first_day_hour, last - hours + 1))
    return {"hour": _buckets([r for r in rows if r[0] > last - hours], 1, margin, alpha),
            "day": _buckets([r for r in rows if r[0] >= first_day_hour], 24, margin, alpha)}


def plot(series: dict, path: str, currency: str = "") -> tuple:
    """Draw profit per decision and conversion rate per group over time, with the
    treatment-minus-holdout intervals, per day (per hour when the log spans two days or
    fewer); needs ``[plot]``. The time axis spans the data (half a bucket either side: one
    bucket alone would otherwise be stretched over years); returns the drawn axis' (start,
    end)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'cartwheel[plot]'") from None
    from datetime import datetime, timedelta, timezone

    daily = len(series["day"]) > 2
    buckets = series["day"] if daily else series["hour"]
    half = timedelta(hours=12 if daily else 0.5)
    span = (None, None) if not buckets else (
        datetime.fromtimestamp(buckets[0]["start"], timezone.utc) - half,
        datetime.fromtimestamp(buckets[-1]["start"], timezone.utc) + half)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kpi, label in ((axes[0], "profit_per_decision", f"profit per decision {currency}"),
                           (axes[1], "conversion_rate", "conversion rate")):
        for grp in sorted({g for b in buckets for g in b["groups"]}):
            here = [b for b in buckets if grp in b["groups"]]
            t = [datetime.fromtimestamp(b["start"], timezone.utc) for b in here]
            ax.plot(t, [b["groups"][grp][kpi] for b in here], marker="o", label=grp)
        with_ci = [b for b in buckets if b["uplift"]]
        if with_ci:
            t = [datetime.fromtimestamp(b["start"], timezone.utc) for b in with_ci]
            lower = np.array([b["uplift"][kpi]["lower"] for b in with_ci])
            upper = np.array([b["uplift"][kpi]["upper"] for b in with_ci])
            if len(with_ci) == 1:  # one bucket: an error bar (a band needs two)
                ax.vlines(t, lower, upper, lw=6, alpha=0.3, label="uplift interval")
            else:
                ax.fill_between(t, lower, upper, alpha=0.2, label="uplift interval")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(title=label, xlabel="time (UTC)")
        if span[0] is not None:
            ax.set_xlim(*span)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    from matplotlib.dates import num2date

    drawn = tuple(num2date(x) for x in axes[0].get_xlim())  # what the figure shows
    plt.close(fig)
    return drawn
