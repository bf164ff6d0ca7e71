"""The pure jitted pieces of an RL update: train state, optimizer, scoring forward, and ``train_step``.

A rollout batch is laid out as ``input_ids_BS`` = left-padded prompt (``P`` columns) + response (``R``
columns, right-padded), with ``attention_mask_BS`` marking real tokens. Response token ``t`` sits at column
``P + t`` and is predicted from the hidden state at column ``P + t - 1``; every per-token array of the loss
(``old_logp``, ``adv``, ``mask``, ...) is ``[B, R]``.

``train_step`` takes one mini-batch, splits it into micro-batches (``lax.scan``), and sums the gradients of
``algos.token_loss``'s numerators and its denominators; dividing at the end makes gradient accumulation
exact for every aggregation mode (the denominator never depends on the parameters). A non-finite loss or
gradient, or an update that would make any parameter or optimizer moment non-finite, skips the update (params
and optimizer state are kept) and is reported as ``skipped=1`` (``skipped_nonfinite_update=1`` for the
latter).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxrlvr import algos
from jaxrlvr.models import ModelConfig, hidden_states, token_logprobs_and_entropy


@flax.struct.dataclass
class TrainState:
    """Everything an update changes (``ref_params``, the frozen KL reference, rides along so that a
    resumed run keeps its reference). ``knobs`` are the algorithm's per-step traced values."""

    step: jax.Array
    params: Any
    opt_state: Any
    knobs: algos.StepState
    ref_params: Any = None


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then a constant or cosine schedule; global-norm gradient clipping.

    ``warmup_steps`` and ``total_steps`` count RL steps (as verl's, e.g. the first paper's "10-step
    warmup"); the schedule runs over optimizer updates, ``updates_per_step`` per RL step (mini-batches x
    passes; ``train.config.optim_config`` sets it), so warm-up ends after ``warmup_steps * updates_per_step``
    updates. With ``updates_per_step = 1`` (SFT, tests) steps and updates coincide."""

    lr: float = 1e-6
    warmup_steps: int = 10  # RL steps
    schedule: str = "constant"  # constant | cosine
    total_steps: int = 1000  # RL steps, the cosine schedule's length
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0
    updates_per_step: int = 1  # optimizer updates per RL step (not a config key: derived from train.*)

    def __post_init__(self):
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"optim.lr must be a finite number > 0, got {self.lr}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"optim.schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if self.warmup_steps < 0 or self.total_steps <= 0:
            raise ValueError(f"optim.warmup_steps={self.warmup_steps} / total_steps={self.total_steps} invalid")
        if self.updates_per_step < 1:
            raise ValueError(f"OptimConfig.updates_per_step must be >= 1, got {self.updates_per_step}")
        if not self.grad_clip > 0:
            raise ValueError(f"optim.grad_clip must be > 0, got {self.grad_clip}")
        for name in ("grad_clip", "weight_decay", "eps", "min_lr_ratio", "b1", "b2"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"optim.{name} must be a finite number >= 0, got {v}")
        if not (self.b1 < 1 and self.b2 < 1):
            raise ValueError(f"optim.b1={self.b1} and optim.b2={self.b2} must be < 1")

    @functools.lru_cache(maxsize=64)  # noqa: B019 (frozen, hashable config; a stable object for jit)
    def schedule_fn(self) -> optax.Schedule:
        warm = max(self.warmup_steps, 0) * self.updates_per_step
        total = self.total_steps * self.updates_per_step
        if self.schedule == "constant":
            if warm == 0:
                return optax.constant_schedule(self.lr)
            return optax.join_schedules(
                [optax.linear_schedule(0.0, self.lr, warm), optax.constant_schedule(self.lr)], [warm]
            )
        return optax.warmup_cosine_decay_schedule(0.0, self.lr, warm, max(total, warm + 1), self.lr * self.min_lr_ratio)


@functools.lru_cache(maxsize=64)
def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """Cached per config: the same object for equal configs, so jitted steps (``tx`` is a static
    argument) are not recompiled by a second run in the same process."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.adamw(cfg.schedule_fn(), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay),
    )


def response_logprobs(
    model_cfg: ModelConfig,
    params,
    input_ids_BS,
    attention_mask_BS,
    prompt_len: int,
    *,
    temperature: float,
    chunk_size: int = 256,
):
    """log pi(response token) and token entropy, both [B, R], at ``temperature`` (the rollout's)."""
    h = hidden_states(model_cfg, params, input_ids_BS, attention_mask_BS)
    h_resp = h[:, prompt_len - 1 : -1]
    targets = input_ids_BS[:, prompt_len:]
    return token_logprobs_and_entropy(
        model_cfg, params, h_resp, targets, temperature=temperature, chunk_size=chunk_size
    )


def score_tokens_fn(model_cfg, params, input_ids_BS, attention_mask_BS, *, prompt_len, temperature, micro_batch):
    """Old / reference log-probs and entropies of a rollout batch, ``micro_batch`` rows at a time."""
    b = input_ids_BS.shape[0]
    n = b // micro_batch
    ids = input_ids_BS.reshape(n, micro_batch, -1)
    am = attention_mask_BS.reshape(n, micro_batch, -1)

    def body(_, xs):
        return None, response_logprobs(model_cfg, params, xs[0], xs[1], prompt_len, temperature=temperature)

    _, (logp, ent) = jax.lax.scan(body, None, (ids, am))
    return logp.reshape(b, -1), ent.reshape(b, -1)


def _tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def train_step_fn(
    state: TrainState,
    batch: dict,
    rng,
    *,
    model_cfg: ModelConfig,
    algo_cfg: algos.AlgoConfig,
    tx: optax.GradientTransformation,
    prompt_len: int,
    temperature: float,
    micro_batch: int,
    lr_fn=None,
):
    """One optimizer update on a mini-batch; returns (new state, metrics).

    ``batch`` keys: ``input_ids`` / ``attention_mask`` [B, P+R]; ``old_logp``, ``adv``, ``mask`` [B, R];
    optional ``ref_logp`` [B, R] (KL), ``truncated`` [B]. B must be a multiple of ``micro_batch``.
    """
    b = batch["input_ids"].shape[0]
    n = b // micro_batch
    micro = jax.tree.map(lambda x: x.reshape((n, micro_batch) + x.shape[1:]), batch)
    keys = jax.random.split(rng, n)

    def micro_loss(params, mb, key):
        logp, ent = response_logprobs(
            model_cfg, params, mb["input_ids"], mb["attention_mask"], prompt_len, temperature=temperature
        )
        entropy = ent if algo_cfg.needs_entropy else jax.lax.stop_gradient(ent)
        num, den, metrics = algos.token_loss(
            algo_cfg,
            logp,
            mb["old_logp"],
            mb.get("ref_logp"),
            entropy,
            mb["adv"],
            mb["mask"],
            key,
            state.knobs,
            truncated_B=mb.get("truncated"),
        )
        return num, (den, metrics)

    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

    def body(carry, xs):
        g_acc, num_acc, den_acc, m_acc = carry
        mb, key = xs
        (num, (den, metrics)), g = grad_fn(state.params, mb, key)
        g_acc = jax.tree.map(jnp.add, g_acc, g)
        m_acc = jax.tree.map(jnp.add, m_acc, metrics)
        return (g_acc, num_acc + num, den_acc + den, m_acc), None

    m0 = jax.eval_shape(lambda: micro_loss(state.params, jax.tree.map(lambda x: x[0], micro), keys[0])[1][1])
    zeros_m = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), m0)
    zeros_g = jax.tree.map(jnp.zeros_like, state.params)
    (grads, num, den, msum), _ = jax.lax.scan(body, (zeros_g, 0.0, 0.0, zeros_m), (micro, keys))

    den = jnp.maximum(den, 1e-8)
    grads = jax.tree.map(lambda g: g / den, grads)
    loss = num / den
    grad_norm = optax.tree.norm(grads)
    grads_ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _tree_all_finite(grads)
    # The update itself is checked too: a finite gradient can still give non-finite parameters or optimizer
    # moments (an infinite learning rate, an overflowing second moment). Either way nothing is applied.
    updates, new_opt_state = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    update_ok = _tree_all_finite(new_params) & _tree_all_finite(new_opt_state)
    ok = grads_ok & update_ok
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)  # noqa: E731
    params, opt_state = keep(new_params, state.params), keep(new_opt_state, state.opt_state)
    metrics = algos.finalize_metrics(msum)
    metrics.update(
        loss=loss,
        grad_norm=grad_norm,
        skipped=1.0 - ok.astype(jnp.float32),
        skipped_nonfinite_update=(grads_ok & ~update_ok).astype(jnp.float32),
    )
    if lr_fn is not None:
        metrics["lr"] = lr_fn(state.step)
    new_state = state.replace(step=state.step + ok.astype(jnp.int32), params=params, opt_state=opt_state)
    return new_state, metrics


# Jitted single-device (or GSPMD-propagated) versions; `jaxrlvr.sharding` jits the same pure functions with
# explicit in/out shardings for a mesh.
TRAIN_STEP_STATIC = ("model_cfg", "algo_cfg", "tx", "prompt_len", "temperature", "micro_batch", "lr_fn")
SCORE_STATIC = ("model_cfg", "prompt_len", "temperature", "micro_batch")
train_step = jax.jit(train_step_fn, static_argnames=TRAIN_STEP_STATIC, donate_argnames=("state",))
score_tokens = jax.jit(score_tokens_fn, static_argnames=SCORE_STATIC)
