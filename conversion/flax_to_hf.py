"""Exports a jaxrlvr checkpoint (model_config.json + params/) as a Hugging Face folder.

    python -m conversion.flax_to_hf --ckpt /ckpt/qwen0.5b --out /models/exported [--tokenizer-dir DIR]

The output loads with ``transformers.AutoModelForCausalLM.from_pretrained(OUT)``. Trainer workdirs are
accepted too: the latest step's params are exported.
"""

import sys

from jaxrlvr.cli import flax_to_hf as main

if __name__ == "__main__":
    sys.exit(main())
