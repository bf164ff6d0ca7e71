"""The pure jitted pieces of an RL update: train state, optimizer, scoring forward, and ``train_step``.

A rollout batch is laid out as ``input_ids_BS`` = left-padded prompt (``P`` columns) + response (``R``
columns, right-padded), with ``attention_mask_BS`` marking real tokens. Response token ``t`` sits at column
``P + t`` and is predicted from the hidden state at column ``P + t - 1``; every per-token array of the loss
(``old_logp``, ``adv``, ``mask``, ...) is ``[B, R]``.

A packed batch (``train.packing``; a dict with ``segment_ids``, built by ``train.packing.pack_batch``) holds the
same sequences end to end in rows of ``width`` slots: ``input_ids`` / ``segment_ids`` / ``positions`` /
``targets`` [rows * n_micro, width] and ``token_index`` / ``micro_index`` that say where each response
token's predicting slot is. The forward runs on the packed rows; log-probs and entropies are gathered back
into ``[B, R]`` and the loss is the padded one, so both layouts give the same loss, gradient and metrics.

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


def packed_logprobs(model_cfg: ModelConfig, params, rows: dict, *, temperature: float, chunk_size: int = 256):
    """log pi and entropy [rows, K] at the response slots ``rows["resp_slots"]`` of packed rows (their
    ``targets``; meaningful where a response token is predicted). Attention stays within each segment and
    never reads an empty slot; the hidden states of the response slots are gathered *before* the output
    layer, so the vocabulary projection, log-probs and entropies are never computed for prompt tokens or
    empty slots."""
    h_RWD = hidden_states(
        model_cfg,
        params,
        rows["input_ids"],
        rows["segment_ids"] > 0,
        positions_BT=rows["positions"],
        segment_ids_BT=rows["segment_ids"],
    )
    h_RKD = jnp.take_along_axis(h_RWD, rows["resp_slots"][:, :, None], axis=1)
    return token_logprobs_and_entropy(
        model_cfg, params, h_RKD, rows["targets"], temperature=temperature, chunk_size=chunk_size
    )


PACKED_ROW_KEYS = ("input_ids", "segment_ids", "positions", "resp_slots", "targets")


def _packed_micro(batch: dict, rows: int) -> dict:
    """The packed row arrays [rows * n_micro, W] (or [rows * n_micro, K]) as [n_micro, rows, W] (row r of
    micro-batch m at r * n + m)."""
    return {k: batch[k].reshape(rows, -1, batch[k].shape[1]).swapaxes(0, 1) for k in PACKED_ROW_KEYS}


def unpack_tokens(x_RK, token_index_BR, response_len_B):
    """Values at the response slots of one micro-batch's rows, as [B, R] (0 beyond each response)."""
    r = token_index_BR.shape[1]
    valid = jnp.arange(r)[None, :] < response_len_B[:, None]
    return jnp.where(valid, jnp.take(x_RK.reshape(-1), token_index_BR, axis=0), 0.0)


def _micro_tokens(model_cfg, params, batch, x, temperature):
    """(log-probs, entropies) [B, R] of packed micro-batch ``x = (rows, m)``; 0 outside its sequences."""
    rows, m = x
    logp, ent = packed_logprobs(model_cfg, params, rows, temperature=temperature)
    in_mb = (batch["micro_index"] == m)[:, None]
    unpack = lambda v: unpack_tokens(v, batch["token_index"], batch["response_len"]) * in_mb
    return unpack(logp), unpack(ent)


def packed_tokens(model_cfg, params, batch: dict, rows: int, *, temperature: float):
    """(log-probs, entropies) [B, R] of every response token of a packed batch: a scan over its micro-batches,
    each filling its sequences' entries (accumulated, never stacked as [n_micro, B, R])."""
    micro = _packed_micro(batch, rows)
    n = micro["input_ids"].shape[0]

    def body(acc, x):
        logp, ent = _micro_tokens(model_cfg, params, batch, x, temperature)
        return (acc[0] + logp, acc[1] + ent), None

    zeros = jnp.zeros(batch["token_index"].shape, jnp.float32)
    return jax.lax.scan(body, (zeros, zeros), (micro, jnp.arange(n)))[0]


def score_tokens_fn(model_cfg, params, input_ids_BS, attention_mask_BS, *, prompt_len, temperature, micro_batch):
    """Old / reference log-probs and entropies [B, R] of a rollout batch, ``micro_batch`` rows at a time.

    ``input_ids_BS`` may instead be a packed batch (dict, ``attention_mask_BS`` None); ``micro_batch`` is
    then the rows per micro-batch of the packing plan."""
    if isinstance(input_ids_BS, dict):
        return packed_tokens(model_cfg, params, input_ids_BS, micro_batch, temperature=temperature)
    b = input_ids_BS.shape[0]
    n = b // micro_batch
    ids = input_ids_BS.reshape(n, micro_batch, -1)
    am = attention_mask_BS.reshape(n, micro_batch, -1)

    def body(_, xs):
        return None, response_logprobs(model_cfg, params, xs[0], xs[1], prompt_len, temperature=temperature)

    _, (logp, ent) = jax.lax.scan(body, None, (ids, am))
    return logp.reshape(b, -1), ent.reshape(b, -1)


def minibatch_statistics(algo_cfg: algos.AlgoConfig) -> bool:
    """Whether the loss uses statistics over all valid tokens (Clip-Cov / KL-Cov covariance means and
    counts, random positive clipping's count, the high-entropy quantile). ``train_step_fn`` then takes them
    over the whole mini-batch, independent of micro-batching and packing (one extra forward)."""
    return algo_cfg.loss_variant in ("clip_cov", "kl_cov") or algo_cfg.rand_pos_clip or algo_cfg.high_entropy_only


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
    optional ``ref_logp`` [B, R] (KL), ``truncated`` [B], ``behav_logp`` [B, R] (stale rows, the sampler's
    log-probs: ``algos.offpolicy``; only with ``rollout.max_staleness > 0``). B must be a multiple of ``micro_batch``.
    Without ``old_logp`` the update is *on-policy*: the old log-probs are the current params' own, taken
    from this update's forward pass (``stop_gradient``; exact, since before this update the params are the
    ones a scoring pass would use), and ``metrics`` gains ``tokens_logp`` / ``tokens_entropy`` [B, R]:
    those log-probs and entropies, for the caller's records (0 outside the responses).
    A packed batch has the arrays of ``packing.pack_batch`` instead of ``input_ids`` / ``attention_mask``
    (``micro_batch`` = the plan's rows per micro-batch, ``prompt_len`` unused); each micro-batch's loss
    covers the sequences it holds (``micro_index``), so the sums are the padded step's.
    """

    on_policy = "old_logp" not in batch

    def token_terms(logp, ent, mb, mask, key):
        entropy = ent if algo_cfg.needs_entropy else jax.lax.stop_gradient(ent)
        return algos.token_loss(
            algo_cfg,
            logp,
            jax.lax.stop_gradient(logp) if on_policy else mb["old_logp"],
            mb.get("ref_logp"),
            entropy,
            mb["adv"],
            mask,
            key,
            state.knobs,
            truncated_B=mb.get("truncated"),
            behav_logp_BT=mb.get("behav_logp"),
        )

    # Per layout: the scanned micro-batches `xs`, `micro_tokens(params, x)` -> (logp, entropy) of one
    # micro-batch, and `micro_rows(x)` -> (its [rows, R] loss arrays, their mask).
    if "segment_ids" in batch:  # packed rows; the per-token arrays stay [B, R] for the whole mini-batch
        xs = _packed_micro(batch, micro_batch)
        n = xs["input_ids"].shape[0]
        xs = (xs, jnp.arange(n))

        def micro_tokens(params, x):  # [B, R], zero outside the micro-batch's sequences
            return _micro_tokens(model_cfg, params, batch, x, temperature)

        def micro_rows(x):
            return batch, batch["mask"] * (batch["micro_index"] == x[1])[:, None]

        def all_tokens(params):
            return packed_tokens(model_cfg, params, batch, micro_batch, temperature=temperature)

    else:
        b = batch["input_ids"].shape[0]
        n = b // micro_batch
        xs = jax.tree.map(lambda x: x.reshape((n, micro_batch) + x.shape[1:]), batch)

        def micro_tokens(params, mb):
            ids, am = mb["input_ids"], mb["attention_mask"]
            return response_logprobs(model_cfg, params, ids, am, prompt_len, temperature=temperature)

        def micro_rows(mb):
            return mb, mb["mask"]

        def all_tokens(params):
            _, (logp_n, ent_n) = jax.lax.scan(lambda c, x: (c, micro_tokens(params, x)), None, xs)
            return logp_n.reshape(b, -1), ent_n.reshape(b, -1)

    def add(acc, new):
        return jax.tree.map(jnp.add, acc, new)

    zeros_g = jax.tree.map(jnp.zeros_like, state.params)
    tokens = None  # on-policy: this forward's (log-probs, entropies) [B, R]
    if minibatch_statistics(algo_cfg):
        # Statistics over the whole mini-batch (Clip-Cov / KL-Cov covariances, top-k counts, the entropy
        # quantile), however micro-batches are formed: one forward for every token's log-prob and entropy,
        # the loss on [B, R] once, then each micro-batch backpropagates its share of d loss / d (logp, H).
        logp_all, ent_all = all_tokens(state.params)
        key = jax.random.split(rng, 1)[0]
        loss_fn = lambda lp, en: token_terms(lp, en, batch, batch["mask"], key)
        (num, den, msum), vjp_fn = jax.vjp(loss_fn, logp_all, ent_all)
        tokens = (logp_all, ent_all) if on_policy else None
        g_logp, g_ent = vjp_fn((jnp.float32(1.0), jnp.zeros_like(den), jax.tree.map(jnp.zeros_like, msum)))
        if "segment_ids" in batch:
            cot_xs, split = xs, lambda x: (x, (g_logp, g_ent))
        else:
            cot_xs = (xs, g_logp.reshape(n, micro_batch, -1), g_ent.reshape(n, micro_batch, -1))
            split = lambda x: (x[0], (x[1], x[2]))

        def vjp_body(g_acc, x):
            x, cot = split(x)
            _, pull = jax.vjp(lambda p: micro_tokens(p, x), state.params)
            return add(g_acc, pull(cot)[0]), None

        grads, _ = jax.lax.scan(vjp_body, zeros_g, cot_xs)
    else:

        def micro_loss(params, x, key):
            logp, ent = micro_tokens(params, x)
            rows, mask = micro_rows(x)
            num, den, metrics = token_terms(logp, ent, rows, mask, key)
            if "segment_ids" in batch and algo_cfg.loss_agg_mode == "seq-mean-token-sum-norm":
                norm_len = algo_cfg.loss_norm_len or mask.shape[1]  # B * norm_len over this micro-batch's rows
                den = jnp.sum(batch["micro_index"] == x[1], dtype=jnp.float32) * norm_len
            return num, (den, metrics, (logp, ent))

        keys = jax.random.split(rng, n)
        grad_fn = jax.value_and_grad(micro_loss, has_aux=True)
        packed = "segment_ids" in batch

        def body(carry, x):
            g_acc, num_acc, den_acc, m_acc, tok_acc = carry
            mb, key = x
            (num, (den, metrics, tok)), g = grad_fn(state.params, mb, key)
            carry = (add(g_acc, g), num_acc + num, den_acc + den, add(m_acc, metrics))
            # on-policy: the tokens' log-probs / entropies, summed over micro-batches ([B, R], 0 outside each
            # one's sequences) when packed, stacked per micro-batch when padded; nothing otherwise
            if on_policy and packed:
                return carry + (add(tok_acc, tok),), None
            return carry + (tok_acc,), (tok if on_policy else None)

        m0 = jax.eval_shape(lambda: micro_loss(state.params, jax.tree.map(lambda x: x[0], xs), keys[0])[1][1])
        zeros_m = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), m0)
        tok0 = None
        if on_policy and packed:
            tok0 = (jnp.zeros(batch["mask"].shape, jnp.float32),) * 2
        (grads, num, den, msum, tokens), stacked = jax.lax.scan(body, (zeros_g, 0.0, 0.0, zeros_m, tok0), (xs, keys))
        if on_policy and not packed:
            tokens = jax.tree.map(lambda v: v.reshape(b, -1), stacked)

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
    if on_policy:
        mask = batch["mask"] > 0
        metrics["tokens_logp"], metrics["tokens_entropy"] = (jnp.where(mask, v, 0.0) for v in tokens)
    new_state = state.replace(step=state.step + ok.astype(jnp.int32), params=params, opt_state=opt_state)
    return new_state, metrics


# Jitted single-device (or GSPMD-propagated) versions; `jaxrlvr.sharding` jits the same pure functions with
# explicit in/out shardings for a mesh.
TRAIN_STEP_STATIC = ("model_cfg", "algo_cfg", "tx", "prompt_len", "temperature", "micro_batch", "lr_fn")
SCORE_STATIC = ("model_cfg", "prompt_len", "temperature", "micro_batch")
train_step = jax.jit(train_step_fn, static_argnames=TRAIN_STEP_STATIC, donate_argnames=("state",))
score_tokens = jax.jit(score_tokens_fn, static_argnames=SCORE_STATIC)
