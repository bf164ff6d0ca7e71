"""A replication study at CPU scale: every method of both papers on the embedded demo task (issue 19).

Two kinds of ``get_config`` argument:

- a study, ``decomposing`` or ``revisiting`` (optionally ``,smoke`` and ``,steps=N``): a ConfigDict naming the
  grid (``variants``) and the paper claims it tests (``claims``), read by ``scripts/study.py``;
- one run of it, ``variant=STUDY/NAME`` (plus ``smoke`` / ``steps=N``): a training config for
  ``scripts/train.py``, which is how ``scripts/study.py`` starts every run (``--config.seed=S``, and the
  shared SFT warm start via ``--config.model.init_ckpt=... --config.sft.steps=0``).

A variant is ``configs/demo.py`` (tiny char model, SFT warm start, GRPO on 2-digit additions) with the
algorithm settings of a paper preset applied. They are *derived* from the paper config files
(``dapo_baseline``, ``ppl_shaping``, ``position_shaping``, ``entropy_study``), never re-typed, so a fix to a
preset flows into the study. Scaling down (our choice, one rule per setting):

- copied as they are: the whole ``algo`` section (clip range, loss variant, aggregation, shaping and
  entropy-control coefficients and targets), ``train.ppo_epochs``, ``train.position_auto``, the rollout
  temperature / top-p and whether DAPO overlong shaping is on, the schedule *shape* (constant / cosine);
- kept from the demo: model, data, SFT, prompts per step (16), G (8; the papers use 8 / 16), max response
  (40 tokens), overlong buffer, learning rate, warmup and weight decay (the papers' 1e-6 is for 7B models);
- optimizer updates per rollout batch ``U = paper prompts_per_step / paper mini_batch_prompts`` (16 for
  the Decomposing baseline, the off-policy N of Revisiting) are kept, capped at the demo's prompts per step:
  ``train.mini_batch_prompts = demo prompts_per_step / U``;
- RL steps: the demo's (150, or ``steps=N``); shaping windows ``(start, length)`` scale by
  ``steps / paper num_steps`` (e.g. position shaping (200, 100) of 500 -> (60, 30) of 150), and the cosine
  schedule's ``optim.total_steps`` = steps x U x ppo_epochs;
- epochs, for the epoch-wise Pos-Adv schedule: the paper run's number of passes over its training set
  (``paper num_steps x prompts_per_step / PAPER_TRAIN_PROMPTS``, rounded up: 8 for ``entropy_study``) is
  kept as ``train.schedule_epochs`` (the run split into that many equal phases). Without it the demo's 150
  steps x 16 prompts = 0.4 passes over its 6000 problems would stay in epoch 1, where the schedule's
  lambda is 0 for the whole run (the variant would be ``non_positive``).

Variants. ``decomposing`` (arXiv 2508.02260): ``baseline`` (DAPO), ``ppl`` (alpha = 0.01), ``ppl_inverse``
(alpha = -0.01), ``position_late`` (the position-shaping preset's default: the bonus grows towards late
positions), ``position_early`` (its ``reverse``: direction = -1, towards early positions; our reading of
"early"). ``revisiting`` (arXiv 2511.05993): ``baseline`` (the entropy_study default preset, whatever its
off-policy N is), then one variant per setting preset (see ``REVISITING``).
"""

import ml_collections

from configs import dapo_baseline, entropy_study, position_shaping, ppl_shaping, testbed
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

# variant name -> (paper config module, its preset argument)
DECOMPOSING = {
    "baseline": ("dapo_baseline", ""),
    "ppl": ("ppl_shaping", ""),
    "ppl_inverse": ("ppl_shaping", "inverse"),
    "position_late": ("position_shaping", ""),
    "position_early": ("position_shaping", "reverse"),
}
# clip_standard is the default (the baseline); offpolicy=N is not in the grid of issue 19; pos_adv is
# expanded into its three schedules. A setting added to entropy_study joins the grid by itself.
_REVISITING_SETTINGS = sorted(set(entropy_study.SETTINGS) - {"clip_standard", "offpolicy", "pos_adv"})
REVISITING = {
    "baseline": ("entropy_study", ""),
    **{name: ("entropy_study", name) for name in _REVISITING_SETTINGS},
    **{f"pos_adv_{m}": ("entropy_study", f"pos_adv={m}") for m in ("stage", "epoch", "entropy")},
}
STUDIES = {"decomposing": DECOMPOSING, "revisiting": REVISITING}

# The paper claims each study tests: variant ``a`` vs variant ``b`` on a metric of jaxrlvr.analysis.study
# (``accuracy_after`` = held-out accuracy after RL, ``entropy_final`` = mean token entropy over the last
# 10% of steps), ``expect`` = ">" (a above b) or "<". ``where`` points into the paper; the direction is our
# reading of the paper's text where it says "our reading".
_DEC = "Decomposing the Entropy-Performance Exchange (arXiv 2508.02260)"
_REV = "Revisiting Entropy in RL for Large Reasoning Models (arXiv 2511.05993)"
CLAIMS = {
    "decomposing": [
        dict(a="ppl", b="baseline", metric="accuracy_after", expect=">", paper=_DEC,
             where="PPL-based advantage shaping (Eq. 7 + 9) improves on the DAPO baseline"),
        dict(a="ppl", b="ppl_inverse", metric="accuracy_after", expect=">", paper=_DEC,
             where="the inverse-sign ablation of PPL shaping does worse"),
        dict(a="position_late", b="baseline", metric="accuracy_after", expect=">", paper=_DEC,
             where="position-based shaping (Eq. 8 + 10) improves on the DAPO baseline"),
        dict(a="position_late", b="position_early", metric="accuracy_after", expect=">", paper=_DEC,
             where="favouring late positions beats favouring early ones (our reading of the direction ablation)"),
        dict(a="position_early", b="position_late", metric="length_final", expect="<", paper=_DEC,
             where="the reversed position bonus (favouring early tokens) gives shorter responses (issue 19's reading)"),
        dict(a="position_early", b="baseline", metric="length_final", expect="<", paper=_DEC,
             where="the reversed position bonus shortens responses against the baseline (issue 19's reading)"),
    ],
    "revisiting": [
        dict(a="clip_higher", b="baseline", metric="entropy_final", expect=">", paper=_REV,
             where="clipping thresholds: a wider upper clip keeps entropy higher"),
        dict(a="clip_lower", b="baseline", metric="entropy_final", expect="<", paper=_REV,
             where="clipping thresholds: a wider lower clip lowers entropy (our reading)"),
        dict(a="non_negative", b="baseline", metric="entropy_final", expect="<", paper=_REV,
             where="positive-advantage tokens drive entropy collapse: training on them alone collapses faster"),
        dict(a="non_positive", b="baseline", metric="entropy_final", expect=">", paper=_REV,
             where="positive-advantage tokens drive entropy collapse: without them entropy stays higher"),
        dict(a="entropy_reg", b="baseline", metric="entropy_final", expect=">", paper=_REV,
             where="entropy regularisation (fixed coefficient) keeps entropy higher"),
        dict(a="entropy_adaptive", b="baseline", metric="entropy_final", expect=">", paper=_REV,
             where="adaptive entropy regularisation keeps entropy higher"),
        dict(a="clip_cov", b="baseline", metric="entropy_final", expect=">", paper=_REV,
             where="Clip-Cov (Cui et al.) keeps entropy higher"),
        dict(a="kl_cov", b="baseline", metric="entropy_final", expect=">", paper=_REV,
             where="KL-Cov (Cui et al.) keeps entropy higher"),
        dict(a="entropy_adv", b="baseline", metric="entropy_final", expect=">", paper=_REV,
             where="Entropy-Adv (Cheng et al.), an entropy-control method, keeps entropy higher"),
        *[
            dict(a=f"pos_adv_{m}", b="baseline", metric="entropy_final", expect=">", paper=_REV,
                 where=f"Positive-Advantage Reweighting ({m} schedule) regulates entropy upwards")
            for m in ("stage", "epoch", "entropy")
        ],
        *[
            dict(a=f"pos_adv_{m}", b="baseline", metric="accuracy_after", expect=">", paper=_REV,
                 where=f"Positive-Advantage Reweighting ({m}) keeps or improves accuracy (our reading: '>')")
            for m in ("stage", "epoch", "entropy")
        ],
    ],
}  # fmt: skip


def _scale_window(window, factor: float):
    start, length = tuple(window)
    start = int(round(start * factor))
    return (start, length if length == -1 else max(1, int(round(length * factor))))


def variant_config(study: str, name: str, *, smoke: bool = False, steps: int | None = None):
    """The training config of one variant: the demo with the paper preset's algorithm settings (module
    docstring: what is copied, kept and scaled)."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r} (known: {', '.join(STUDIES)})")
    if name not in STUDIES[study]:
        raise ValueError(f"unknown variant {name!r} of study {study!r} (known: {', '.join(STUDIES[study])})")
    module, preset = STUDIES[study][name]
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
            f"{module}:{preset} makes {updates} updates per rollout batch, which does not divide the demo's "
            f"{c.rollout.prompts_per_step} prompts per step"
        )
    c.train.mini_batch_prompts = c.rollout.prompts_per_step // updates
    rows = c.train.mini_batch_prompts * c.rollout.group_size
    c.train.micro_batch_size = min(c.train.micro_batch_size, rows)
    c.train.ppo_epochs = paper.train.ppo_epochs
    factor = n / paper.train.num_steps
    c.train.ppl_window = _scale_window(paper.train.ppl_window, factor)
    c.train.position_window = _scale_window(paper.train.position_window, factor)
    c.train.position_auto = paper.train.position_auto
    c.train.dump_rollouts_every = 0
    c.optim.schedule = paper.optim.schedule
    c.optim.total_steps = n * updates * c.train.ppo_epochs
    paper_epochs = -(-paper.train.num_steps * paper.rollout.prompts_per_step // PAPER_TRAIN_PROMPTS)
    c.train.schedule_epochs = max(2, paper_epochs)
    return c


def sft_config(*, smoke: bool = False):
    """The shared warm start of a seed: the demo's SFT, then one RL step (the trainer needs >= 1); its
    ``checkpoints/0`` (after SFT, before RL) is every variant's ``model.init_ckpt``."""
    c = testbed.get_config("smoke" if smoke else None)
    c.train.num_steps = 1
    c.train.dump_rollouts_every = 0
    c.checkpoint.keep = 4
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
    s.claims = [dict(c) for c in CLAIMS[study]]
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
