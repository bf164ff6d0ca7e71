"""Command-line entry points for Hugging Face checkpoints, run from a checkout (not installed as a package):

    python -m conversion.hf_to_flax --hf-dir DIR --out DIR [--dtype bfloat16]
    python -m conversion.flax_to_hf --ckpt DIR --out DIR [--tokenizer-dir DIR]

The library code lives in :mod:`jaxrlvr.models.hf`; the installed command is ``jaxrlvr-convert``.
"""
