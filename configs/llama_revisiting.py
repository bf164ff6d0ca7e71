"""Revisiting Entropy in RL for Large Reasoning Models (arXiv 2511.05993), Appendix F: the study repeated on
Llama-3.1-8B-Instruct.

Appendix F settings: DAPO-Math-17k ("trained on the DAPO-Math-17K dataset"), 256 prompts x 16 samples
("the batch size was set to 256, and 16 responses were generated per prompt"), rollout T = 1.0, max
response 4096 tokens, cosine learning-rate schedule, and "MATH500 was used as the validation set";
otherwise "The training configuration for Llama-3.1-8B-Instruct followed that of Qwen2.5-Math-7B", so
everything else is ``configs/entropy_study.py``'s base: clip 0.2 / 0.2, token-mean loss, AdamW lr 1e-6,
**N = 4 off-policy mini-batch updates per rollout batch** (F.8 varies N over 1, 2, 4), and App. B's
evaluation ("we largely followed the setup used for Qwen2.5-Math-7B"): 64 samples at T = 1.0 / top-p 1.0,
the best validated checkpoint kept (``eval.keep_best``) and evaluated with ``configs/eval.py:revisiting
--config.validation=math500``. The setting presets of entropy_study apply and combine under the same
clash rules (``clip_higher``, ``offpolicy=2``, ``pos_adv=entropy,offpolicy=2``, ...). Prompts use the
Llama-3.1-Instruct chat format (``llama3_math_cot``: ours, the boxed-answer instruction as the system
message, like ``qwen_math_cot`` for Qwen):

    python scripts/train.py --config configs/llama_revisiting.py:clip_higher \
        --config.model.hf_path=/models/Llama-3.1-8B-Instruct \
        --config.data.path=../shared/data/dapo_math_17k.jsonl --workdir runs/llama_clip_higher

Presets: the entropy_study settings and ``smoke`` (the tiny Llama-architecture model with llama3 rope
scaling, character tokenizer, synthetic problems, 2 RL steps on CPU).
"""

from configs import entropy_study
from configs._smoke import parse_presets


def get_config(arg: str | None = None):
    presets = parse_presets(arg, set(entropy_study.SETTINGS) | {"smoke"})
    c = entropy_study.get_config(",".join(n if v is None else f"{n}={v}" for n, v in presets))
    smoke = any(n == "smoke" for n, _ in presets)
    c.model.preset = "llama-3.1-8b-instruct"
    c.data.path = ""  # e.g. ../shared/data/dapo_math_17k.jsonl (DAPO-Math-17k, Appendix F)
    c.data.template = "llama3_math_cot"
    # Validation on MATH500 (Appendix F) with entropy_study's App. B sampling; every 20 steps is ours.
    c.eval.benchmarks = "math500"
    c.eval.template = "llama3_math_cot"
    if smoke:  # entropy_study applied the shared smoke preset; keep it on the Llama architecture
        c.model.preset = "tiny-llama"
        c.data.template = "qwen_math_cot"  # the character tokenizer has Qwen's chat markup only
        c.eval.template = ""
        c.eval.every = 0
    return c
