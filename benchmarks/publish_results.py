"""Write the docs' results pages from ``benchmarks/results/``: one page per benchmark table.

Every figure the docs publish comes from a file a benchmark script wrote, so published numbers
cannot drift from the runs (``tests/test_docs.py`` checks the pages are current). The history of
re-runs lives in git, not in prose.

    python benchmarks/publish_results.py            # rewrite docs/results/
    python benchmarks/publish_results.py --check    # exit 1 if a page is out of date
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PAGES = Path(__file__).resolve().parents[1] / "docs" / "results"

#: result file stem -> (page title, the command that writes it, what it measures)
TABLES = {
    "simulate_200k": ("Who wins in the simulated shop", "cartwheel simulate --visitors 200000",
                      "captured gain of each policy against the oracle, paired over seeds"),
    "simulate_1m": ("The simulated shop at 1M visitors", "cartwheel simulate --visitors 1000000",
                    "the same comparison at a million visitors"),
    "bakeoff": ("The contextual-bandit bake-off", "python benchmarks/bakeoff.py",
                "progressive reward on public classification datasets, against Vowpal Wabbit "
                "and MABWiser"),
    "profit_learning": ("Learning the structure of profit", "python benchmarks/profit_learning.py",
                        "the profit policies against linucb on the default, drift and random "
                        "shops"),
    "profit_per_shop": ("Profit policy, shop by shop",
                        "python benchmarks/profit_learning.py --parts per-shop",
                        "each unseen random shop over seeds of its own, paired against linucb"),
    "profit_greedy": ("What each learned model is worth", "python benchmarks/profit_learning.py "
                      "--greedy", "the greedy choice of each learned model on fresh visitors"),
    "class_ceilings": ("Ceilings of the policy classes", "python benchmarks/linear_ceiling.py",
                       "the best a linear or product model can capture in each world"),
    "learning_order": ("Learning order", "python benchmarks/learning_order.py",
                       "provisional learning at decision time against learning at close"),
    "pacing": ("Budget pacing against the hard stop", "python benchmarks/pacing.py",
               "how long a daily budget lasts and what it earns"),
    "drift_adaptation": ("When preferences change", "python benchmarks/drift_adaptation.py",
                         "forgetting policies against stationary ones after a change"),
    "policy_speed": ("Policy speed", "python benchmarks/policy_speed.py",
                     "decisions per second and act/update latency, K=10, d=40, batch 100"),
    "engine_throughput": ("Engine throughput", "python benchmarks/engine_throughput.py",
                          "decisions per second through the in-process engine"),
    "http_load": ("The HTTP endpoint under load", "python benchmarks/http_load.py",
                  "decide and outcome rates and latency over a real socket"),
    "http_load_c8": ("The HTTP endpoint, 8 connections", "python benchmarks/http_load.py "
                     "--connections 8", "the same at eight concurrent connections"),
    "http_load_example_shop": ("The HTTP endpoint, example shop", "python benchmarks/http_load.py "
                               "--config examples/shop.toml", "with rules, caps and a budget"),
    "explain_cost": ("What an explanation costs", "python benchmarks/explain_cost.py",
                     "the decide rate with and without reasons"),
    "report_time": ("What a report costs", "python benchmarks/report_time.py",
                    "report time against the size of the log"),
    "scaleout": ("More than one process", "python benchmarks/scaleout.py",
                 "decide replicas and a trainer on Redis against one process"),
    "log_io": ("Reading and writing logs", "python benchmarks/log_io.py",
               "rows per second of each log format"),
    "ope_accuracy": ("Off-policy estimators: accuracy", "python benchmarks/ope_accuracy.py",
                     "error and interval coverage of each estimator against the simulated truth"),
    "replay_ranking": ("Ranking policies by replay", "python benchmarks/replay_ranking.py",
                       "whether replay ranks policies as the simulated truth does"),
    "blas_threads": ("Fast without tuning", "python benchmarks/blas_threads.py --visitors 10000",
                     "the policies on a busy machine: the library's own BLAS limit against "
                     "OPENBLAS_NUM_THREADS=1 and against numpy's default threads"),
    "grown_store": ("A grown store", "python benchmarks/grown_store.py --decisions 10000000",
                    "a store grown through the engine's bulk API: its size, start-up with and "
                    "without snapshots, the time and peak memory of what reads the whole log "
                    "(export, replay, segments --log), one erasure"),
    "crash_under_load": ("The crash suite under load",
                         "python benchmarks/crash_under_load.py --runs 20",
                         "the SIGKILL suite again and again beside two CPU-bound processes"),
    "poisoning": ("Poisoning within the limits", "python benchmarks/poisoning.py",
                  "what one anonymous client, held to the per-address limit, can do to what "
                  "the model learns without signed requests"),
    "held_memory": ("Held closings in memory", "python benchmarks/held_memory.py",
                    "what a non-additive policy's conversions cost while they wait for earlier "
                    "decisions to close (kept as seqs, read back from the log)"),
    "promotion": ("The promotion gate", "python benchmarks/promotion.py run ... && "
                  "python benchmarks/promotion.py table ...",
                  "linucb alone, the profit policy alone and the gate of the two (and with a "
                  "uniform challenger) on the default, drift and random shops"),
    "retention": ("Retention at steady traffic", "python benchmarks/retention.py",
                  "the event database's size day by day with keep_days = 30"),
    "soak": ("Soak", "python benchmarks/soak.py --data-dir DIR/data --config DIR/shop.toml "
                     "--minutes 30 --rate 100",
             "a grown store served at a fixed rate: latency and memory per minute"),
    "placements": ("Learning per placement", "python benchmarks/placements.py",
                   "per-placement learning against the visit's oracle, a joint model, the best "
                   "fixed combination and the per-placement limit, in the shop with placements"),
    "segments_fidelity": ("How faithful segments are", "python benchmarks/segments_fidelity.py",
                          "how much of the policy's gain a small tree of segments keeps"),
}
IMAGES = ("simulate_200k.png", "dashboard.png", "dashboard-phone.png")


def page(stem: str, text: str) -> str:
    title, command, what = TABLES[stem]
    image = f"\n![{title}]({stem}.png)\n" if (RESULTS / f"{stem}.png").exists() else ""
    return (f"# {title}\n\n<!-- generated by benchmarks/publish_results.py from "
            f"benchmarks/results/{stem}.txt: edit the run, not this page -->\n\n"
            f"What it measures: {what}.\n\nRun it: `{command}` (writes "
            f"`benchmarks/results/{stem}.txt`; the first line names the machine, its load and "
            f"the sizes).\n\n```text\n{text.rstrip()}\n```\n{image}")


def index(stems: list[str]) -> str:
    rows = "\n".join(f"| [{TABLES[s][0]}]({s}.md) | {TABLES[s][2]} | `{TABLES[s][1]}` |"
                     for s in stems)
    return ("# Results\n\n<!-- generated by benchmarks/publish_results.py: edit the runs, not "
            "this page -->\n\nEvery table here is the file a benchmark script last wrote under "
            "`benchmarks/results/`, shown as it is. Machines here are shared and noisy: compare "
            "rows within one table (ratios of one run), not across tables.\n\n"
            "| table | what it measures | command |\n|---|---|---|\n" + rows + "\n")


def pages() -> dict[str, str]:
    """Every generated page by file name (text pages; images are copied as they are)."""
    unknown = sorted(p.stem for p in RESULTS.glob("*.txt") if p.stem not in TABLES)
    if unknown:
        raise SystemExit(f"results without a page entry in TABLES: {unknown}")
    stems = [s for s in TABLES if (RESULTS / f"{s}.txt").exists()]
    out = {f"{s}.md": page(s, (RESULTS / f"{s}.txt").read_text()) for s in stems}
    out["index.md"] = index(stems)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the pages are current")
    args = parser.parse_args(argv)
    wanted = pages()
    if args.check:
        stale = [name for name, text in wanted.items()
                 if not (PAGES / name).exists() or (PAGES / name).read_text() != text]
        stale += [name for name in IMAGES if (RESULTS / name).exists() and (
            not (PAGES / name).exists()
            or (PAGES / name).read_bytes() != (RESULTS / name).read_bytes())]
        if stale:
            print(f"out of date: {stale}; run python benchmarks/publish_results.py",
                  file=sys.stderr)
            return 1
        return 0
    PAGES.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (PAGES / name).write_text(text)
    for name in IMAGES:
        if (RESULTS / name).exists():
            shutil.copyfile(RESULTS / name, PAGES / name)
    print(f"wrote {len(wanted)} pages to {PAGES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
