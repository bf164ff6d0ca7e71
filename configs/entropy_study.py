"""Every setting of "Revisiting Entropy in RL for Large Reasoning Models" (arXiv 2511.05993), as presets.

Base (App. B unless said): GRPO, 256 prompts x 16 samples, rollout T = 1.0 / top_p = 1.0, max response 4096
tokens, AdamW with a cosine schedule (peak lr 1e-6: the number is lost from the text we have, 1e-6 is
Deng's and verl's default), token-mean loss, clip 0.2 / 0.2 (verl's default: the text gives no number),
dual clip c = 3 (verl's clip_ratio_c), **N = 4 off-policy mini-batch updates per rollout batch** (E.2: "We
conduct experiments with [N] fixed at 4"; with N = 1 the ratio is exactly 1 and every clip variant is the
baseline). Warm-up (10 RL steps) and weight decay 0.1 are inherited from configs/dapo_baseline.py: not in
Revisiting's text. docs/training.md has the value / source table of every preset.

Evaluation protocol (App. B): the run validates on AIME 2025 every ``eval.every = 20`` RL steps (ours: the
paper gives no interval) with 64 samples at T = 1.0, top-p 1.0, and keeps the params of the best validation
(``eval.keep_best``, ``WORKDIR/best_validated/``); ``scripts/evaluate.py --config configs/eval.py:revisiting
--config.ckpt=WORKDIR`` then evaluates that checkpoint on the other benchmarks.

Presets combine (``pos_adv=entropy,offpolicy=2,smoke``; ``clip_higher,offpolicy=4``; with ``model=NAME``).
What each sets or rules out is declared in ``BEHAVIOURS``; two presets that set the same behaviour (or the
same field to different values), or where one rules out what the other sets, are an error naming both:
- clip variants (App. D.1): ``clip_standard`` (0.2 / 0.2, the default), ``clip_higher`` (0.2 / 0.28),
  ``clip_lower`` (0.28 / 0.2: the lower side widened, our reading of "clip-lower"), ``clip_tighter``
  (0.12 / 0.2), ``clip_free`` (no clipping: no PPO clip and no dual clip);
- off-policy updates per batch: ``offpolicy=N`` for N in {1, 2, 4} (default 4): N mini-batches of
  256 / N prompts, one optimizer update each;
- entropy regularisation: ``entropy_reg`` (fixed coefficient 1e-3, ours), ``entropy_adaptive`` (E.2
  setting (1), He et al.'s Skywork-OR1 controller: target 0.2, delta 1e-4, max 5e-3), ``adaptive_entropy``
  (5.1 / E.2 setting (2): the same controller with the threshold measured before RL as the initial model's
  response entropy on ``train.entropy_threshold_prompts = 1000`` training prompts -- "which equals 0.3657"
  for their model; logged, and ``--config.train.entropy_threshold_prompts=0 --config.algo.entropy_target=X``
  sets it by hand);
- ``clip_cov`` (ratio 2e-4, no dual clip: verl's ``compute_policy_loss_clip_cov`` has none), ``kl_cov``
  (ratio 2e-3, Cui et al.'s 7B recipe; no clip at all), ``entropy_adv`` (Cheng et al., alpha 0.4, kappa 2);
- token subsets ("trained exclusively on"): ``non_negative`` (A >= 0 tokens only), ``non_positive`` (lambda
  = 0: A <= 0 tokens only); the excluded tokens keep their place in the token-mean denominator
  (``algo.exclusive_tokens="zero_weight"``, how a weight on verl's pg_losses before its token mean behaves;
  ``--config.algo.exclusive_tokens=mask`` removes them from it: docs/algorithms.md);
- ``rand_pos_clip`` (E.2: zero as many random A > 0 tokens as Clip-Cov detaches in the same batch,
  ``algo.rand_pos_clip_match``: "we maintain the same proportion of tokens whose gradients are set to zero");
- Positive-Advantage Reweighting: ``pos_adv=stage``, ``pos_adv=epoch``, ``pos_adv=entropy``
  (entropy-guided: target 0.2, "around the target value of 0.2"; delta 0.05 and lambda_0 = 0 are ours), or
  ``pos_adv=0.5`` for a constant lambda;
- training-data diversity (6.3 / App. D.3, Table 3): ``data_subset=kmeans_616`` ... ``data_subset=random_10001``
  (``kmeans`` or ``random``, sizes 10001, 5031, 2538, 1246, 616) sets ``data.path`` to
  ``SUBSETS_DIR/<name>.jsonl`` and nothing else (D.3: "trained with RLVR on all subsets using identical
  hyperparameters"); ``subsets_dir=DIR`` (default ``data/table3_subsets``, ours) names the folder that
  ``scripts/data_subsets.py --out DIR`` wrote. A missing file is an error naming that command.
"""

import pathlib

from configs import dapo_baseline
from configs._smoke import apply_smoke, parse_presets

DEFAULT_OFFPOLICY = 4  # App. E.2 / F.8
ENTROPY_THRESHOLD_PROMPTS = 1000  # 5.1: "we randomly sample 1,000 prompts from the training set"
VALIDATION_EVERY = 20  # ours: App. B names the validation set, not how often it ran
TABLE3_SIZES = (10001, 5031, 2538, 1246, 616)  # App. D.3: "subsets of 10,001, 5,031, 2,538, 1,246, and 616 samples"
DATA_SUBSETS = tuple(f"{kind}_{n}" for kind in ("kmeans", "random") for n in TABLE3_SIZES)
DEFAULT_SUBSETS_DIR = "data/table3_subsets"  # ours: where the docs' scripts/data_subsets.py command writes


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


def data_subset(presets) -> str | None:
    """The ``data.path`` of the ``data_subset=NAME`` / ``subsets_dir=DIR`` presets (None without them). Not a
    ``SETTINGS`` entry: it changes the data, not the objective, so it combines with every setting."""
    names = [v for n, v in presets if n == "data_subset"]
    dirs = [v for n, v in presets if n == "subsets_dir"]
    if len(names) > 1 or len(dirs) > 1:
        raise ValueError(f"give data_subset / subsets_dir once each, got {names + dirs}")
    if dirs and not names:
        raise ValueError(f"subsets_dir={dirs[0]} is given without data_subset=NAME (e.g. data_subset=kmeans_616)")
    if not names:
        return None
    if names[0] not in DATA_SUBSETS:
        raise ValueError(f"data_subset={names[0]!r}: use one of Table 3's {', '.join(DATA_SUBSETS)}")
    if dirs and not dirs[0]:
        raise ValueError("subsets_dir needs a folder: subsets_dir=DIR")
    return subset_path(names[0], dirs[0] if dirs else None)


def subset_path(name: str, subsets_dir: str | None) -> str:
    """``SUBSETS_DIR/<name>.jsonl``; a missing file is a ``ValueError`` naming the command that builds it."""
    folder = subsets_dir or DEFAULT_SUBSETS_DIR
    path = pathlib.Path(folder) / f"{name}.jsonl"
    if not path.is_file():
        raise ValueError(
            f"data_subset={name}: {path} not found; build Table 3's subsets with: python scripts/data_subsets.py "
            f"--config configs/entropy_study.py --config.model.hf_path=MODEL --config.data.path=FULL.jsonl "
            f"--out {folder} (or name their folder with subsets_dir=DIR)"
        )
    return str(path)


SKYWORK_CONTROLLER = {
    "algo.entropy_adaptive": True,
    "algo.entropy_coef": 0.0,
    "algo.entropy_delta": 1e-4,
    "algo.entropy_coef_max": 5e-3,
}

# preset -> (value -> {field: value}); "offpolicy" is N (mini-batches per rollout batch).
SETTINGS = {
    "clip_standard": lambda v: {"algo.clip_low": 0.2, "algo.clip_high": 0.2},
    "clip_higher": lambda v: {"algo.clip_low": 0.2, "algo.clip_high": 0.28},
    "clip_lower": lambda v: {"algo.clip_low": 0.28, "algo.clip_high": 0.2},
    "clip_tighter": lambda v: {"algo.clip_low": 0.12, "algo.clip_high": 0.2},
    "clip_free": lambda v: {"algo.loss_variant": "clip_free", "algo.clip_c": None},
    "offpolicy": _offpolicy,
    "entropy_reg": lambda v: {"algo.entropy_coef": 1e-3},
    "entropy_adaptive": lambda v: {**SKYWORK_CONTROLLER, "algo.entropy_target": 0.2},
    "adaptive_entropy": lambda v: {**SKYWORK_CONTROLLER, "train.entropy_threshold_prompts": ENTROPY_THRESHOLD_PROMPTS},
    "clip_cov": lambda v: {"algo.loss_variant": "clip_cov", "algo.clip_cov_ratio": 2e-4, "algo.clip_c": None},
    "kl_cov": lambda v: {"algo.loss_variant": "kl_cov", "algo.kl_cov_ratio": 2e-3, "algo.clip_c": None},
    "entropy_adv": lambda v: {"algo.entropy_adv": True},
    "non_negative": lambda v: {"algo.drop_negative_adv": True},
    "non_positive": lambda v: {"algo.pos_adv_mode": "constant", "algo.pos_adv_lambda": 0.0},
    "rand_pos_clip": lambda v: {"algo.rand_pos_clip": True, "algo.rand_pos_clip_match": True},
    "pos_adv": _pos_adv,
}
VALUED = {"offpolicy", "pos_adv"}

# What each preset does to the objective: (behaviours it sets, behaviours it rules out). A behaviour set
# by two presets, or set by one and ruled out by another, is a clash (one of the two would do nothing, or
# together they leave nothing to train).
BEHAVIOURS = {
    "clip_standard": ({"clip range"}, set()),
    "clip_higher": ({"clip range"}, set()),
    "clip_lower": ({"clip range"}, set()),
    "clip_tighter": ({"clip range"}, set()),
    "clip_free": ({"policy loss"}, {"clip range"}),
    "clip_cov": ({"policy loss"}, set()),
    "kl_cov": ({"policy loss"}, {"clip range"}),
    "offpolicy": ({"updates per batch"}, set()),
    "entropy_reg": ({"entropy bonus"}, set()),
    "entropy_adaptive": ({"entropy bonus"}, set()),
    "adaptive_entropy": ({"entropy bonus"}, set()),
    "entropy_adv": ({"advantage bonus"}, set()),
    "non_negative": ({"token subset"}, set()),
    "non_positive": ({"token subset", "A > 0 weight"}, {"A > 0 tokens"}),
    "rand_pos_clip": ({"A > 0 tokens"}, set()),
    "pos_adv": ({"A > 0 weight"}, set()),
}
WHY = {
    "clip range": "there is no clip range",
    "token subset": "A >= 0 only and A <= 0 only together leave no token a policy-gradient weight",
    "A > 0 tokens": "no A > 0 token is trained on",
}


def check_behaviours(names) -> None:
    """Raises ``ValueError`` naming both presets when two of ``names`` clash (``BEHAVIOURS``)."""
    names = list(dict.fromkeys(names))
    for i, a in enumerate(names):
        sets_a, rules_out_a = BEHAVIOURS.get(a, (set(), set()))
        for b in names[i + 1 :]:
            sets_b, rules_out_b = BEHAVIOURS.get(b, (set(), set()))
            for x, y, ruled, sets in ((a, b, rules_out_a, sets_b), (b, a, rules_out_b, sets_a)):
                hit = sorted(ruled & sets)
                if hit:
                    raise ValueError(
                        f"presets {x!r} and {y!r} conflict: {y!r} acts on the {hit[0]}, but with {x!r} "
                        f"{WHY.get(hit[0], 'there is none')}; keep one"
                    )
            both = sorted(sets_a & sets_b)
            if both:
                why = f" ({WHY[both[0]]})" if both[0] in WHY else ""
                raise ValueError(f"presets {a!r} and {b!r} conflict: both set the {both[0]}{why}; keep one")


def merge_settings(presets) -> dict:
    """The fields the setting presets set, merged; a field set to two different values, or two presets that
    clash in ``BEHAVIOURS``, is an error naming both."""
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
    check_behaviours([name for name, _ in presets if name in SETTINGS])
    return fields


def get_config(arg: str | None = None):
    presets = parse_presets(arg, set(SETTINGS) | {"model", "smoke", "data_subset", "subsets_dir"})
    subset = data_subset(presets)
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
    # App. B's protocol: AIME 2025 validation, 64 samples at T = 1.0 / top-p 1.0, the best checkpoint kept
    c.eval.every = VALIDATION_EVERY
    c.eval.benchmarks = "aime25"
    c.eval.num_samples, c.eval.temperature, c.eval.top_p = 64, 1.0, 1.0
    c.eval.keep_best = True

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
        c.eval.every = 0  # the smoke run validates only when asked (--config.eval.every=1)
        c.eval.num_samples = 2
        if c.train.entropy_threshold_prompts:
            c.train.entropy_threshold_prompts = c.rollout.prompts_per_step
    if subset:  # after smoke, which clears data.path: a subset is kept like a --config.data.path
        c.data.path = subset
    return c
