"""The testbed's required characteristics (issue 27) of pilot runs, as a markdown table (docs/study.md, "Pilots").

    python scripts/study_pilot.py RUN_DIR [RUN_DIR ...] [--label TEXT]

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


def _cell(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "-"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished run directories (each with metrics.jsonl and summary.json)")
    args = p.parse_args(argv)
    missing = [r for r in args.runs if not (pathlib.Path(r) / "metrics.jsonl").is_file()]
    if missing:
        print(f"error: {', '.join(missing)}: no metrics.jsonl (not a training run); give run directories",
              file=sys.stderr)  # fmt: skip
        return 2
    from jaxrlvr.analysis.study import CHARACTERISTICS, run_row

    rows, names = [], []
    for r in args.runs:
        row, curves = run_row(r)
        rows.append(row)
        done = (pathlib.Path(r) / "summary.json").is_file()
        if not done:
            row["accuracy_before"] = _logged_accuracy_before(pathlib.Path(r))
        names.append(pathlib.Path(r).name + ("" if done else f" (stopped at step {curves['steps'][-1]})"))
    print("| characteristic | column | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for name, (col, test) in CHARACTERISTICS.items():
        # "-" (a number the stopped run does not have) is not judged; a NaN plateau step means none was found
        judged = [math.isfinite(r[col]) or col == "plateau_step" for r in rows]
        cells = [_cell(r[col]) + (" **no**" if j and not test(r[col]) else "") for r, j in zip(rows, judged)]
        print(f"| {name} | `{col}` | " + " | ".join(cells) + " |")
    for col in ("accuracy_after", "entropy_final", "length_initial", "length_final", "wall_seconds"):
        print(f"| | `{col}` | " + " | ".join(_cell(r[col]) for r in rows) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
