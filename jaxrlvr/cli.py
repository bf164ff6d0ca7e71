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


def convert(argv=None) -> int:
    """``jaxrlvr-convert {hf-to-flax | flax-to-hf} ARGS``: the two converters behind one command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in _CONVERTERS:
        print(f"usage: jaxrlvr-convert {{{' | '.join(_CONVERTERS)}}} [--help | ARGS]", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
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
            print(f"error: {e.strerror or e}{where}; the last complete checkpoint is intact", file=sys.stderr)
            sys.exit(1)
        if isinstance(e, CheckpointSaveError | WriterError):
            print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
            sys.exit(1)
        return False


def train(argv=None):
    """RLVR training from a config file; re-running with the same --workdir resumes it (a larger
    --config.train.num_steps extends a finished run). User errors: one line naming the fix, exit status 2."""
    from absl import app, flags
    from ml_collections import config_flags

    from jaxrlvr import cli_support

    argv = list(sys.argv if argv is None else argv)
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
