"""The testbed's required characteristics (issue 27) of pilot runs, as a markdown table (docs/study.md, "Pilots").

    python scripts/study_pilot.py RUN_DIR [RUN_DIR ...] [--sft SFT_DIR --variants V --seeds K --jobs J]

Each RUN_DIR is a scripts/train.py run (e.g. the baseline variant of configs/study.py started from a
seed's SFT warm start); its numbers are computed exactly as runs.csv's (``jaxrlvr.analysis.study.run_row``), so
a pilot's table is written from the run's files, never typed. A run stopped early (no summary.json) is
labelled with its last step; its accuracy before RL is read from the trainer's log line (RUN_DIR/train.log,
as scripts/study.py writes it, or RUN_DIR.log beside it) and its wall time is "-".
"""

import argparse
import math
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def _logged_accuracy_before(run: pathlib.Path) -> float:
    for log in (run / "train.log", run.with_name(run.name + ".log")):
        if log.is_file():
            m = re.search(r"held-out accuracy before RL: ([0-9.]+)", log.read_text())
            if m:
                return float(m.group(1))
    return math.nan


def _row(run: str, steps: int, run_row):
    """run_row of the run, or of its first ``steps`` RL steps (a copy of metrics.jsonl cut there)."""
    if not steps:
        return run_row(run)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lines = (pathlib.Path(run) / "metrics.jsonl").read_text().splitlines(keepends=True)
        (pathlib.Path(tmp) / "metrics.jsonl").write_text("".join(lines[:steps]))
        row, curves = run_row(tmp)
    src = pathlib.Path(run) / "summary.json"
    if src.is_file():
        import json

        row["accuracy_before"] = float(json.loads(src.read_text()).get("heldout_accuracy_before", math.nan))
    return row, curves


def _cell(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "-"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished run directories (each with metrics.jsonl and summary.json)")
    p.add_argument("--steps", type=int, default=0, help="judge only the first N RL steps of each run (0: all)")
    p.add_argument("--sft", default="", help="a finished SFT warm-start run: also print the grid's time estimate")
    p.add_argument("--variants", type=int, default=23, help="variants per seed in the grid (estimate)")
    p.add_argument("--seeds", type=int, default=5, help="seeds (estimate)")
    p.add_argument("--jobs", type=int, default=2, help="parallel runs (estimate)")
    args = p.parse_args(argv)
    missing = [r for r in args.runs if not (pathlib.Path(r) / "metrics.jsonl").is_file()]
    if missing:
        print(f"error: {', '.join(missing)}: no metrics.jsonl (not a training run); give run directories",
              file=sys.stderr)  # fmt: skip
        return 2
    from jaxrlvr.analysis.study import CHARACTERISTICS, run_row

    rows, names = [], []
    for r in args.runs:
        row, curves = _row(r, args.steps, run_row)
        rows.append(row)
        done = (pathlib.Path(r) / "summary.json").is_file()
        if not done:
            row["accuracy_before"] = _logged_accuracy_before(pathlib.Path(r))
        label = (
            f" (first {args.steps} steps)"
            if args.steps
            else ("" if done else f" (stopped at step {curves['steps'][-1]})")
        )
        names.append(pathlib.Path(r).name + label)
    print("| characteristic | column | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for name, (col, test) in CHARACTERISTICS.items():
        # "-" (a number the stopped run does not have) is not judged; a NaN plateau step means none was found
        judged = [math.isfinite(r[col]) or col == "plateau_step" for r in rows]
        cells = [
            _cell(r[col]) + (" **no**" if j and not test(r[col]) else "") for r, j in zip(rows, judged, strict=True)
        ]
        print(f"| {name} | `{col}` | " + " | ".join(cells) + " |")
    for col in ("accuracy_after", "entropy_final", "length_initial", "length_final", "wall_seconds"):
        print(f"| | `{col}` | " + " | ".join(_cell(r[col]) for r in rows) + " |")
    if args.sft:
        _estimate(args, rows)
    return 0


def _estimate(args, rows) -> None:
    """The grid's wall time from the pilots' wall times, with the SFT warm start shared per seed (what
    scripts/study.py does) and, for comparison, trained again inside every run."""
    import json

    sft = json.loads((pathlib.Path(args.sft) / "summary.json").read_text())["wall_seconds"]
    walls = [r["wall_seconds"] for r in rows if math.isfinite(r["wall_seconds"])]
    if not walls:
        print("no finished run: no estimate")
        return
    run = sum(walls) / len(walls)
    n = args.variants * args.seeds
    shared = (args.seeds * sft + n * run) / args.jobs
    alone = n * (sft + run) / args.jobs
    print(
        f"\ngrid estimate ({args.variants} variants x {args.seeds} seeds = {n} runs, --jobs {args.jobs}, at the "
        f"pilots' speed): SFT warm start {sft:.0f} s, RL run {run:.0f} s (mean of {len(walls)}); SFT shared per "
        f"seed: {shared / 3600:.2f} h; SFT inside every run: {alone / 3600:.2f} h"
    )


if __name__ == "__main__":
    sys.exit(main())
