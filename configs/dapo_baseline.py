"""GRPO + DAPO as in "Decomposing the Entropy-Performance Exchange" (the baseline of every variant).

Clip 0.2 / 0.28 (clip-higher), token-mean loss, DAPO overlong shaping (buffer 1024, max response 8192),
no KL (beta = 0), dual clip c = 3 (verl's clip_ratio_c default), AdamW lr 1e-6 with 10 warm-up RL steps
(160 updates), 512 prompts per batch, mini-batch 32 prompts (16 updates per batch), G = 8, rollout
T = 1.0 / top_p = 0.95. docs/training.md tabulates each value with its source (paper + section) or "not
stated: our choice". Weights come from a local Hugging Face folder:

    python scripts/train.py --config configs/dapo_baseline.py:model=qwen2.5-math-7b \
        --config.model.hf_path=/models/Qwen2.5-Math-7B --config.data.path=/data/dapo_math_17k.jsonl \
        --workdir runs/dapo

Presets: ``model=NAME`` (a ModelConfig preset; the folder's config.json wins when hf_path is set), ``smoke``.
``model=qwen2.5-math-7b`` / ``qwen2.5-math-1.5b`` also set ``model.max_position_embeddings = 16384`` and
``model.rope_theta = 4e4`` (applied to an hf_path's config.json too): their config.json allows 4096
positions, too few for 1024 + 8192 tokens. The papers ran verl with an edited config.json and print no
values; 16384 / 4e4 is the common edit (e.g. the LUFFY recipe): not stated, our choice.
"""

from configs._smoke import apply_smoke, parse_presets
from jaxrlvr.train.config import base_config

MATH_CONTEXT_MODELS = ("qwen2.5-math-7b", "qwen2.5-math-1.5b")  # config.json: 4096 positions, rope_theta 1e4
MATH_CONTEXT = (16384, 40000.0)  # not stated by the papers: the common edit (LUFFY recipe), our choice


def get_config(arg: str | None = None):
    c = base_config()
    c.model.preset = "qwen2.5-7b"
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"
    c.model.remat = "full"
    c.tokenizer = ""  # model.hf_path's tokenizer

    c.data.source = "file"
    c.data.path = ""  # e.g. ../shared/data/dapo_math_17k.jsonl
    c.data.template = "qwen_math_cot"

    c.rollout.prompts_per_step = 512
    c.rollout.group_size = 8
    c.rollout.max_prompt_len = 1024
    c.rollout.max_new_tokens = 8192
    c.rollout.temperature = 1.0
    c.rollout.top_p = 0.95
    c.rollout.overlong_shaping = True
    c.rollout.overlong_buffer = 1024
    c.rollout.overlong_factor = 1.0

    c.algo.clip_low = 0.2
    c.algo.clip_high = 0.28
    c.algo.loss_agg_mode = "token-mean"
    c.algo.kl_coef = 0.0
    c.algo.clip_c = 3.0  # verl's default clip_ratio_c (dual clip); neither paper changes it

    c.optim.lr = 1e-6
    c.optim.warmup_steps = 10  # RL steps (x 16 updates each)
    c.optim.schedule = "constant"
    c.optim.weight_decay = 0.1  # not stated: our choice (verl's default is 0.01)
    c.optim.total_steps = 500  # RL steps (only the cosine schedule reads it)

    c.train.num_steps = 500
    c.train.mini_batch_prompts = 32
    c.train.micro_batch_size = 8
    c.train.dynamic_sampling = False
    c.checkpoint.every = 20
    c.reward.workers = 8

    for name, value in parse_presets(arg, {"model", "smoke"}):
        if name == "model":
            c.model.preset = value
            if value in MATH_CONTEXT_MODELS:
                c.model.max_position_embeddings, c.model.rope_theta = MATH_CONTEXT
        elif name == "smoke":
            apply_smoke(c)
    return c
