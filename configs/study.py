"""The study of issue 27 at CPU scale: the methods both papers' claims need, on the testbed task.

Two kinds of ``get_config`` argument:

- a study, ``decomposing`` or ``revisiting`` (optionally ``,smoke`` and ``,steps=N``): a ConfigDict naming the
  grid (``variants``) and the paper claims it tests (``claims``), read by ``scripts/study.py``;
- one run of it, ``variant=STUDY/NAME`` (plus ``smoke`` / ``steps=N``): a training config for
  ``scripts/train.py``, which is how ``scripts/study.py`` starts every run (``--config.seed=S``, and the
  shared SFT warm start via ``--config.model.init_ckpt=... --config.sft.steps=0``).

A variant is ``configs/testbed.py`` (the demo's tiny char model, SFT warm start on a teacher with several
solution styles, GRPO on free-length additions; docs/study.md) with the algorithm settings of a paper
preset applied. They are *derived* from the paper config files (``dapo_baseline``, ``ppl_shaping``,
``position_shaping``, ``entropy_study``), never re-typed, so a fix to a preset flows into the study.
Scaling down (our choice, one rule per setting):

- copied as they are: the whole ``algo`` section (clip range, loss variant, aggregation, shaping and
  entropy-control coefficients and targets), ``train.position_auto``, the rollout
  temperature / top-p and whether DAPO overlong shaping is on, the schedule *shape* (constant / cosine);
- kept from the testbed: model, data, SFT, prompts per step (16), G (8; the papers use 8 / 16), max response
  (128 tokens), overlong buffer (32), learning rate, warmup and weight decay (the papers' 1e-6 is for 7B models);
- optimizer updates per rollout batch ``U = paper prompts_per_step / paper mini_batch_prompts`` (16 for
  the Decomposing baseline, the off-policy N of Revisiting) are kept, capped at the testbed's prompts per step:
  ``train.mini_batch_prompts = testbed prompts_per_step / U``;
- passes over each rollout batch: the paper preset's ``train.ppo_epochs`` times ``TESTBED_PASSES`` of its
  study (ours): 2 for Revisiting, whose N <= 4 updates per batch on the testbed's 16 prompts stay so close to
  on-policy that the baseline clips 0.1-0.2% of tokens (docs/study.md, pilots D and I: a second pass makes the
  updates off-policy enough to clip ~1%, as the issue's testbed asks); 1 for Decomposing, whose 16 gradient
  steps per batch (its "Experimental Setup") already are. N = 1 then makes 2 updates per batch and N = 4
  makes 8: the off-policy comparison is still fewer against more updates per batch;
- RL steps: the testbed's (150, or ``steps=N``); shaping windows ``(start, length)`` scale by
  ``steps / paper num_steps`` (e.g. position shaping (200, 100) of 500 -> (60, 30) of 150), and the cosine
  schedule's ``optim.total_steps`` = steps x U x ppo_epochs;
- epochs, for the epoch-wise Pos-Adv schedule: the paper run's number of passes over its training set
  (``paper num_steps x prompts_per_step / PAPER_TRAIN_PROMPTS``, rounded up: 8 for ``entropy_study``) is
  kept as ``train.schedule_epochs`` (the run split into that many equal phases). Without it the testbed's 150
  steps x 16 prompts = 0.4 passes over its 6000 problems would stay in epoch 1, where the schedule's
  lambda is 0 for the whole run (the variant would be ``non_positive``).

Variants: only those a claim of ``configs/study_claims.py`` needs (``DECOMPOSING``, ``REVISITING``); a variant
may add overrides of its own (ours, said where they are set): the gamma = 1.0 position ablation over the
whole run, the scaled entropy targets (``ENTROPY_TARGET``), the 600-problem data subset.
"""

import ml_collections

from configs import dapo_baseline, entropy_study, position_shaping, ppl_shaping, study_claims, testbed
from configs._smoke import parse_presets

# The paper presets' training set, DAPO-Math-17k: 17,917 prompts (the line count of
# ../shared/data/dapo_math_17k.jsonl); used only to count the paper run's epochs.
PAPER_TRAIN_PROMPTS = 17_917

PAPER_CONFIGS = {
    "dapo_baseline": dapo_baseline,
    "ppl_shaping": ppl_shaping,
    "position_shaping": position_shaping,
    "entropy_study": entropy_study,
}

# Revisiting's 0.2-nat targets (Ada-Ent-Reg, Pos-Adv-Reweight Entropy-guided) against its model's initial entropy,
# App. E.2: "set to the entropy of the LLM on responses to 1,000 randomly sampled training prompts before
# training, which equals 0.3657". 0.2 is ENTROPY_FRACTION = 0.547 of it; the study keeps that fraction of each
# seed's own initial entropy: scripts/study.py reads the mean token entropy of the seed's SFT run's RL step
# (the warm-started policy's rollouts, 16 prompts x 8) and passes ENTROPY_FRACTION x it to the variants of
# SCALED_TARGETS. ENTROPY_TARGET (with TESTBED_INITIAL_ENTROPY, a typical testbed value) is the default of
# a variant run by hand, outside the study.
PAPER_INITIAL_ENTROPY = 0.3657
ENTROPY_FRACTION = 0.2 / PAPER_INITIAL_ENTROPY
TESTBED_INITIAL_ENTROPY = 0.34  # pilot I of docs/study.md (0.3385 nats)
ENTROPY_TARGET = round(ENTROPY_FRACTION * TESTBED_INITIAL_ENTROPY, 4)
SCALED_TARGETS = {"entropy_adaptive": "algo.entropy_target", "pos_adv_entropy": "algo.pos_adv_target"}

# Passes over each rollout batch, times the paper preset's train.ppo_epochs (ours; module docstring)
TESTBED_PASSES = {"decomposing": 1, "revisiting": 2}

# variant -> (paper config module, its preset argument, overrides (ours; each says why in docs/study.md))
_G1 = {"train.position_window": (0, -1)}  # Fig. 7's ablation: the bonus over the whole run, not a window
DECOMPOSING = {
    "baseline": ("dapo_baseline", "", {}),
    "ppl": ("ppl_shaping", "", {}),
    "ppl_inverse": ("ppl_shaping", "inverse", {}),
    "position_late": ("position_shaping", "", {}),
    "position_late_g1": ("position_shaping", "gamma_ablation", _G1),
    "position_early_g1": ("position_shaping", "gamma_ablation,reverse", _G1),
}
# Only the settings a claim in configs/study_claims.py needs (issue 27: trim the grid to the claims).
REVISITING = {
    "baseline": ("entropy_study", "", {}),
    "offpolicy_1": ("entropy_study", "offpolicy=1", {}),
    **{n: ("entropy_study", n, {}) for n in ("clip_higher", "clip_lower", "clip_tighter", "clip_free")},
    "entropy_adaptive": ("entropy_study", "entropy_adaptive", {"algo.entropy_target": ENTROPY_TARGET}),
    **{n: ("entropy_study", n, {}) for n in ("clip_cov", "kl_cov", "entropy_adv", "rand_pos_clip")},
    **{n: ("entropy_study", n, {}) for n in ("non_negative", "non_positive")},
    "pos_adv_stage": ("entropy_study", "pos_adv=stage", {}),
    "pos_adv_epoch": ("entropy_study", "pos_adv=epoch", {}),
    "pos_adv_entropy": ("entropy_study", "pos_adv=entropy", {"algo.pos_adv_target": ENTROPY_TARGET}),
    "data_subset": ("entropy_study", "", {"data.synthetic_train": 600}),
}
STUDIES = {"decomposing": DECOMPOSING, "revisiting": REVISITING}
CLAIMS_FILE = "configs/study_claims.py"


def _scale_window(window, factor: float):
    start, length = tuple(window)
    start = int(round(start * factor))
    return (start, length if length == -1 else max(1, int(round(length * factor))))


def variant_config(study: str, name: str, *, smoke: bool = False, steps: int | None = None):
    """The training config of one variant: the testbed with the paper preset's algorithm settings (module
    docstring: what is copied, kept and scaled)."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r} (known: {', '.join(STUDIES)})")
    if name not in STUDIES[study]:
        raise ValueError(f"unknown variant {name!r} of study {study!r} (known: {', '.join(STUDIES[study])})")
    module, preset, overrides = STUDIES[study][name]
    paper = PAPER_CONFIGS[module].get_config(preset)
    c = testbed.get_config("smoke" if smoke else None)
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        c.train.num_steps = steps
    n = c.train.num_steps

    c.algo = paper.algo  # every algorithm setting, as the paper preset has it
    c.rollout.temperature = paper.rollout.temperature
    c.rollout.top_p = paper.rollout.top_p
    c.rollout.overlong_shaping = paper.rollout.overlong_shaping

    updates = max(1, paper.rollout.prompts_per_step // paper.train.mini_batch_prompts)
    updates = min(updates, c.rollout.prompts_per_step)
    if c.rollout.prompts_per_step % updates:
        raise ValueError(
            f"{module}:{preset} makes {updates} updates per rollout batch, which does not divide the testbed's "
            f"{c.rollout.prompts_per_step} prompts per step"
        )
    c.train.mini_batch_prompts = c.rollout.prompts_per_step // updates
    rows = c.train.mini_batch_prompts * c.rollout.group_size
    c.train.micro_batch_size = min(c.train.micro_batch_size, rows)
    c.train.ppo_epochs = paper.train.ppo_epochs * TESTBED_PASSES[study]
    factor = n / paper.train.num_steps
    c.train.ppl_window = _scale_window(paper.train.ppl_window, factor)
    c.train.position_window = _scale_window(paper.train.position_window, factor)
    c.train.position_auto = paper.train.position_auto
    c.train.dump_rollouts_every = 0
    c.optim.schedule = paper.optim.schedule
    c.optim.total_steps = n * updates * c.train.ppo_epochs
    paper_epochs = -(-paper.train.num_steps * paper.rollout.prompts_per_step // PAPER_TRAIN_PROMPTS)
    c.train.schedule_epochs = max(2, paper_epochs)
    for key, value in overrides.items():
        section, field = key.split(".")
        c[section][field] = value
    if smoke and "data.synthetic_train" in overrides:
        c.data.synthetic_train = min(c.data.synthetic_train, 100)
    return c


def sft_config(*, smoke: bool = False):
    """The shared warm start of a seed: the testbed's SFT, then one RL step (the trainer needs >= 1); its
    ``checkpoints/0`` (after SFT, before RL) is every variant's ``model.init_ckpt``."""
    c = testbed.get_config("smoke" if smoke else None)
    c.train.num_steps = 1
    c.train.dump_rollouts_every = 0
    c.checkpoint.keep = 4
    # ours: this run's own held-out evaluations are not used (every variant measures accuracy before RL from
    # the same checkpoint itself), so they take one sample per problem; the held-out split is unchanged
    c.data.heldout_samples = 1
    c.data.heldout_every = 0
    return c


def study_config(study: str, *, smoke: bool = False, steps: int | None = None):
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r} (known: {', '.join(STUDIES)})")
    s = ml_collections.ConfigDict()
    s.name = study
    s.config_file = __file__
    s.variants = list(STUDIES[study])
    s.smoke = smoke
    s.steps = steps if steps is not None else (testbed.get_config("smoke" if smoke else None).train.num_steps)
    s.claims = [dict(c) for c in study_claims.CLAIMS if c["paper"] == study]
    s.claims_file = CLAIMS_FILE
    s.scaled_targets = {v: f for v, f in SCALED_TARGETS.items() if v in STUDIES[study]}
    s.entropy_fraction = ENTROPY_FRACTION
    return s


def get_config(arg: str | None = None):
    presets = parse_presets(arg, {"variant", "smoke", "steps", *STUDIES})
    names = [n for n, _ in presets]
    smoke = "smoke" in names
    steps = next((int(v) for n, v in presets if n == "steps"), None)
    studies = [n for n in names if n in STUDIES]
    variant = next((v for n, v in presets if n == "variant"), None)
    if variant is not None:
        if studies:
            raise ValueError(f"give a study or variant=STUDY/NAME, not both (got {arg!r})")
        study, _, name = variant.partition("/")
        if study == "sft":
            return sft_config(smoke=smoke)
        return variant_config(study, name, smoke=smoke, steps=steps)
    if len(studies) != 1:
        raise ValueError(f"configs/study.py needs one of {', '.join(STUDIES)} or variant=STUDY/NAME, got {arg!r}")
    return study_config(studies[0], smoke=smoke, steps=steps)
