"""Revisiting Entropy in RL for Large Reasoning Models (arXiv 2511.05993), Appendix F: the study repeated on
Llama-3.1-8B-Instruct.

Appendix F settings: DAPO-Math-17k, 256 prompts x 16 samples, rollout T = 1.0, max response 4096 tokens,
cosine learning-rate schedule, MATH500 as the validation set. Everything else (clip 0.2 / 0.2, token-mean
loss, AdamW lr 1e-6, one update per rollout batch) is ``configs/entropy_study.py``'s base, and every setting
preset of that file applies (``clip_higher``, ``offpolicy=2``, ``pos_adv=entropy``, ...). Prompts use the
Llama-3.1-Instruct chat format (``llama3_math_cot``: our choice, the boxed-answer instruction as the system
message, like ``qwen_math_cot`` for Qwen):

    python scripts/train.py --config configs/llama_revisiting.py:clip_higher \
        --config.model.hf_path=/models/Llama-3.1-8B-Instruct \
        --config.data.path=../shared/data/dapo_math_17k.jsonl --workdir runs/llama_clip_higher

Presets: the entropy_study settings (at most one) and ``smoke`` (the tiny Llama-architecture model with llama3
rope scaling, character tokenizer, synthetic problems, 2 RL steps on CPU).
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
    # Validation on MATH500 (Appendix F); every 20 steps is our choice (the paper plots validation curves).
    c.eval.benchmarks = "math500"
    c.eval.template = "llama3_math_cot"
    c.eval.every = 20
    if smoke:  # entropy_study applied the shared smoke preset; keep it on the Llama architecture
        c.model.preset = "tiny-llama"
        c.data.template = "qwen_math_cot"  # the character tokenizer has Qwen's chat markup only
        c.eval.template = ""
        c.eval.every = 0
    return c
