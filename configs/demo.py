"""The embedded default: a tiny Qwen2 + character tokenizer on synthetic 2-digit additions.

A short SFT warm start on a noisy teacher (worked column additions whose steps or final answer are
sometimes wrong), then GRPO with the DAPO settings scaled down (clip 0.2 / 0.28, token-mean loss, no KL).
Self-contained: nothing is downloaded. Presets: ``smoke`` (a few steps, for tests).

    python scripts/train.py --config configs/demo.py --workdir runs/demo
"""

from jaxrlvr.train.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.seed = 0
    c.tokenizer = "char"
    c.model.preset = "tiny"
    c.model.hidden_size = 128
    c.model.intermediate_size = 256
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.num_kv_heads = 2
    c.model.vocab_size = -1  # the tokenizer's

    c.data.source = "synthetic"
    c.data.synthetic_digits = 2
    c.data.synthetic_train = 6000
    c.data.heldout = 320
    c.data.heldout_samples = 4

    c.sft.steps = 400
    c.sft.batch_size = 64
    c.sft.lr = 3e-3
    c.sft.seq_len = 64
    c.sft.step_error = 0.1
    c.sft.answer_error = 0.5

    c.rollout.prompts_per_step = 16
    c.rollout.group_size = 8
    c.rollout.max_new_tokens = 40
    c.rollout.max_prompt_len = 16
    c.rollout.temperature = 1.0
    c.rollout.top_p = 1.0
    c.rollout.overlong_shaping = True
    c.rollout.overlong_buffer = 8

    c.algo.clip_low = 0.2
    c.algo.clip_high = 0.28
    c.algo.loss_agg_mode = "token-mean"

    c.optim.lr = 1e-4
    c.optim.warmup_steps = 5
    c.optim.weight_decay = 0.0

    c.train.num_steps = 150
    c.train.mini_batch_prompts = 8
    c.train.micro_batch_size = 64
    c.checkpoint.every = 40
    c.train.dump_rollouts_every = 20
    c.reward.workers = 1
    # Padded rows (our choice, measured): the demo's sequences are at most 56 tokens and the model is tiny, so
    # packing removes no padding worth having while its layout costs more than the update itself (15 steps,
    # quiet 2-core CPU: 1.25 s/step packed vs 0.34 s/step padded). Packing pays off at the papers' lengths
    # (BENCHMARKS.md, "Packed updates").
    c.train.packing = False

    for a in (arg or "").split(","):
        a = a.strip()
        if not a:
            continue
        if a == "smoke":  # a model, tokenizer or data file given on the command line is kept (c.smoke)
            c.smoke = True
            c.sft.steps = 4
            c.data.synthetic_train = 200
            c.data.heldout = 8
            c.data.heldout_samples = 2
            c.train.num_steps = 2
            c.rollout.prompts_per_step = 4
            c.rollout.max_new_tokens = 24
            c.train.mini_batch_prompts = 2
            c.train.micro_batch_size = 8
            c.checkpoint.every = 1
            c.log.progress = False
        else:
            raise ValueError(f"unknown preset {a!r} for configs/demo.py (known: smoke)")
    return c
