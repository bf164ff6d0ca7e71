"""The ``smoke`` preset shared by every config: a tiny char-level model on synthetic problems, 2 RL steps."""


def apply_smoke(c):
    """Shrinks any config to a CPU run of a few seconds, keeping its algorithm settings.

    Batch sizes, lengths and step counts shrink. The tiny character-level model on synthetic problems is
    the default, but a model (``model.hf_path`` / ``model.init_ckpt``), tokenizer or data file
    (``data.path``) given on the command line is kept: ``c.smoke`` tells the trainer
    (``jaxrlvr.train.config.resolve_sources``), which sees the command line's overrides.
    """
    c.smoke = True
    c.tokenizer = "char"
    c.model.hf_path = ""
    c.model.init_ckpt = ""
    c.model.preset = "tiny"
    c.model.hidden_size = 64
    c.model.intermediate_size = 128
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.num_kv_heads = 2
    c.model.vocab_size = -1
    c.model.dtype = "float32"
    c.model.param_dtype = "float32"
    c.data.source = "synthetic"
    c.data.path = ""
    c.data.synthetic_train = 200
    c.data.heldout = 8
    c.data.heldout_samples = 2
    c.sft.steps = 4
    c.sft.batch_size = 16
    c.sft.seq_len = 64  # the noisy teacher's worked additions take up to ~50 tokens with their prompt
    c.rollout.prompts_per_step = 4
    c.rollout.group_size = 4
    c.rollout.max_new_tokens = 24
    # rollout.max_prompt_len is kept for a data file and capped for the synthetic prompts by the trainer
    c.rollout.overlong_buffer = min(c.rollout.overlong_buffer, 8)
    c.train.num_steps = 2
    c.train.mini_batch_prompts = 2
    c.train.micro_batch_size = 8
    c.train.ppo_epochs = min(c.train.ppo_epochs, 2)
    c.train.dump_rollouts_every = 0
    w0, wn = c.train.position_window
    c.train.position_window = (min(w0, 1), wn)
    w0, wn = c.train.ppl_window
    c.train.ppl_window = (min(w0, 1), wn)
    c.optim.lr = 1e-4
    c.optim.total_steps = 8
    c.optim.warmup_steps = 1
    c.checkpoint.every = 1
    c.reward.workers = 1
    c.log.progress = False
    return c


def parse_presets(arg, known):
    """``"a,b=c"`` -> [("a", None), ("b", "c")], rejecting names not in ``known`` (a message lists them)."""
    out = []
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        if name not in known:
            raise ValueError(f"unknown preset {name!r} (known: {', '.join(sorted(known))})")
        out.append((name, value or None))
    return out
