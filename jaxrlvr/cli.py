"""Command-line entry points: the console scripts of ``pip install jaxrlvr`` and the bodies of the checkout's
``scripts/train.py``, ``scripts/evaluate.py`` and ``python -m conversion.{hf_to_flax,flax_to_hf}``.

    jaxrlvr-train --config configs/NAME.py[:presets] --workdir DIR        (= python scripts/train.py ...)
    jaxrlvr-eval --config configs/eval.py --config.ckpt=DIR                (= python scripts/evaluate.py ...)
    jaxrlvr-convert hf-to-flax --hf-dir DIR --out DIR [--dtype bfloat16]   (= python -m conversion.hf_to_flax ...)
    jaxrlvr-convert flax-to-hf --ckpt DIR --out DIR [--tokenizer-dir DIR]  (= python -m conversion.flax_to_hf ...)

Config files import their shared presets (``from configs import ...``), so the folder holding ``configs/``
(found from ``--config``'s path) is put on ``sys.path`` first.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


# ------------------------------------------------------------------------------------------------ conversion
def hf_to_flax(argv=None) -> int:
    """Converts a local Hugging Face checkpoint (Qwen2, Llama 3, Qwen3) into a jaxrlvr (orbax) checkpoint."""
    ap = argparse.ArgumentParser(prog="hf_to_flax", description=hf_to_flax.__doc__)
    ap.add_argument("--hf-dir", required=True, help="folder with config.json and model.safetensors[.index.json]")
    ap.add_argument("--out", required=True, help="output folder (model_config.json + params/)")
    ap.add_argument(
        "--dtype",
        default="keep",
        choices=["keep", "float32", "bfloat16", "float16"],
        help="parameter dtype; 'keep' (default) keeps the checkpoint's dtype bit for bit",
    )
    ap.add_argument("--force", action="store_true", help="overwrite an existing output checkpoint")
    args = ap.parse_args(argv)

    from jaxrlvr.models.checkpoint import save_params
    from jaxrlvr.models.hf import CheckpointError, load_hf_checkpoint

    try:
        cfg, params = load_hf_checkpoint(args.hf_dir, dtype=None if args.dtype == "keep" else args.dtype)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = save_params(args.out, cfg, params, force=args.force)
    print(f"wrote {cfg.num_params():,} parameters ({cfg.model_type}, {cfg.param_dtype}) to {out}")
    return 0


def flax_to_hf(argv=None) -> int:
    """Exports a jaxrlvr checkpoint (model_config.json + params/, or a run's latest step) as a Hugging Face
    folder that ``transformers.AutoModelForCausalLM.from_pretrained`` loads."""
    ap = argparse.ArgumentParser(prog="flax_to_hf", description=flax_to_hf.__doc__)
    ap.add_argument(
        "--ckpt",
        required=True,
        help="jaxrlvr model checkpoint (model_config.json + params/), run workdir or step folder",
    )
    ap.add_argument("--out", required=True, help="output Hugging Face folder")
    ap.add_argument("--tokenizer-dir", default=None, help="copy tokenizer files from this folder into --out")
    ap.add_argument("--max-shard-gib", type=float, default=5.0, help="safetensors shard size")
    args = ap.parse_args(argv)

    from jaxrlvr.models.hf import save_hf_checkpoint
    from jaxrlvr.runs import load_params  # model checkpoints, run workdirs and their step folders

    try:
        cfg, params = load_params(args.ckpt)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = save_hf_checkpoint(cfg, params, args.out, max_shard_bytes=int(args.max_shard_gib * 1024**3))
    if args.tokenizer_dir:
        for name in TOKENIZER_FILES:
            src = pathlib.Path(args.tokenizer_dir) / name
            if src.is_file():
                shutil.copy2(src, out / name)
    _keep_special_token_ids(args.ckpt, args.tokenizer_dir, out)
    print(f"wrote Hugging Face checkpoint to {out}")
    return 0


def _keep_special_token_ids(ckpt, tokenizer_dir, out: pathlib.Path) -> None:
    """Copies ``bos_token_id`` / ``eos_token_id`` into ``out/config.json`` from the Hugging Face folder the
    weights came from (a run's ``model.hf_path``), else from ``tokenizer_dir``'s config.json."""
    from jaxrlvr.runs import run_config

    run = run_config(ckpt) or {}
    for src in ((run.get("model") or {}).get("hf_path"), tokenizer_dir):
        f = pathlib.Path(src) / "config.json" if src else None
        if f is not None and f.is_file():
            ids = {k: v for k, v in json.loads(f.read_text()).items() if k in ("bos_token_id", "eos_token_id")}
            if ids:
                cfg_file = out / "config.json"
                cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), **ids}, indent=2) + "\n")
                return


_CONVERTERS = {"hf-to-flax": hf_to_flax, "flax-to-hf": flax_to_hf}


_CONVERT_HELP = """usage: jaxrlvr-convert {hf-to-flax | flax-to-hf} [--help | ARGS]

Converts model checkpoints (the same code as python -m conversion.hf_to_flax / conversion.flax_to_hf).

  hf-to-flax --hf-dir DIR --out DIR [--dtype keep|float32|bfloat16|float16] [--force]
      a local Hugging Face folder (Qwen2/2.5, Llama 3/3.1, Qwen3) -> a jaxrlvr checkpoint
  flax-to-hf --ckpt DIR --out DIR [--tokenizer-dir DIR] [--max-shard-gib 5]
      a jaxrlvr checkpoint, run workdir or step folder -> a Hugging Face folder

jaxrlvr-convert SUBCOMMAND --help lists a subcommand's options. See docs/models.md."""


def convert(argv=None) -> int:
    """``jaxrlvr-convert {hf-to-flax | flax-to-hf} ARGS``: the two converters behind one command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in _CONVERTERS:
        if argv[:1] in (["-h"], ["--help"]):
            print(_CONVERT_HELP)
            return 0
        print(_CONVERT_HELP.splitlines()[0], file=sys.stderr)
        return 2
    return _CONVERTERS[argv[0]](argv[1:])


# ------------------------------------------------------------------------------------------ train / evaluate
def _config_root_on_path(argv, default: str | None = None) -> None:
    """Puts the folder holding ``configs/`` (the parent of --config's folder) first on ``sys.path``."""
    value = default
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith("--config="):
            value = a.split("=", 1)[1]
    if value:
        root = str(pathlib.Path(value.split(":", 1)[0]).resolve().parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)


class _system_errors:
    """A full disk, a read-only or vanished folder, a failed writer thread: one ``error:`` line, exit status 1
    (the run's last complete checkpoint is intact; re-running resumes from it)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        from jaxrlvr.train.checkpoint import CheckpointSaveError
        from jaxrlvr.train.metrics import WriterError

        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError | NotADirectoryError | FileExistsError):
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            self._exit(f"{e.strerror or e}{where}; the last complete checkpoint is intact")
        if isinstance(e, CheckpointSaveError | WriterError):
            self._exit(str(e).strip().splitlines()[0])
        return False

    @staticmethod
    def _exit(message: str):
        """Prints the line and exits at once: orbax's background threads, failing on the same disk, would
        otherwise print their tracebacks while the interpreter shuts down (the run's lock is released)."""
        import os

        print(f"error: {message}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


_TRAIN_HELP = """usage: {prog} --config configs/NAME.py[:PRESET,...] --workdir DIR [--config.KEY=VALUE ...]

RLVR training (GRPO / DAPO and the entropy variants) from a config file. Re-running with the same --workdir
resumes from its latest checkpoint; a larger --config.train.num_steps extends a finished run.

  --config FILE[:PRESETS]  the config file and comma-separated presets, e.g. configs/demo.py:smoke
                           (the presets of each file are listed in its docstring; config files:
                           {configs})
  --config.KEY=VALUE       override one key, e.g. --config.train.num_steps=200 (unknown keys are errors)
  --workdir DIR            the run folder: checkpoints, metrics.jsonl, TensorBoard, config.json,
                           config_history.jsonl, summary.json (one training at a time: a lock)

SIGTERM / Ctrl-C finish the current step, checkpoint it and exit with 128+signal (a second one stops at once);
re-run the same command to resume. Exit status 2: a user error (one line naming the fix).
Docs: README.md, docs/training.md, docs/data.md (where the data files come from)."""

_EVAL_HELP = """usage: {prog} --config configs/eval.py[:PRESET,...] --config.ckpt=DIR [--config.KEY=VALUE ...]

Generation-based evaluation of a checkpoint on math and out-of-domain benchmarks (Acc@N, Maj@N, Pass@k).

  --config FILE[:PRESETS]      default configs/eval.py; presets n64, greedy, smoke (listed in its docstring)
  --config.ckpt=DIR            a training run (its latest step), a step folder, or a Hugging Face folder
  --config.benchmarks=A,B      math500, aime24, aime25, amc23, minerva, gsm8k, humaneval, gpqa, ifeval or files
  --config.out_dir=DIR         where results go; default for a run: RUN/eval/step_NNNNNN_<benchmarks>_n<N>/
  --config.KEY=VALUE           any other key of configs/eval.py (num_samples, temperature, max_new_tokens, ...)

summary.json records the checkpoint path and step, the benchmark settings and the command.
Exit status 2: a user error (one line naming the fix). Docs: docs/rewards_data_eval.md, docs/ood_eval.md."""


def _wants_help(argv) -> bool:
    return any(a in ("-h", "--help", "-help", "--helpshort", "-?") for a in argv[1:])


def _config_files() -> str:
    here = pathlib.Path("configs")
    names = sorted(p.name for p in here.glob("*.py") if not p.name.startswith("_")) if here.is_dir() else []
    return ", ".join(names) if names else "configs/*.py of the checkout"


def train(argv=None):
    """RLVR training from a config file; re-running with the same --workdir resumes it (a larger
    --config.train.num_steps extends a finished run). User errors: one line naming the fix, exit status 2."""
    from absl import app, flags
    from ml_collections import config_flags

    from jaxrlvr import cli_support

    argv = list(sys.argv if argv is None else argv)
    if _wants_help(argv):
        print(_TRAIN_HELP.format(prog=pathlib.Path(argv[0]).name or "jaxrlvr-train", configs=_config_files()))
        sys.exit(0)
    _config_root_on_path(argv)
    config = config_flags.DEFINE_config_file(
        "config", None, "config file (configs/NAME.py[:presets])", lock_config=True
    )
    workdir = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, plots, summary)")
    flags.mark_flags_as_required(["config", "workdir"])

    def main(args):
        if len(args) > 1:
            cli_support.fail(
                f"unexpected arguments {args[1:]}: options are --config FILE[:presets], --config.key=value, --workdir"
            )
        cli_support.quiet_logs()  # orbax logs every save at INFO
        import logging

        # orbax reports a failed save (e.g. a full disk) from each of its threads; the loop reports it once
        logging.getLogger("absl").setLevel(logging.CRITICAL)
        from jaxrlvr.train.loop import train as run

        with cli_support.user_errors(), _system_errors():  # validation, a full disk: one line, not a traceback
            summary = run(config.value, workdir.value)
        print(json.dumps(summary, indent=2))
        if summary.get("signal"):  # stopped by SIGTERM / SIGINT after checkpointing: 128 + signal, as shells do
            import signal

            return 128 + int(getattr(signal, summary["signal"]))
        return 0

    app.run(main, argv=argv, flags_parser=cli_support.flags_parser)


def evaluate(argv=None):
    """Generation-based evaluation of a checkpoint on math and out-of-domain benchmarks (a run's workdir
    brings its tokenizer). User errors: one line naming the fix, exit status 2."""
    from absl import app
    from ml_collections import config_flags

    from jaxrlvr import cli_support

    argv = list(sys.argv if argv is None else argv)
    if _wants_help(argv):
        print(_EVAL_HELP.format(prog=pathlib.Path(argv[0]).name or "jaxrlvr-eval"))
        sys.exit(0)
    _config_root_on_path(argv, default="configs/eval.py")
    config = config_flags.DEFINE_config_file("config", "configs/eval.py", "evaluation config file", lock_config=True)

    def main(args):
        if len(args) > 1:
            cli_support.fail(
                f"unexpected arguments {args[1:]}: options are --config FILE[:presets], --config.key=value"
            )
        cli_support.quiet_logs()
        from jaxrlvr.eval import run_from_config

        with cli_support.user_errors():  # the message names the file and where it is looked for
            run_from_config(config.value)

    app.run(main, argv=argv, flags_parser=cli_support.flags_parser)


__all__ = ["convert", "evaluate", "flax_to_hf", "hf_to_flax", "train"]
