"""Every setting of "Revisiting Entropy in RL for Large Reasoning Models" (arXiv 2511.05993), as presets.

Base: GRPO, 256 prompts x 16 samples, rollout T = 1.0 / top_p = 1.0, max response 4096 tokens, AdamW lr 1e-6
with a cosine schedule, token-mean loss, clip 0.2 / 0.2, dual clip c = 3 (verl's default clip_ratio_c), and
**N = 4 off-policy mini-batch updates per rollout batch** (App. E.2 / F.8: the section-7 comparisons; with
N = 1 the ratio is exactly 1 and every clip variant is the baseline). docs/training.md has the value /
source table of every preset.

Presets combine (``pos_adv=entropy,offpolicy=2,smoke``; ``clip_higher,offpolicy=4``; with ``model=NAME``);
two presets that set the same field to different values are an error naming both:
- clip variants (App. D.1): ``clip_standard`` (0.2 / 0.2, the default), ``clip_higher`` (0.2 / 0.28),
  ``clip_lower`` (0.28 / 0.2: the lower side widened, our reading of "clip-lower"), ``clip_tighter``
  (0.12 / 0.2), ``clip_free`` (no clipping: no PPO clip and no dual clip);
- off-policy updates per batch: ``offpolicy=N`` for N in {1, 2, 4} (default 4): N mini-batches of
  256 / N prompts, one optimizer update each;
- entropy regularisation: ``entropy_reg`` (fixed coefficient 1e-3), ``entropy_adaptive`` (Skywork-OR1
  controller: target 0.2, delta 1e-4, max 5e-3);
- ``clip_cov`` (ratio 2e-4), ``kl_cov`` (ratio 2e-3, Cui et al.'s 7B recipe; no dual clip: KL-Cov has no
  clip), ``entropy_adv`` (Cheng et al., alpha 0.4, kappa 2);
- token subsets: ``non_negative`` (drop A < 0 tokens), ``non_positive`` (lambda = 0: drop A > 0 tokens);
- ``rand_pos_clip`` (zero the weight of a random 2e-4 share of A > 0 tokens);
- Positive-Advantage Reweighting: ``pos_adv=stage``, ``pos_adv=epoch``, ``pos_adv=entropy``
  (entropy-guided: target 0.2, delta 0.05, lambda_0 = 0), or ``pos_adv=0.5`` for a constant lambda.
"""

from configs import dapo_baseline
from configs._smoke import apply_smoke, parse_presets

DEFAULT_OFFPOLICY = 4  # App. E.2 / F.8


def _pos_adv(value):
    if value in ("stage", "epoch", "entropy"):
        return {"algo.pos_adv_mode": value}
    try:
        lam = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"pos_adv={value!r}: use stage, epoch, entropy or a number") from None
    return {"algo.pos_adv_mode": "constant", "algo.pos_adv_lambda": lam}


def _offpolicy(value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = None
    if n not in (1, 2, 4):
        raise ValueError(f"offpolicy={value!r}: the study uses N in {{1, 2, 4}} (e.g. offpolicy=2)")
    return {"offpolicy": n}


# preset -> (value -> {field: value}); "offpolicy" is N (mini-batches per rollout batch).
SETTINGS = {
    "clip_standard": lambda v: {"algo.clip_low": 0.2, "algo.clip_high": 0.2},
    "clip_higher": lambda v: {"algo.clip_low": 0.2, "algo.clip_high": 0.28},
    "clip_lower": lambda v: {"algo.clip_low": 0.28, "algo.clip_high": 0.2},
    "clip_tighter": lambda v: {"algo.clip_low": 0.12, "algo.clip_high": 0.2},
    "clip_free": lambda v: {"algo.loss_variant": "clip_free", "algo.clip_c": None},
    "offpolicy": _offpolicy,
    "entropy_reg": lambda v: {"algo.entropy_coef": 1e-3},
    "entropy_adaptive": lambda v: {
        "algo.entropy_adaptive": True,
        "algo.entropy_coef": 0.0,
        "algo.entropy_target": 0.2,
        "algo.entropy_delta": 1e-4,
        "algo.entropy_coef_max": 5e-3,
    },
    "clip_cov": lambda v: {"algo.loss_variant": "clip_cov", "algo.clip_cov_ratio": 2e-4},
    "kl_cov": lambda v: {"algo.loss_variant": "kl_cov", "algo.kl_cov_ratio": 2e-3, "algo.clip_c": None},
    "entropy_adv": lambda v: {"algo.entropy_adv": True},
    "non_negative": lambda v: {"algo.drop_negative_adv": True},
    "non_positive": lambda v: {"algo.pos_adv_mode": "constant", "algo.pos_adv_lambda": 0.0},
    "rand_pos_clip": lambda v: {"algo.rand_pos_clip": True},
    "pos_adv": _pos_adv,
}
VALUED = {"offpolicy", "pos_adv"}


def merge_settings(presets) -> dict:
    """The fields the setting presets set, merged; a field set to two different values is an error."""
    fields, by = {}, {}
    for name, value in presets:
        if name not in SETTINGS:
            continue
        if (value is not None) != (name in VALUED):
            need = "needs a value" if name in VALUED else "takes no value"
            raise ValueError(f"preset {name!r} {need}, got {value!r}")
        label = name if value is None else f"{name}={value}"
        for key, v in SETTINGS[name](value).items():
            if key in fields and fields[key] != v:
                raise ValueError(
                    f"presets {by[key]!r} and {label!r} conflict: both set {key} ({fields[key]!r} vs {v!r}); keep one"
                )
            fields[key], by[key] = v, label
    return fields


def get_config(arg: str | None = None):
    presets = parse_presets(arg, set(SETTINGS) | {"model", "smoke"})
    c = dapo_baseline.get_config(",".join(f"model={v}" for n, v in presets if n == "model"))
    c.rollout.prompts_per_step = 256
    c.rollout.group_size = 16
    c.rollout.max_new_tokens = 4096
    c.rollout.temperature = 1.0
    c.rollout.top_p = 1.0
    c.rollout.overlong_shaping = False
    c.algo.clip_low, c.algo.clip_high = 0.2, 0.2
    c.algo.clip_c = 3.0
    c.algo.loss_agg_mode = "token-mean"
    c.optim.schedule = "cosine"
    c.optim.lr = 1e-6
    c.train.num_steps = 500
    c.optim.total_steps = c.train.num_steps  # RL steps (converted to updates by train.config.optim_config)

    fields = merge_settings(presets)
    n = fields.pop("offpolicy", DEFAULT_OFFPOLICY)
    for key, v in fields.items():
        section, field = key.split(".")
        c[section][field] = v
    c.train.mini_batch_prompts = c.rollout.prompts_per_step // n
    if any(name == "smoke" for name, _ in presets):
        apply_smoke(c)
        c.train.mini_batch_prompts = max(1, c.rollout.prompts_per_step // n)
        c.train.micro_batch_size = min(c.train.micro_batch_size, c.train.mini_batch_prompts * c.rollout.group_size)
    return c
