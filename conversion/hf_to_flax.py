"""Converts a local Hugging Face Qwen2 checkpoint into a jaxrlvr (orbax) checkpoint.

python -m conversion.hf_to_flax --hf-dir /models/Qwen2.5-0.5B --out /ckpt/qwen0.5b [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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

    from conversion.qwen2 import CheckpointError, load_hf_checkpoint
    from jaxrlvr.models.checkpoint import save_params

    try:
        cfg, params = load_hf_checkpoint(args.hf_dir, dtype=None if args.dtype == "keep" else args.dtype)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = save_params(args.out, cfg, params, force=args.force)
    print(f"wrote {cfg.num_params():,} parameters ({cfg.param_dtype}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
