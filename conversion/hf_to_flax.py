"""Converts a local Hugging Face checkpoint (Qwen2 / Qwen2.5, Llama 3.x, Qwen3) into a jaxrlvr (orbax) checkpoint.

python -m conversion.hf_to_flax --hf-dir /models/Qwen3-1.7B-Base --out /ckpt/qwen3-1.7b [--dtype bfloat16]
"""

import sys

from jaxrlvr.cli import hf_to_flax as main

if __name__ == "__main__":
    sys.exit(main())
