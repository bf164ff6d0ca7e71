"""Supervised fine-tuning (cross-entropy on response tokens): the cold-start warm start before RL.

``run_sft`` runs the warm start of the synthetic source; ``sft_step`` is one pure jitted update;
``pack_examples`` turns (prompt ids, response ids) pairs into a right-padded batch whose loss mask covers the
response tokens (and the EOS that ends them) only.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrlvr.data import synthetic
from jaxrlvr.models import ModelConfig, hidden_states, token_logprobs_and_entropy
from jaxrlvr.train.step import OptimConfig, make_optimizer


def pack_examples(
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    eos_id: int,
    pad_id: int,
    length: int,
) -> dict[str, np.ndarray]:
    """Right-padded ``input_ids``/``attention_mask``/``loss_mask`` [B, length]; the response ends in EOS.

    A pair longer than ``length`` is an error naming its index (nothing is silently truncated).
    """
    b = len(prompts)
    ids = np.full((b, length), pad_id, np.int32)
    attn = np.zeros((b, length), np.int32)
    loss = np.zeros((b, length), np.float32)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        seq = list(p) + list(r) + [eos_id]
        if len(seq) > length:
            raise ValueError(
                f"example {i} has {len(seq)} tokens (prompt {len(p)} + response {len(r)} + EOS), "
                f"more than the packing length {length}"
            )
        ids[i, : len(seq)] = seq
        attn[i, : len(seq)] = 1
        loss[i, len(p) : len(seq)] = 1.0
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss}


def sft_loss(config: ModelConfig, params, input_ids_BT, attention_mask_BT, loss_mask_BT):
    """Mean negative log-likelihood of the tokens where ``loss_mask`` is 1 (next-token prediction)."""
    h = hidden_states(config, params, input_ids_BT, attention_mask_BT)
    logp, _ = token_logprobs_and_entropy(config, params, h[:, :-1], input_ids_BT[:, 1:])
    w = loss_mask_BT[:, 1:]
    return -jnp.sum(logp * w) / jnp.maximum(jnp.sum(w), 1.0)


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 3))
def sft_step(config: ModelConfig, tx: optax.GradientTransformation, params, opt_state, batch):
    """One SFT update; returns (params, opt_state, loss)."""
    loss, grads = jax.value_and_grad(sft_loss, argnums=1)(
        config, params, batch["input_ids"], batch["attention_mask"], batch["loss_mask"]
    )
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def run_sft(c, model_cfg, params, tokenizer, train_rows, log=print):
    """Cross-entropy warm start on the noisy teacher's worked solutions (synthetic source)."""
    s = c.sft
    tx = make_optimizer(
        OptimConfig(
            lr=s.lr,
            warmup_steps=min(50, s.steps // 10),
            schedule="cosine",
            total_steps=s.steps,
            min_lr_ratio=0.1,
            weight_decay=0.0,
        )
    )
    opt_state = tx.init(params)
    rng = random.Random(f"sft:{c.seed}")
    t0 = time.time()
    loss = float("nan")
    for i in range(s.steps):
        rows = [train_rows[rng.randrange(len(train_rows))] for _ in range(s.batch_size)]
        sols = [
            tokenizer.encode(synthetic.noisy_solution(r, rng, step_error=s.step_error, answer_error=s.answer_error))
            for r in rows
        ]
        batch = pack_examples(
            [r["prompt_ids"] for r in rows],
            sols,
            eos_id=tokenizer.eos_id,
            pad_id=tokenizer.pad_id,
            length=s.seq_len,
        )
        params, opt_state, loss = sft_step(model_cfg, tx, params, opt_state, batch)
        if i % max(1, s.steps // 5) == 0 or i == s.steps - 1:
            log(f"sft step {i + 1}/{s.steps} loss {float(loss):.4f} ({time.time() - t0:.0f}s)")
    return params
