"""The stages of one RL step, in data-flow order: rollout (with DAPO dynamic sampling) -> score (old and
reference log-probs, entropies) -> advantages -> mini-batch updates -> rollout dump -> step metrics.

Each stage is a function of explicit inputs (the :class:`~jaxrlvr.train.setup.RunContext`, the state, the
step's batch) that returns its outputs; the batch lives on the host (numpy, identical on every process) and
the placement's jitted functions put it on the mesh. ``train.loop.train`` strings them together.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr import algos, sharding
from jaxrlvr.runs import RolloutDump, dump_path, dump_settings
from jaxrlvr.train.packing import pack_batch
from jaxrlvr.train.rollout import concat_rollouts, rollout, select_groups
from jaxrlvr.train.setup import RunContext, gather_prompt_rows
from jaxrlvr.train.step import score_tokens_fn, train_step_fn


@dataclasses.dataclass(frozen=True)
class Scored:
    """The score stage's outputs, host numpy: [B, R] token arrays and the [B] group advantage.

    ``pending_B`` (bool [B], or None): rows not scored, the step's first mini-batch, whose ``old_logp`` and
    ``entropy`` rows ``update_policy`` fills in from that mini-batch's own update (0 until then)."""

    old_logp: np.ndarray
    entropy: np.ndarray
    adv: np.ndarray
    adv_group: np.ndarray
    ref_logp: np.ndarray | None
    pending_B: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------- rollout
def collect_rollouts(ctx: RunContext, params, stream, seed_base: int) -> tuple[dict, dict]:
    """Samples and verifies generation batches until ``rollout.prompts_per_step`` groups are kept.

    DAPO dynamic sampling (``train.dynamic_sampling``) drops the groups whose **accuracy** is 0 or 1 (all
    verified wrong / all right; not the reward, which the overlong penalty makes differ within a group
    whose advantages are still uninformative) and draws more batches, at most ``train.max_gen_batches``.
    A batch still short is topped up with dropped (zero-std) groups, and only when there are too few of
    those with kept groups again (counted in ``reused_groups``); a kept group never appears twice otherwise.
    Returns (the step's batch: ``prompts_per_step * G`` rows, info: ``gen_batches``, ``zero_std_groups``
    (share of the first batch's groups with equal accuracy), ``reused_groups``)."""
    c, rc = ctx.c, ctx.rc
    g = rc.group_size
    kept, dropped, gen_batches, zero_std = [], [], 0, 0.0
    need = c.rollout.prompts_per_step
    while True:
        rows = gather_prompt_rows(next(stream))  # this process's shard -> the global prompt batch
        part = rollout(
            ctx.model_cfg,
            params,
            rows,
            cfg=rc,
            tokenizer=ctx.tokenizer,
            score_fn=ctx.score_fn,
            seed=seed_base + gen_batches,
            generate_fn=ctx.pl.generate,
        )
        gen_batches += 1
        keep = np.asarray(algos.dynamic_sampling_keep(jnp.asarray(part["correct"], jnp.float32), g))
        if gen_batches == 1:
            zero_std = 1.0 - float(keep.mean())
        if not c.train.dynamic_sampling:
            kept = [part]
            break
        kept.append(select_groups(part, keep, g))
        dropped.append(select_groups(part, ~keep, g))
        have = sum(len(p["rewards"]) for p in kept) // g
        if have >= need or gen_batches >= c.train.max_gen_batches:
            break
    batch = concat_rollouts(kept)
    reused = 0
    short = need - len(batch["rewards"]) // g
    if short > 0:  # dynamic sampling ran out of generation batches
        fill = concat_rollouts(dropped)  # zero-std groups: zero advantage, they only keep the shape
        n_fill = min(short, len(fill["rewards"]) // g)
        parts = [batch, {k: v[: n_fill * g] for k, v in fill.items()}]
        reused = short - n_fill
        if reused:  # not even enough zero-std groups: kept groups again, said so in the metrics
            reps = -(-reused // max(len(batch["rewards"]) // g, 1))
            again = concat_rollouts([batch] * reps)
            parts.append({k: v[: reused * g] for k, v in again.items()})
        batch = concat_rollouts(parts)
    batch = {k: v[: need * g] for k, v in batch.items()}
    return batch, {"gen_batches": gen_batches, "zero_std_groups": zero_std, "reused_groups": reused}


# ---------------------------------------------------------------------------------------------- score
def pack(ctx: RunContext, batch: dict) -> tuple[dict, int]:
    """With ``train.packing``: the batch's sequences packed into micro-batches of one row of at most
    ``train.max_tokens_per_micro_batch`` slots per data-parallel device (``train.packing.pack_batch``), and
    the rows per micro-batch. Returns (packed arrays, rows)."""
    n = sharding.batch_divisor(ctx.pl.mesh)
    plan, packed = pack_batch(
        batch["input_ids"],
        batch["attention_mask"],
        ctx.rc.max_prompt_len,
        max_tokens=ctx.c.train.max_tokens_per_micro_batch * n,
        row_multiple=n,
    )
    return packed, plan.rows


def score_tokens(ctx: RunContext, params, batch: dict):
    """(log-probs, entropies) [B, R] of the batch's response tokens under ``params`` at the rollout
    temperature, on the mesh (device arrays, rows sharded); packed rows unless ``train.packing=False``."""
    static = dict(prompt_len=ctx.rc.max_prompt_len, temperature=ctx.rc.temperature)
    if ctx.c.train.packing:
        packed, rows = pack(ctx, batch)
        return ctx.pl.score_tokens(score_tokens_fn, ctx.model_cfg, params, packed, None, micro_batch=rows, **static)
    return ctx.pl.score_tokens(
        score_tokens_fn,
        ctx.model_cfg,
        params,
        batch["input_ids"],
        batch["attention_mask"],
        micro_batch=ctx.c.train.micro_batch_size,
        **static,
    )


def minibatch_rows(ctx: RunContext, b: int, step: int, epoch: int) -> list[np.ndarray]:
    """The row indices of each mini-batch of one pass over a batch of ``b`` rows (shuffled per (seed, step,
    epoch) when ``train.shuffle_minibatches``)."""
    c = ctx.c
    order = np.arange(b)
    if c.train.shuffle_minibatches:
        order = np.random.default_rng([c.seed, step, epoch]).permutation(b)
    n = c.train.mini_batch_prompts * ctx.rc.group_size
    return [order[j * n : (j + 1) * n] for j in range(b // n)]


def unscored_rows(ctx: RunContext, b: int, step: int | None) -> np.ndarray | None:
    """Rows whose old log-probs the first update computes itself (``train.reuse_first_old_logp``): the
    first mini-batch's, as a bool [B] mask; None when every row must be scored first (PPL shaping reads
    every row's log-probs before any update; no step given)."""
    if step is None or not ctx.c.train.reuse_first_old_logp or ctx.algo_cfg.ppl_shaping:
        return None
    pending = np.zeros(b, bool)
    pending[minibatch_rows(ctx, b, step, 0)[0]] = True
    return pending


def score_and_shape(ctx: RunContext, state, batch: dict, knobs, step: int | None = None) -> Scored:
    """Old log-probs and entropies (the policy that sampled), the shaped advantages (group advantages then
    the enabled shaping chain, ``algos.shape_advantages``) and, with a KL term, the reference log-probs.

    With ``step`` (and ``train.reuse_first_old_logp``) the step's first mini-batch is not scored: its update
    is on-policy and computes them (``Scored.pending_B``); the other rows are scored as a smaller batch."""
    b = batch["input_ids"].shape[0]
    pending = unscored_rows(ctx, b, step)
    if pending is None:
        old_logp, old_ent = score_tokens(ctx, state.params, batch)
    else:
        old_logp, old_ent = (np.zeros(batch["mask"].shape, np.float32) for _ in range(2))
        if not pending.all():
            rest = {k: batch[k][~pending] for k in ("input_ids", "attention_mask")}
            old_logp[~pending], old_ent[~pending] = sharding.to_host(score_tokens(ctx, state.params, rest))
    adv, aux = ctx.pl.shape_advantages(ctx.algo_cfg, batch["rewards"], old_logp, batch["mask"], knobs)
    ref_logp = None
    if state.ref_params is not None:
        ref_logp, _ = score_tokens(ctx, state.ref_params, batch)
    old_logp, old_ent, adv, adv_group, ref_logp = sharding.to_host((old_logp, old_ent, adv, aux["adv_B"], ref_logp))
    return Scored(
        old_logp=np.array(old_logp),
        entropy=np.array(old_ent),
        adv=adv,
        adv_group=adv_group,
        ref_logp=ref_logp,
        pending_B=pending,
    )


# ---------------------------------------------------------------------------------------------- update
def update_policy(ctx: RunContext, state, batch: dict, scored: Scored, *, step: int, step_key):
    """``train.ppo_epochs`` passes over the batch in mini-batches of ``train.mini_batch_prompts * G`` rows
    (shuffled per epoch when ``train.shuffle_minibatches``), one jitted update each; each mini-batch is
    packed into token-budget micro-batches unless ``train.packing=False``. The rows ``scored.pending_B``
    (the first mini-batch) update on-policy, without ``old_logp``, and their old log-probs and entropies
    are written into ``scored`` from that update's forward. Returns (state, the updates' metrics averaged,
    how many updates were skipped as non-finite, how many ran)."""
    c = ctx.c
    full = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "old_logp": scored.old_logp,
        "adv": scored.adv,
        "mask": batch["mask"],
        "truncated": batch["truncated"],
    }
    if scored.ref_logp is not None:
        full["ref_logp"] = scored.ref_logp
    if ctx.rc.max_staleness or ctx.c.train.sampler_logp_correction:  # the behaviour policy (algos.offpolicy)
        full["behav_logp"] = batch["sample_logp"]
    b = batch["input_ids"].shape[0]
    metrics = []
    for epoch in range(c.train.ppo_epochs):
        for j, idx in enumerate(minibatch_rows(ctx, b, step, epoch)):
            on_policy = scored.pending_B is not None and epoch == 0 and j == 0
            if on_policy and not np.array_equal(np.sort(idx), np.flatnonzero(scored.pending_B)):
                raise RuntimeError("the first mini-batch is not the rows score_and_shape left unscored")
            mb = {k: v[idx] for k, v in full.items() if not (on_policy and k == "old_logp")}
            micro = c.train.micro_batch_size
            if c.train.packing:
                packed, micro = pack(ctx, mb)
                mb = {k: v for k, v in mb.items() if k not in ("input_ids", "attention_mask")} | packed
            rng = jax.random.fold_in(step_key, epoch * 10_000 + j)
            state, m = ctx.pl.train_step(
                train_step_fn,
                state,
                mb,
                rng,
                model_cfg=ctx.model_cfg,
                algo_cfg=ctx.algo_cfg,
                tx=ctx.tx,
                prompt_len=ctx.rc.max_prompt_len,
                temperature=ctx.rc.temperature,
                micro_batch=micro,
                lr_fn=ctx.lr_fn,
            )
            if on_policy:  # the old log-probs / entropies of these rows, from the update's own forward
                scored.old_logp[idx], scored.entropy[idx] = sharding.to_host(
                    (m.pop("tokens_logp"), m.pop("tokens_entropy"))
                )
            metrics.append(m)
    upd = {k: float(np.mean([float(m[k]) for m in metrics])) for k in metrics[0]}
    if "skipped_nonfinite_update" in upd:  # a count of updates, not a mean
        upd["skipped_nonfinite_update"] = int(sum(float(m["skipped_nonfinite_update"]) for m in metrics))
    skipped = int(sum(float(m["skipped"]) for m in metrics))
    return state, upd, skipped, len(metrics)


# ---------------------------------------------------------------------------------------------- dumps
def dump_rollouts(
    workdir, step, batch, *, prompt_len, group_size, old_logp, entropy, adv, adv_group, new_logp, settings=None
):
    """Saves the batch a step trained on to ``rollouts/step_NNNNNN.npz`` (+ ``.texts.json``,
    ``.answers.json``) in the format of :class:`jaxrlvr.runs.RolloutDump` (documented there):
    ``old_logp`` is the rollout policy at the rollout temperature, ``adv`` the shaped advantage,
    ``adv_group`` the group advantage before shaping, ``new_logp`` the same tokens after the step's updates."""
    dump = RolloutDump(
        step=int(step),
        group_size=int(group_size),
        prompt_ids=batch["input_ids"][:, :prompt_len],
        prompt_mask=batch["attention_mask"][:, :prompt_len],
        tokens=batch["tokens"],
        mask=batch["mask"],
        old_logp=np.asarray(old_logp),
        entropy=np.asarray(entropy),
        adv=np.asarray(adv),
        new_logp=np.asarray(new_logp),
        rewards=batch["rewards"],
        correct=batch["correct"],
        adv_group=np.asarray(adv_group),
        lengths=batch["lengths"],
        truncated=batch["truncated"],
        texts=[str(t) for t in batch["texts"]],
        answers=[str(a) for a in batch["answers"]],
        settings=settings,
    )
    return dump.save(dump_path(workdir, step))


def dump_stage(ctx: RunContext, state, batch: dict, scored: Scored, step: int) -> None:
    """Every ``train.dump_rollouts_every`` steps: re-scores the batch under the updated params (every
    process takes part) and process 0 writes the dump."""
    every = ctx.c.train.dump_rollouts_every
    if not every or (step + 1) % every:
        return
    new_logp, _ = score_tokens(ctx, state.params, batch)
    new_logp = sharding.to_host(new_logp)
    if ctx.main:
        dump_rollouts(
            ctx.workdir,
            step + 1,
            batch,
            prompt_len=ctx.rc.max_prompt_len,
            group_size=ctx.rc.group_size,
            old_logp=scored.old_logp,
            entropy=scored.entropy,
            adv=scored.adv,
            adv_group=scored.adv_group,
            new_logp=new_logp,
            settings=dump_settings(json.loads(ctx.c.to_json_best_effort())),  # what this dump was made with
        )


# ---------------------------------------------------------------------------------------------- metrics
def masked_mean(x, m) -> float:
    m = np.asarray(m, np.float64)
    return float((np.asarray(x, np.float64) * m).sum() / max(m.sum(), 1.0))


_UPDATE_KEYS = ("loss", "grad_norm", "lr", "clipfrac", "clipfrac_low", "clipfrac_high", "clipfrac_dual")
_UPDATE_KEYS += ("approx_kl", "kl", "pg_loss", "is_weight", "is_capped")


def step_metrics(ctx: RunContext, batch: dict, scored: Scored, upd: dict, info: dict, times: dict) -> dict:
    """The step's record for ``metrics.jsonl``: rewards, accuracy, lengths, entropy (all / positive /
    negative samples), log-PPL, dynamic-sampling counts, the updates' averaged metrics, skipped updates
    (``skipped_updates``; ``skipped_nonfinite_update``: those whose gradients were finite but whose new
    parameters or optimizer moments were not) and timings."""
    pos = np.asarray(batch["correct"], bool)  # positive samples = verified correct (as in analysis)
    m_np = np.asarray(batch["mask"])
    ent = np.asarray(scored.entropy)
    n_tok = int(m_np.sum())
    rec = {
        "reward": float(np.mean(batch["rewards"])),
        "accuracy": float(np.mean(batch["correct"])),
        "response_length_mean": float(np.mean(batch["lengths"])),
        "response_length_max": int(np.max(batch["lengths"])),
        "response_clip_ratio": float(np.mean(batch["truncated"])),
        "entropy": masked_mean(ent, m_np),
        "entropy_pos": masked_mean(ent, m_np * pos[:, None]),
        "entropy_neg": masked_mean(ent, m_np * (~pos)[:, None]),
        "log_ppl": float(np.mean(-(np.asarray(scored.old_logp) * m_np).sum(1) / np.maximum(m_np.sum(1), 1))),
        "zero_std_groups": info["zero_std_groups"],
        "gen_batches": info["gen_batches"],
        "reused_groups": info.get("reused_groups", 0),
        "skipped_updates": info["skipped_updates"],
        "time_rollout": times["rollout"],
        "time_score": times["score"],
        "time_update": times["update"],
        "tokens_per_s_rollout": n_tok / max(times["rollout"], 1e-9),
        "tokens_per_s_update": n_tok * ctx.c.train.ppo_epochs / max(times["update"], 1e-9),
    }
    for k in _UPDATE_KEYS:
        if k in upd:
            rec[k if k != "kl" else "kl_ref"] = upd[k]
    if "skipped_nonfinite_update" in upd:  # of the skipped: finite gradients, non-finite new params / moments
        rec["skipped_nonfinite_update"] = upd["skipped_nonfinite_update"]
    return rec
