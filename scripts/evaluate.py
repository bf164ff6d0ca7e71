"""Evaluate a checkpoint on math and out-of-domain benchmarks: Acc@N, Maj@N, Pass@k, lengths and
quality-issue rates (and IFEval's strict/loose accuracies).

    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=math500,aime24
    python scripts/evaluate.py --config configs/eval.py:n64 --config.ckpt=DIR --config.out_dir=eval_n64
    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=humaneval,gpqa,ifeval

DIR is a Hugging Face folder (config.json + *.safetensors + tokenizer files), a jaxrlvr training workdir or
one of its step folders (the tokenizer is the one the run recorded), or a conversion output (then pass
--config.tokenizer=<folder with tokenizer.json>). Writes per-sample JSONL, summary.json and summary.md
(rates in percent) into --config.out_dir. See docs/rewards_data_eval.md and docs/ood_eval.md. A user error
(missing file, unknown key, ...) is one line naming the fix and exit status 2.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app
from ml_collections import config_flags

from jaxrlvr import cli_support as cli

_CONFIG = config_flags.DEFINE_config_file("config", "configs/eval.py", "evaluation config file", lock_config=True)


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}: options are --config FILE[:presets] and --config.key=value")
    cli.quiet_logs()
    from jaxrlvr.eval import run_from_config

    with cli.user_errors():  # the message names the file and where it is looked for
        run_from_config(_CONFIG.value)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser)
