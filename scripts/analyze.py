"""Analyse a training run: PNG figures, analysis.json and one HTML page in DIR/analysis/.

    python scripts/analyze.py --workdir DIR [--out OUT] [--pool_last 4] [--max_dumps N] [--no_model]

Reads DIR/metrics.jsonl, DIR/rollouts/step_*.npz (train with --config.train.dump_rollouts_every=K) and,
when present, DIR/eval/step_NNNNNN/summary.json. With dumps and checkpoints it also computes the Eq. 4
gradient-share and Eq. 6 token-impact sections on the last dump (this loads the model and samples;
--no_model skips them). See docs/analysis.md.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="training run directory")
    p.add_argument("--out", default=None, help="output directory (default WORKDIR/analysis)")
    p.add_argument("--beta", type=float, default=0.6, help="EMA weight of the curves")
    p.add_argument("--num_bins", type=int, default=20, help="relative-position bins")
    p.add_argument("--shift_threshold", type=float, default=0.06, help="'barely moved' probability shift")
    p.add_argument("--pool_last", type=int, default=4, help="distribution figures pool the last N dumps")
    p.add_argument("--max_dumps", type=int, default=None, help="per-step numbers from at most N dumps")
    p.add_argument("--diversity_unit", choices=("word", "char"), default="word", help="distinct-n units")
    p.add_argument("--no_model", action="store_true", help="skip the Eq. 4 / Eq. 6 sections (no model loaded)")
    p.add_argument("--impact_rows", type=int, default=4, help="Eq. 6: responses measured")
    p.add_argument("--impact_k", type=int, default=4, help="Eq. 6: continuations per prefix (the paper: 32)")
    args = p.parse_args(argv)

    from jaxrlvr.analysis import ReportOptions, write_report

    opts = ReportOptions(
        beta=args.beta,
        num_bins=args.num_bins,
        shift_threshold=args.shift_threshold,
        pool_last=args.pool_last,
        max_dumps=args.max_dumps,
        diversity_unit=args.diversity_unit,
        model_sections=not args.no_model,
        impact_rows=args.impact_rows,
        impact_k=args.impact_k,
    )
    from jaxrlvr import cli_support as cli

    cli.quiet_logs()
    try:
        path = write_report(args.workdir, args.out, opts)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = json.loads((path.parent / "analysis.json").read_text())["summary"]
    print(json.dumps(summary, indent=2))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
