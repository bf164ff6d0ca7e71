"""Evaluate a checkpoint on math and out-of-domain benchmarks: Acc@N, Maj@N, Pass@k, lengths and
quality-issue rates (and IFEval's strict/loose accuracies).

    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=math500,aime24
    python scripts/evaluate.py --config configs/eval.py:n64 --config.ckpt=DIR --config.out_dir=eval_n64
    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=humaneval,gpqa,ifeval

DIR is a Hugging Face folder (config.json + *.safetensors + tokenizer files) or an orbax checkpoint of a
jaxrlvr run (then pass --config.tokenizer=<folder with tokenizer.json>). Writes per-sample JSONL,
summary.json and summary.md into --config.out_dir. See docs/rewards_data_eval.md and docs/ood_eval.md.
A missing file (checkpoint, GPQA data, ...) ends the script with the loader's message (where to put it).
The installed command ``jaxrlvr-eval`` runs the same code (``jaxrlvr.cli.evaluate``).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # configs/ import their shared presets

from jaxrlvr.cli import evaluate  # noqa: E402

if __name__ == "__main__":
    evaluate()
