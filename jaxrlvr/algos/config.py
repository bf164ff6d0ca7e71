"""``AlgoConfig`` (static, hashable) and ``StepState`` (traced per-step knobs) for the composition point.

The trainer builds one ``AlgoConfig`` from ``config.algo`` (``AlgoConfig.from_dict``), passes it as a
static argument to its jitted step, starts from ``initial_step_state(config)``, and before every later
step calls ``advance_step_state``; the result goes into ``shape_advantages`` / ``token_loss``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrlvr.algos.advantages import ADV_SCALES
from jaxrlvr.algos.entropy import AdaptiveEntropyState, adaptive_entropy_coef, adaptive_entropy_update
from jaxrlvr.algos.losses import AGG_MODES, KL_KINDS
from jaxrlvr.algos.offpolicy import STALE_CORRECTIONS
from jaxrlvr.algos.schedules import (
    pos_adv_lambda_entropy_update,
    pos_adv_lambda_epoch,
    pos_adv_lambda_stage,
)

LOSS_VARIANTS = ("clip", "clip_free", "clip_cov", "kl_cov")
POS_ADV_MODES = ("off", "constant", "stage", "epoch", "entropy")
EXCLUSIVE_TOKENS = ("zero_weight", "mask")


@dataclasses.dataclass(frozen=True)
class AlgoConfig:
    """Every algorithm knob, flat, so that ``--config.algo.<field>=...`` maps one to one.

    Frozen and hashable: pass it as a static argument to ``jax.jit``. ``__post_init__`` validates every
    field and raises ``ValueError`` naming the field and the value. Defaults give plain GRPO with DAPO's
    clip-higher and token-mean loss; every shaping / weighting variant is off.
    """

    # --- group advantages (group_advantages) ---
    group_size: int = 8
    adv_scale: str = "group"  # group | batch | none (Dr. GRPO)
    adv_eps: float = 1e-6
    # --- PPL-based shaping (Deng et al. 2025, Eq. 7 + 9) ---
    ppl_shaping: bool = False
    ppl_alpha: float = 0.01
    ppl_eps: float = 1e-6
    # --- position-based shaping (Deng et al. 2025, Eq. 8 + 10); (m, n) = POSITION_CENTRED (see shaping.py) ---
    position_shaping: bool = False
    position_gamma: float = 0.1
    position_direction: float = 1.0
    position_m: float = 15.0
    position_n: float = 0.5
    # --- entropy-based advantage (Cheng et al. 2025) ---
    entropy_adv: bool = False
    entropy_adv_alpha: float = 0.4
    entropy_adv_kappa: float = 2.0
    # --- policy loss ---
    loss_variant: str = "clip"  # clip | clip_free | clip_cov | kl_cov
    clip_low: float = 0.2
    clip_high: float = 0.28
    clip_c: float | None = None  # dual clip (> 1); every variant except "kl_cov"
    log_ratio_clamp: float = 20.0
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-3  # Cui et al.'s 7B recipe (2e-4 is their clip_cov_ratio)
    kl_cov_coef: float = 1.0
    # --- aggregation ---
    loss_agg_mode: str = "token-mean"
    loss_norm_len: int | None = None  # seq-mean-token-sum-norm denominator length (None: T)
    # --- KL to the reference policy (off when kl_coef == 0) ---
    kl_coef: float = 0.0
    kl_kind: str = "k3"
    # --- entropy regularisation; the coefficient used is StepState.entropy_coef ---
    entropy_coef: float = 0.0  # fixed coefficient, or the controller's initial value when adaptive
    entropy_adaptive: bool = False
    entropy_target: float = 0.2
    entropy_delta: float = 1e-4
    entropy_coef_max: float = 5e-3
    entropy_coef_min: float = 0.0
    # --- Positive-Advantage Reweighting; lam is StepState.lam ---
    pos_adv_mode: str = "off"  # off | constant | stage | epoch | entropy
    pos_adv_lambda: float = 1.0  # the constant-mode value
    pos_adv_stage_start: float = 0.5
    pos_adv_target: float = 0.2
    pos_adv_delta: float = 0.05
    pos_adv_lambda_init: float = 0.0  # lam_0 of the entropy-guided controller
    # --- other token weights / masks ---
    drop_negative_adv: bool = False  # neg_adv_weights: train on non-negative tokens only
    rand_pos_clip: bool = False
    rand_pos_clip_ratio: float = 2e-4
    rand_pos_clip_match: bool = False  # zero as many A > 0 tokens as Clip-Cov would detach in the same batch
    # "zero_weight": excluded tokens (drop_negative_adv, lambda = 0) keep their place in the token-mean
    # denominator; "mask": they leave it (docs/algorithms.md, "Trained exclusively on")
    exclusive_tokens: str = "zero_weight"
    high_entropy_only: bool = False
    high_entropy_fraction: float = 0.2
    mask_truncated: bool = False
    # --- stale rollouts (rollout.max_staleness > 0; algos.offpolicy, docs/algorithms.md "Stale rollouts") ---
    stale_correction: str = "tis"  # tis | decoupled | behaviour
    stale_cap: float = 2.0  # ours: the importance weight's bound (tis: truncated at it; decoupled: dropped above)

    def __post_init__(self):
        def fail(name, why):
            raise ValueError(f"AlgoConfig.{name} {why}, got {getattr(self, name)!r}")

        def check_bool(name):
            if not isinstance(getattr(self, name), bool):
                fail(name, "must be a bool")

        def check_num(name, *, lo=None, hi=None, lo_open=False, allow_inf=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                fail(name, "must be a number")
            if math.isnan(v) or (math.isinf(v) and not allow_inf):
                fail(name, "must be finite")
            if lo is not None and (v <= lo if lo_open else v < lo):
                fail(name, f"must be {'>' if lo_open else '>='} {lo}")
            if hi is not None and v > hi:
                fail(name, f"must be <= {hi}")

        def check_choice(name, choices):
            if getattr(self, name) not in choices:
                fail(name, f"must be one of {choices}")

        g = self.group_size
        if isinstance(g, bool) or not isinstance(g, int) or g < 2:
            fail("group_size", "must be an integer >= 2")
        check_choice("adv_scale", ADV_SCALES)
        check_choice("loss_variant", LOSS_VARIANTS)
        check_choice("loss_agg_mode", AGG_MODES)
        check_choice("kl_kind", KL_KINDS)
        check_choice("pos_adv_mode", POS_ADV_MODES)
        check_choice("exclusive_tokens", EXCLUSIVE_TOKENS)
        check_choice("stale_correction", STALE_CORRECTIONS)
        check_num("stale_cap", lo=1.0, lo_open=True)
        for name in (
            "ppl_shaping",
            "position_shaping",
            "entropy_adv",
            "entropy_adaptive",
            "drop_negative_adv",
            "rand_pos_clip",
            "rand_pos_clip_match",
            "high_entropy_only",
            "mask_truncated",
        ):
            check_bool(name)
        for name in ("adv_eps", "ppl_eps", "log_ratio_clamp", "entropy_adv_kappa"):
            check_num(name, lo=0.0, lo_open=True)
        for name in ("ppl_alpha", "position_gamma", "position_direction", "position_m", "position_n"):
            check_num(name)
        for name in ("clip_low", "clip_high"):
            check_num(name, lo=0.0, allow_inf=True)
        if self.clip_c is not None:
            check_num("clip_c", lo=1.0, lo_open=True)
        for name in ("clip_cov_ratio", "kl_cov_ratio", "rand_pos_clip_ratio", "high_entropy_fraction"):
            check_num(name, lo=0.0, hi=1.0, lo_open=True)
        check_num("clip_cov_lb")
        check_num("clip_cov_ub")
        if not self.clip_cov_lb < self.clip_cov_ub:
            fail("clip_cov_ub", f"must be > clip_cov_lb={self.clip_cov_lb}")
        for name in ("entropy_adv_alpha", "kl_cov_coef", "kl_coef", "entropy_target", "entropy_delta"):
            check_num(name, lo=0.0)
        check_num("entropy_coef")
        check_num("entropy_coef_min")
        check_num("entropy_coef_max")
        if not self.entropy_coef_min <= self.entropy_coef_max:
            fail("entropy_coef_max", f"must be >= entropy_coef_min={self.entropy_coef_min}")
        if self.entropy_adaptive and not self.entropy_coef_min <= self.entropy_coef <= self.entropy_coef_max:
            fail(
                "entropy_coef",
                "(the adaptive controller's initial value) must lie in "
                f"[entropy_coef_min, entropy_coef_max] = [{self.entropy_coef_min}, {self.entropy_coef_max}]",
            )
        check_num("pos_adv_lambda", lo=0.0)
        check_num("pos_adv_stage_start", lo=0.0, hi=1.0)
        check_num("pos_adv_target", lo=0.0)
        check_num("pos_adv_delta", lo=0.0)
        check_num("pos_adv_lambda_init", lo=0.0, hi=1.0)
        if self.rand_pos_clip_match and not self.rand_pos_clip:
            fail("rand_pos_clip_match", "needs rand_pos_clip=True (it sets how many A > 0 tokens that zeroes)")
        n = self.loss_norm_len
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
            fail("loss_norm_len", "must be None or a positive integer")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlgoConfig:
        """Build from a mapping (e.g. ``config.algo.to_dict()``); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown AlgoConfig key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**dict(d))

    # ---- derived, static ----
    @property
    def uses_kl(self) -> bool:
        return self.kl_coef != 0.0

    @property
    def uses_entropy_bonus(self) -> bool:
        return self.entropy_adaptive or self.entropy_coef != 0.0

    @property
    def needs_entropy(self) -> bool:
        """Whether ``token_loss`` needs ``entropy_BT``."""
        return self.uses_entropy_bonus or self.entropy_adv or self.high_entropy_only

    @property
    def needs_rng(self) -> bool:
        """Whether ``token_loss`` needs ``rng``."""
        return self.loss_variant == "clip_cov" or self.rand_pos_clip

    @property
    def clip_bounds(self) -> tuple[float, float]:
        if self.loss_variant == "clip_free":
            return math.inf, math.inf
        return self.clip_low, self.clip_high


class StepState(NamedTuple):
    """Per-step knobs, all float32 scalars (a pytree, so traced: changing them never recompiles).

    lam: Positive-Advantage Reweighting weight on ``A > 0`` tokens (used when ``pos_adv_mode != "off"``).
    entropy_coef: coefficient of the entropy bonus applied this step (0 turns it off).
    ppl_active, position_active: 0/1 multipliers of the PPL / position shaping (e.g. on only in the
      plateau stage); only read when the shaping is enabled in the config.
    adaptive_coef: running coefficient of the adaptive entropy controller (Skywork-OR1); ``entropy_coef``
      is this value while the entropy is below target and 0 otherwise.
    """

    lam: jax.Array
    entropy_coef: jax.Array
    ppl_active: jax.Array
    position_active: jax.Array
    adaptive_coef: jax.Array


def initial_step_state(config: AlgoConfig) -> StepState:
    """Knobs of step 0: ``lam`` from the schedule at its start (constant: ``pos_adv_lambda``; stage /
    epoch: 0; entropy-guided: ``pos_adv_lambda_init``), ``entropy_coef = config.entropy_coef`` (for the
    adaptive controller too: no entropy has been measured yet), both shaping multipliers 1."""
    lam = {
        "off": 1.0,
        "constant": config.pos_adv_lambda,
        "stage": 0.0,
        "epoch": 0.0,
        "entropy": config.pos_adv_lambda_init,
    }[config.pos_adv_mode]
    return StepState(
        lam=jnp.float32(lam),
        entropy_coef=jnp.float32(config.entropy_coef),
        ppl_active=jnp.float32(1.0),
        position_active=jnp.float32(1.0),
        adaptive_coef=jnp.float32(config.entropy_coef),
    )


def advance_step_state(
    config: AlgoConfig,
    state: StepState,
    *,
    step=None,
    total_steps: int | None = None,
    epoch=None,
    num_epochs: int | None = None,
    entropy=None,
    ppl_active=None,
    position_active=None,
) -> StepState:
    """Knobs for (0-based) step ``step`` from those of the previous step. Pure; jittable with ``config``,
    ``total_steps`` and ``num_epochs`` static.

    Args:
      step: needed by ``pos_adv_mode="stage"`` (with ``total_steps``).
      epoch: 1-based epoch, needed by ``pos_adv_mode="epoch"`` (with ``num_epochs``).
      entropy: the most recent measured mean token entropy (nats); needed by ``pos_adv_mode="entropy"``
        and by ``entropy_adaptive``. Both controllers move by one delta per call.
      ppl_active, position_active: new 0/1 values (e.g. from a stage detector); None keeps the old ones.
    """

    def need(name, value, why):
        if value is None:
            raise ValueError(f"advance_step_state needs {name}= because {why}")

    lam = state.lam
    mode = config.pos_adv_mode
    if mode == "stage":
        need("step", step, "pos_adv_mode='stage'")
        need("total_steps", total_steps, "pos_adv_mode='stage'")
        lam = pos_adv_lambda_stage(step, total_steps=total_steps, start_fraction=config.pos_adv_stage_start)
    elif mode == "epoch":
        need("epoch", epoch, "pos_adv_mode='epoch'")
        need("num_epochs", num_epochs, "pos_adv_mode='epoch'")
        lam = pos_adv_lambda_epoch(epoch, num_epochs=num_epochs)
    elif mode == "entropy":
        need("entropy", entropy, "pos_adv_mode='entropy'")
        lam = pos_adv_lambda_entropy_update(
            state.lam, entropy, target=config.pos_adv_target, delta=config.pos_adv_delta
        )

    entropy_coef, adaptive_coef = state.entropy_coef, state.adaptive_coef
    if config.entropy_adaptive:
        need("entropy", entropy, "entropy_adaptive=True")
        ctrl = adaptive_entropy_update(
            AdaptiveEntropyState(coef=state.adaptive_coef),
            entropy,
            target=config.entropy_target,
            delta=config.entropy_delta,
            max_coef=config.entropy_coef_max,
            min_coef=config.entropy_coef_min,
        )
        adaptive_coef = ctrl.coef
        entropy_coef = adaptive_entropy_coef(ctrl, entropy, target=config.entropy_target)

    def keep_or(new, old):
        return old if new is None else jnp.asarray(new, dtype=jnp.float32)

    return StepState(
        lam=jnp.asarray(lam, dtype=jnp.float32),
        entropy_coef=jnp.asarray(entropy_coef, dtype=jnp.float32),
        ppl_active=keep_or(ppl_active, state.ppl_active),
        position_active=keep_or(position_active, state.position_active),
        adaptive_coef=jnp.asarray(adaptive_coef, dtype=jnp.float32),
    )
