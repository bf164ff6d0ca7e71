"""Synchronous against asynchronous rollouts (``rollout.max_staleness``) on one config, run as a user runs it.

    python scripts/bench_async.py --config configs/demo.py --workdir runs/bench_async [--staleness 0,1]
        [--set rollout.max_new_tokens=64 ...] [--write BENCHMARKS.md] [--json]

For each staleness k it runs ``scripts/train.py --config CONFIG --config.rollout.max_staleness=k`` (plus the
``--set`` overrides) into ``WORKDIR/k<k>`` in a subprocess, one after the other (the same machine for both; a
finished run's folder is reused, so an interrupted benchmark resumes), then reads each run's files and reports,
per k: held-out accuracy before / after RL and the gain, the mean rollout accuracy and token entropy over the
last 10 steps, the median step time after the first 3 steps (compilation) and, for k >= 1, the mean staleness
and overlap fraction. ``speedup_vs_k0`` is the median step time of k = 0 over that of k. ``--write`` replaces
the section "## Asynchronous rollouts (CPU, demo)" of that markdown file with the table and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## Asynchronous rollouts (CPU, demo)"


def run(config: str, workdir: pathlib.Path, k: int, sets: list[str]) -> None:
    if (workdir / "summary.json").is_file():
        print(f"k={k}: reusing the finished run in {workdir}", file=sys.stderr)
        return
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", config, "--workdir", str(workdir)]
    cmd += [f"--config.rollout.max_staleness={k}", "--config.log.progress=False"]
    cmd += [f"--config.{s}" for s in sets]
    print("running: " + " ".join(cmd[1:]), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)  # the run's output apart from the results


def summarize(workdir: pathlib.Path) -> dict:
    from jaxrlvr.train.metrics import read_metrics

    summary = json.loads((workdir / "summary.json").read_text())
    recs = read_metrics(workdir / "metrics.jsonl")
    last = recs[-10:]
    out = {
        "steps": len(recs),
        "heldout_before": summary.get("heldout_accuracy_before"),
        "heldout_after": summary.get("heldout_accuracy_after"),
        "accuracy_last10": float(np.mean([r["accuracy"] for r in last])),
        "entropy_last10": float(np.mean([r["entropy"] for r in last])),
        "median_step_s": float(np.median([r["time_step"] for r in recs[3:]] or [recs[-1]["time_step"]])),
        "wall_s": summary.get("wall_seconds"),
    }
    if out["heldout_before"] is not None and out["heldout_after"] is not None:
        out["gain_points"] = 100.0 * (out["heldout_after"] - out["heldout_before"])
    if "staleness" in recs[-1]:
        out["staleness_mean"] = float(np.mean([r["staleness"] for r in recs]))
        out["overlap_fraction_mean"] = float(np.mean([r["overlap_fraction"] for r in recs[1:-1] or recs]))
    return out


def table(results: dict) -> str:
    rows = [
        "| max_staleness | held-out before | after | gain (points) | accuracy, last 10 steps | entropy, last 10 "
        "steps | median s/step | speed-up vs 0 | staleness | overlap |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, r in results.items():
        f = lambda v, p=3: "" if v is None else f"{v:.{p}f}"  # noqa: E731
        rows.append(
            f"| {k} | {f(r['heldout_before'])} | {f(r['heldout_after'])} | {f(r.get('gain_points'), 1)} | "
            f"{f(r['accuracy_last10'])} | {f(r['entropy_last10'], 4)} | {f(r['median_step_s'])} | "
            f"{f(r.get('speedup_vs_k0'), 2)} | {f(r.get('staleness_mean'), 2)} | "
            f"{f(r.get('overlap_fraction_mean'), 2)} |"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--staleness", default="0,1", help="comma-separated values of rollout.max_staleness")
    ap.add_argument("--set", action="append", default=[], help="a config override KEY=VALUE (repeatable)")
    ap.add_argument("--write", default=None, help="update this markdown file's section")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args(argv)
    try:
        ks = [int(x) for x in args.staleness.split(",")]
    except ValueError:
        ap.error(f"--staleness {args.staleness!r}: give comma-separated integers >= 0, e.g. 0,1")
    if not ks or min(ks) < 0:
        ap.error(f"--staleness {args.staleness!r}: give comma-separated integers >= 0, e.g. 0,1")
    root = pathlib.Path(args.workdir)
    results = {}
    for k in ks:
        run(args.config, root / f"k{k}", k, args.set)
        results[k] = summarize(root / f"k{k}")
    if 0 in results:
        for r in results.values():
            r["speedup_vs_k0"] = results[0]["median_step_s"] / max(r["median_step_s"], 1e-9)
    text = table(results)
    print(
        json.dumps({"results": results, "machine": platform.processor() or platform.machine()}) if args.json else text
    )
    if args.write:
        from bench_train import replace_section  # scripts/ is on the path when run as a script

        sets = "".join(f" --set {s}" for s in args.set)
        body = (
            f"Command: `python scripts/bench_async.py --config {args.config} --workdir {args.workdir} "
            f"--staleness {args.staleness}{sets} --write {args.write}` ({platform.machine()} CPU; the runs one after "
            f"the other on the same machine; load average {os.getloadavg()[0]:.1f} when written). Written by the "
            "script.\n\n" + text
        )
        replace_section(pathlib.Path(args.write), SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
