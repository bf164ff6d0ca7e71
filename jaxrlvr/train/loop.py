"""The RL loop: prompts -> G samples -> rewards -> (dynamic sampling) -> old log-probs -> advantages ->
mini-batch updates -> metrics -> controllers -> checkpoint. ``train(config, workdir)`` runs it and resumes
from the latest checkpoint in ``workdir``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import random
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr import algos, sharding
from jaxrlvr.data import synthetic
from jaxrlvr.data.tokenizer import CharTokenizer, load_tokenizer
from jaxrlvr.models import ModelConfig, init_params, load_hf_checkpoint
from jaxrlvr.train import config as config_lib
from jaxrlvr.train.checkpoint import RunCheckpointer, load_params
from jaxrlvr.train.metrics import MetricsWriter
from jaxrlvr.train.rollout import concat_rollouts, rollout, select_groups
from jaxrlvr.train.sft import pack_examples, sft_step
from jaxrlvr.train.step import TrainState, make_optimizer


class TrainingError(RuntimeError):
    """The run cannot continue (e.g. several non-finite updates in a row)."""


# ---------------------------------------------------------------------------------------------- set-up
def build_tokenizer(c):
    spec = c.tokenizer or c.model.hf_path
    if not spec:
        raise ValueError("no tokenizer: set config.tokenizer ('char' or a folder) or model.hf_path")
    return CharTokenizer() if spec == "char" else load_tokenizer(spec)


def build_model(c, tokenizer, rng) -> tuple[ModelConfig, dict]:
    m = c.model
    if m.hf_path:
        cfg, params = load_hf_checkpoint(m.hf_path, dtype=jnp.dtype(m.param_dtype))
        cfg = dataclasses.replace(cfg, dtype=m.dtype, remat=m.remat)
        return cfg, params
    if m.init_ckpt:
        cfg, params = load_params(m.init_ckpt)
        return dataclasses.replace(cfg, dtype=m.dtype, remat=m.remat), params
    cfg = config_lib.model_config(c, tokenizer.vocab_size)
    return cfg, init_params(cfg, rng)


def demo_prompt(problem: str) -> str:
    """The synthetic source's prompt: the problem then a newline (the char model needs no chat frame)."""
    return problem + "\n"


class PromptStream:
    """A seeded, checkpointable stream of prompt batches (grain MapDataset: shuffle, repeat, batch).

    With ``shard_count`` > 1 (one shard per process) shard ``i`` yields rows ``[i*k, (i+1)*k)`` of every
    global batch of ``batch`` rows (``k = batch / shard_count``): the shards' batches concatenated in shard
    order are the unsharded stream's batches, and the iterator state (batches consumed) is the same on
    every shard, so a run may resume on a different number of processes.
    """

    def __init__(self, rows: list[dict], batch: int, seed: int, *, shard_index: int = 0, shard_count: int = 1):
        import grain

        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise ValueError(f"PromptStream: shard_index={shard_index} is not in [0, shard_count={shard_count})")
        if batch % shard_count:
            raise ValueError(
                f"rollout.prompts_per_step={batch} is not divisible by the number of processes ({shard_count})"
            )
        if not rows:
            raise ValueError("PromptStream: no training rows")
        ds = grain.MapDataset.source(rows).shuffle(seed=seed).repeat(None)
        self._ds = ds.batch(batch // shard_count, batch_fn=list)[shard_index::shard_count]
        self._it = iter(self._ds)

    def __next__(self) -> list[dict]:
        return next(self._it)

    def get_state(self) -> dict:
        return self._it.get_state()

    def set_state(self, state: dict) -> None:
        self._it.set_state(state)


def build_data(c, tokenizer) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows), each row with ``prompt_ids`` and ``answer``."""
    if c.data.source == "synthetic":
        arith = synthetic.ArithmeticConfig(digits=c.data.synthetic_digits, word_problems=False)
        train, heldout = synthetic.disjoint_splits(c.data.synthetic_train, c.data.heldout, c.seed, arith)
        for r in train + heldout:
            r["prompt_ids"] = tokenizer.encode(demo_prompt(r["problem"]))
        return train, heldout
    from jaxrlvr.data import load_prompt_rows  # the file pipeline (rewards/data issue)

    return load_prompt_rows(c, tokenizer), []


def make_score_fn(c):
    """Verifier: math-verify in worker processes with per-item timeouts (``jaxrlvr.rewards``). In a
    multi-process run each process verifies its contiguous share of the responses and the verdicts are
    gathered, so every process returns all of them."""
    from jaxrlvr.rewards import score_batch

    def score_local(texts, golds):
        if not texts:
            return []
        results = score_batch(texts, golds, workers=c.reward.workers, timeout_s=c.reward.timeout_s)
        return [bool(getattr(r, "correct", r)) for r in results]

    def score(texts, golds):
        if jax.process_count() == 1:
            return score_local(texts, golds)
        share = sharding.process_slice(len(texts))
        local = np.asarray(score_local(list(texts[share]), list(golds[share])), np.int32)
        return [bool(x) for x in sharding.process_allgather_rows(local, len(texts))]

    return score


def gather_prompt_rows(local_rows: list[dict]) -> list[dict]:
    """The global prompt batch from every process's own rows (process order); the sampler and the
    update run on the global batch. Only what the rollout needs travels: ids, answer, id."""
    if jax.process_count() == 1:
        return local_rows
    slim = [
        {"prompt_ids": [int(t) for t in r["prompt_ids"]], "answer": str(r["answer"]), "id": str(r.get("id", ""))}
        for r in local_rows
    ]
    return [r for part in sharding.process_allgather_json(slim) for r in part]


class _NoWriter:
    """The metrics writer of processes other than 0 (only process 0 writes files)."""

    def truncate_after(self, step):
        pass

    def write(self, step, metrics):
        pass

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------- pieces
def run_sft(c, model_cfg, params, tokenizer, train_rows, log=print):
    """Cross-entropy warm start on the noisy teacher's worked solutions (synthetic source)."""
    from jaxrlvr.train.step import OptimConfig
    from jaxrlvr.train.step import make_optimizer as mk

    s = c.sft
    tx = mk(
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


def heldout_accuracy(c, model_cfg, params, tokenizer, rows, score_fn, seed, generate_fn=None) -> dict:
    """Mean correctness of ``data.heldout_samples`` samples per held-out problem at the rollout settings."""
    from jaxrlvr.sampling import generate

    generate = generate_fn or generate
    n = c.data.heldout_samples
    out = generate(
        model_cfg,
        params,
        [r["prompt_ids"] for r in rows],
        max_new_tokens=c.rollout.max_new_tokens,
        temperature=c.rollout.temperature,
        top_p=c.rollout.top_p,
        top_k=c.rollout.top_k,
        num_samples=n,
        eos_ids=tuple(tokenizer.eos_ids),
        pad_id=tokenizer.pad_id,
        seed=seed,
    )
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    texts = [tokenizer.decode(tokens[i, : lengths[i]]) for i in range(tokens.shape[0])]
    correct = np.asarray(score_fn(texts, [r["answer"] for r in rows for _ in range(n)])).reshape(len(rows), n)
    return {
        "accuracy": float(correct.mean()),
        "pass_at_n": float(correct.any(1).mean()),
        "mean_length": float(lengths.mean()),
        "example": texts[0],
    }


def dump_rollouts(workdir, step, batch, *, prompt_len, group_size, old_logp, entropy, adv, adv_group, new_logp):
    """Saves the batch a step trained on to ``rollouts/step_NNNNNN.npz`` (+ ``.texts.json``,
    ``.answers.json``) in the format of :class:`jaxrlvr.analysis.rollouts.RolloutDump` (documented there):
    ``old_logp`` is the rollout policy at the rollout temperature, ``adv`` the shaped advantage,
    ``adv_group`` the group advantage before shaping, ``new_logp`` the same tokens after the step's updates."""
    from jaxrlvr.analysis.rollouts import RolloutDump, dump_path

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
    )
    return dump.save(dump_path(workdir, step))


def periodic_eval(c, model_cfg, params, tokenizer, workdir, step: int, log, generate_fn=None) -> dict:
    """Runs the configured benchmarks; returns ``eval/<bench>/<metric>`` entries for metrics.jsonl. Every
    process samples (on the mesh) and scores; process 0 writes the files."""
    from jaxrlvr.eval import evaluate

    out_dir = pathlib.Path(workdir) / "eval" / f"step_{step:06d}"
    ecfg = config_lib.eval_config(c, str(out_dir) if sharding.is_main_process() else None)
    results = evaluate(model_cfg, params, tokenizer, ecfg, sampler=generate_fn, log=log)
    out = {}
    for name, res in results.items():
        for key in ("acc_at_n", "maj_at_n", "mean_length"):
            if key in res.summary and isinstance(res.summary[key], (int, float)):
                out[f"eval/{name}/{key}"] = float(res.summary[key])
    return out


def _position_active(c, stage: dict, step: int) -> float:
    """Position shaping's on/off: a fixed window, or (``train.position_auto``) ``position_window[1]`` steps from
    the step after the stage detector (``analysis.stages.detect_plateau_start``) first sees the plateau."""
    if not c.train.position_auto:
        return _window_active(c.train.position_window, step)
    if stage["plateau_at"] is None:
        return 0.0
    return _window_active((stage["plateau_at"], c.train.position_window[1]), step)


def _window_active(window, step: int) -> float:
    start, n = int(window[0]), int(window[1])
    return float(step >= start and (n < 0 or step < start + n))


def _masked_mean(x, m):
    m = np.asarray(m, np.float64)
    return float((np.asarray(x, np.float64) * m).sum() / max(m.sum(), 1.0))


# ---------------------------------------------------------------------------------------------- the loop
def train(c, workdir: str, *, log=print, stop_after: int | None = None) -> dict:
    """Runs (or resumes) the configured RL run in ``workdir``; returns the summary dict.

    ``stop_after`` ends this invocation after that many RL steps (after checkpointing), as a preemption
    would; re-running with the same workdir resumes.

    Several processes (``mesh.distributed`` or the ``JAX_*`` variables; docs/mesh.md) run this same call
    with the same config and ``workdir`` (a shared filesystem): each reads its own shard of every prompt
    batch and verifies its share of the responses; sampling, scoring and updates run on the global mesh;
    process 0 writes metrics, config, summary, plots and dumps; checkpoints are written together.
    """
    t_start = time.time()
    config_lib.validate(c)
    sharding.initialize_distributed(c, log=log)  # multi-host runs (mesh.distributed or JAX_* variables)
    main = sharding.is_main_process()
    n_proc, proc = jax.process_count(), jax.process_index()
    if c.rollout.prompts_per_step % n_proc:
        raise ValueError(
            f"rollout.prompts_per_step={c.rollout.prompts_per_step} is not divisible by the number of processes "
            f"({n_proc}): every process reads the same number of prompts per step"
        )
    if not main:
        log = lambda *a, **k: None  # noqa: E731 (one process speaks)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "config.json").is_file() and (workdir / "checkpoints").is_dir():
        config_lib.check_resume_config(json.loads((workdir / "config.json").read_text()), c)  # mesh may change
    if main:
        (workdir / "config.json").write_text(c.to_json_best_effort(indent=2) + "\n")

    rc = config_lib.rollout_config(c)
    algo_cfg = config_lib.algo_config(c)
    optim_cfg = config_lib.optim_config(c)
    tx = make_optimizer(optim_cfg)
    lr_fn = optim_cfg.schedule_fn()
    key = jax.random.key(c.seed)

    tokenizer = build_tokenizer(c)
    model_cfg, params = build_model(c, tokenizer, jax.random.fold_in(key, 1))
    # The mesh (docs/mesh.md): the trainer's pure functions jitted with explicit shardings on it.
    pl = sharding.placement(sharding.mesh_from_config(c), model_cfg, sharding.rules_from_config(c))
    train_step, score_tokens = pl.train_step, pl.score_tokens
    pl.check_rows(c.train.micro_batch_size, "train.micro_batch_size")
    train_rows, heldout_rows = build_data(c, tokenizer)
    for r in train_rows[:1] + heldout_rows[:1]:
        if len(r["prompt_ids"]) > rc.max_prompt_len:
            raise ValueError(f"prompt of row {r.get('id')} has {len(r['prompt_ids'])} tokens > rollout.max_prompt_len")
    stream = PromptStream(train_rows, c.rollout.prompts_per_step, c.seed, shard_index=proc, shard_count=n_proc)
    score_fn = make_score_fn(c)
    ckpt = RunCheckpointer(workdir, every=c.checkpoint.every, keep=c.checkpoint.keep)
    metrics_writer = MetricsWriter(workdir, tensorboard=c.log.tensorboard) if main else _NoWriter()

    summary: dict = {}
    # Stage detector state (position shaping "auto"): smoothed-curve history and the detected plateau start.
    stage: dict = {"entropy": [], "accuracy": [], "plateau_at": None}
    start = ckpt.latest_step()
    if start is not None:
        abstract = jax.eval_shape(
            lambda p: TrainState(
                step=jnp.int32(0),
                params=p,
                opt_state=tx.init(p),
                knobs=algos.initial_step_state(algo_cfg),
                ref_params=p if algo_cfg.uses_kl else None,
            ),
            params,
        )
        state, extra = ckpt.restore(start, pl.abstract_state(abstract, tx))  # onto this run's mesh
        stream.set_state(extra["data_state"])
        summary = extra.get("summary", {})
        stage = extra.get("stage", stage)
        metrics_writer.truncate_after(start)
        log(f"resumed from step {start} in {ckpt.dir}")
    else:
        if c.sft.steps:
            params = run_sft(c, model_cfg, params, tokenizer, train_rows, log=log)
        if heldout_rows:
            before = heldout_accuracy(
                c, model_cfg, params, tokenizer, heldout_rows, score_fn, seed=c.seed + 17, generate_fn=pl.generate
            )
            summary["heldout_accuracy_before"] = before["accuracy"]
            summary["heldout_pass_at_n_before"] = before["pass_at_n"]
            log(
                f"held-out accuracy before RL: {before['accuracy']:.3f} (pass@{c.data.heldout_samples} "
                f"{before['pass_at_n']:.3f}); e.g. {before['example']!r}"
            )
        state = TrainState(
            step=jnp.int32(0),
            params=params,
            opt_state=tx.init(params),
            knobs=algos.initial_step_state(algo_cfg),
            ref_params=jax.tree.map(jnp.copy, params) if algo_cfg.uses_kl else None,
        )
        state = pl.put_state(state, tx)
        start = 0
        ckpt.save(
            0,
            state,
            {"step": 0, "data_state": stream.get_state(), "summary": summary, "stage": stage},
            model_cfg,
            force=True,
        )

    num_steps = c.train.num_steps
    rows_per_mini = c.train.mini_batch_prompts * rc.group_size
    micro = c.train.micro_batch_size
    p_len = rc.max_prompt_len
    consecutive_skips = 0
    progress = None
    if c.log.progress and main:
        from tqdm import tqdm

        progress = tqdm(total=num_steps, initial=start, desc="rl", dynamic_ncols=True)

    first_step = start
    # Epochs over the training prompts, for the epoch-wise Pos-Adv schedule (which needs at least 2).
    n_epochs = max(2, -(-num_steps * c.rollout.prompts_per_step // max(len(train_rows), 1)))
    for step in range(start, num_steps):
        t0 = time.time()
        step_key = jax.random.fold_in(key, 1000 + step)
        seed_base = int(jax.random.randint(step_key, (), 0, 2**30))
        knobs = sharding.conform(
            jax.tree.map(np.asarray, state.knobs)._replace(
                ppl_active=np.float32(_window_active(c.train.ppl_window, step)),
                position_active=np.float32(_position_active(c, stage, step)),
            ),
            pl.replicated,
        )
        # ---- rollout (with DAPO dynamic sampling) ----
        parts, gen_batches, zero_std = [], 0, 0.0
        need = c.rollout.prompts_per_step
        while True:
            rows = gather_prompt_rows(next(stream))  # this process's shard -> the global prompt batch
            part = rollout(
                model_cfg,
                state.params,
                rows,
                cfg=rc,
                tokenizer=tokenizer,
                score_fn=score_fn,
                seed=seed_base + gen_batches,
                generate_fn=pl.generate,
            )
            gen_batches += 1
            keep = np.asarray(algos.dynamic_sampling_keep(jnp.asarray(part["rewards"]), rc.group_size))
            if gen_batches == 1:
                zero_std = 1.0 - float(keep.mean())
                first = part
            if not c.train.dynamic_sampling:
                parts = [part]
                break
            parts.append(select_groups(part, keep, rc.group_size))
            have = sum(len(p["rewards"]) for p in parts) // rc.group_size
            if have >= need or gen_batches >= c.train.max_gen_batches:
                break
        batch = concat_rollouts(parts)
        n_groups = len(batch["rewards"]) // rc.group_size
        if n_groups < need:  # dynamic sampling ran out of generation batches: top up with zero-std groups
            fill = select_groups(first, np.ones(need, bool), rc.group_size)
            batch = concat_rollouts([batch, {k: v[: (need - n_groups) * rc.group_size] for k, v in fill.items()}])
        batch = {k: v[: need * rc.group_size] for k, v in batch.items()}
        t_roll = time.time() - t0

        # ---- old log-probs, entropies, advantages ----
        # The batch lives on the host (numpy, the same on every process); the placement's functions put it
        # on the mesh. Their [B, R] results come back to the host for mini-batching and metrics.
        t1 = time.time()
        ids, am, mask = batch["input_ids"], batch["attention_mask"], batch["mask"]
        old_logp, old_ent = score_tokens(
            model_cfg, state.params, ids, am, prompt_len=p_len, temperature=rc.temperature, micro_batch=micro
        )
        adv, aux = pl.shape_advantages(algo_cfg, batch["rewards"], old_logp, mask, knobs)
        ref_logp = None
        if state.ref_params is not None:
            ref_logp, _ = score_tokens(
                model_cfg,
                state.ref_params,
                ids,
                am,
                prompt_len=p_len,
                temperature=rc.temperature,
                micro_batch=micro,
            )
        old_logp, old_ent, adv, adv_group, ref_logp = sharding.to_host((old_logp, old_ent, adv, aux["adv_B"], ref_logp))
        t_score = time.time() - t1

        # ---- updates ----
        t2 = time.time()
        full = {
            "input_ids": ids,
            "attention_mask": am,
            "old_logp": old_logp,
            "adv": adv,
            "mask": mask,
            "truncated": batch["truncated"],
        }
        if ref_logp is not None:
            full["ref_logp"] = ref_logp
        b = ids.shape[0]
        state = state.replace(knobs=knobs)
        upd_metrics = []
        for epoch in range(c.train.ppo_epochs):
            order = np.arange(b)
            if c.train.shuffle_minibatches:
                order = np.random.default_rng([c.seed, step, epoch]).permutation(b)
            for j in range(b // rows_per_mini):
                idx = order[j * rows_per_mini : (j + 1) * rows_per_mini]
                mb = {k: v[idx] for k, v in full.items()}
                rng = jax.random.fold_in(step_key, epoch * 10_000 + j)
                state, m = train_step(
                    state,
                    mb,
                    rng,
                    model_cfg=model_cfg,
                    algo_cfg=algo_cfg,
                    tx=tx,
                    prompt_len=p_len,
                    temperature=rc.temperature,
                    micro_batch=micro,
                    lr_fn=lr_fn,
                )
                upd_metrics.append(m)
        upd = {k: float(np.mean([float(m[k]) for m in upd_metrics])) for k in upd_metrics[0]}
        skipped = int(sum(float(m["skipped"]) for m in upd_metrics))
        consecutive_skips = consecutive_skips + 1 if skipped == len(upd_metrics) else 0
        t_update = time.time() - t2

        if c.train.dump_rollouts_every and (step + 1) % c.train.dump_rollouts_every == 0:  # every process scores
            new_logp, _ = score_tokens(
                model_cfg,
                state.params,
                ids,
                am,
                prompt_len=p_len,
                temperature=rc.temperature,
                micro_batch=micro,
            )
            new_logp = sharding.to_host(new_logp)
            if main:
                dump_rollouts(
                    workdir,
                    step + 1,
                    batch,
                    prompt_len=p_len,
                    group_size=rc.group_size,
                    old_logp=old_logp,
                    entropy=old_ent,
                    adv=adv,
                    adv_group=adv_group,
                    new_logp=new_logp,
                )

        # ---- controllers ----
        mean_entropy = _masked_mean(old_ent, batch["mask"])
        knobs = algos.advance_step_state(
            algo_cfg,
            jax.tree.map(np.asarray, state.knobs),  # the step's own knobs were donated with the state
            step=step + 1,
            total_steps=num_steps,
            epoch=min(n_epochs, 1 + ((step + 1) * c.rollout.prompts_per_step) // max(len(train_rows), 1)),
            num_epochs=n_epochs,
            entropy=np.float32(mean_entropy),
        )
        knobs = jax.tree.map(np.asarray, knobs)
        state = state.replace(knobs=sharding.conform(knobs, pl.replicated))

        # ---- metrics ----
        correct = batch["correct"]
        pos = np.asarray(batch["correct"], bool)  # positive samples = verified correct (as in analysis)
        m_np = np.asarray(batch["mask"])
        ent_np = np.asarray(old_ent)
        n_tok = int(m_np.sum())
        dt = time.time() - t0
        rec = {
            "reward": float(np.mean(batch["rewards"])),
            "accuracy": float(np.mean(correct)),
            "response_length_mean": float(np.mean(batch["lengths"])),
            "response_length_max": int(np.max(batch["lengths"])),
            "response_clip_ratio": float(np.mean(batch["truncated"])),
            "entropy": mean_entropy,
            "entropy_pos": _masked_mean(ent_np, m_np * pos[:, None]),
            "entropy_neg": _masked_mean(ent_np, m_np * (~pos)[:, None]),
            "log_ppl": float(np.mean(-(np.asarray(old_logp) * m_np).sum(1) / np.maximum(m_np.sum(1), 1))),
            "zero_std_groups": zero_std,
            "gen_batches": gen_batches,
            "skipped_updates": skipped,
            "lambda": float(knobs.lam),
            "entropy_coef": float(knobs.entropy_coef),
            "time_rollout": t_roll,
            "time_score": t_score,
            "time_update": t_update,
            "time_step": dt,
            "tokens_per_s_rollout": n_tok / max(t_roll, 1e-9),
            "tokens_per_s_update": n_tok * c.train.ppo_epochs / max(t_update, 1e-9),
        }
        for k in (
            "loss",
            "grad_norm",
            "lr",
            "clipfrac",
            "clipfrac_low",
            "clipfrac_high",
            "clipfrac_dual",
            "approx_kl",
            "kl",
            "pg_loss",
        ):
            if k in upd:
                rec[k if k != "kl" else "kl_ref"] = upd[k]
        stage["entropy"].append(rec["entropy"])
        stage["accuracy"].append(rec["accuracy"])
        if c.train.position_auto and stage["plateau_at"] is None:
            from jaxrlvr.analysis.stages import detect_plateau_start

            if detect_plateau_start(stage["entropy"], stage["accuracy"]) is not None:
                stage["plateau_at"] = step + 1  # position shaping starts with the next step
                summary["plateau_detected_at_step"] = step + 1
                log(f"stage detector: plateau reached at step {step + 1}; position shaping starts")
        rec["position_active"] = float(knobs.position_active)
        if c.eval.every and ((step + 1) % c.eval.every == 0 or step + 1 == num_steps):
            rec.update(periodic_eval(c, model_cfg, state.params, tokenizer, workdir, step + 1, log, pl.generate))
        metrics_writer.write(step + 1, rec)
        if progress is not None:
            progress.set_postfix(
                reward=f"{rec['reward']:.3f}",
                acc=f"{rec['accuracy']:.2f}",
                ent=f"{rec['entropy']:.3f}",
                s=f"{dt:.2f}",
            )
            progress.update(1)
        if consecutive_skips >= c.train.max_consecutive_skips:
            raise TrainingError(
                f"{consecutive_skips} steps in a row had only non-finite updates (last step "
                f"{step + 1}); stopping. Lower optim.lr or check the data."
            )
        preempt = stop_after is not None and step + 1 - first_step >= stop_after
        ckpt.save(
            step + 1,
            state,
            {"step": step + 1, "data_state": stream.get_state(), "summary": summary, "stage": stage},
            model_cfg,
            force=step + 1 == num_steps or preempt,
        )
        if preempt:
            log(f"stopping after step {step + 1} (stop_after={stop_after}); re-run to resume")
            if progress is not None:
                progress.close()
            metrics_writer.close()
            ckpt.close()
            return dict(summary, stopped_at=step + 1)
    if progress is not None:
        progress.close()

    if heldout_rows:
        after = heldout_accuracy(
            c, model_cfg, state.params, tokenizer, heldout_rows, score_fn, seed=c.seed + 29, generate_fn=pl.generate
        )
        summary["heldout_accuracy_after"] = after["accuracy"]
        summary["heldout_pass_at_n_after"] = after["pass_at_n"]
        log(
            f"held-out accuracy after RL: {after['accuracy']:.3f} (pass@{c.data.heldout_samples} "
            f"{after['pass_at_n']:.3f}); e.g. {after['example']!r}"
        )
    summary.update(steps=num_steps, wall_seconds=time.time() - t_start, workdir=str(workdir))
    if n_proc > 1:
        summary["processes"] = n_proc
    if main:
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    metrics_writer.close()
    ckpt.close()
    if c.log.plots and main:
        from jaxrlvr.train.plots import plot_run

        plot_run(workdir)
    return summary
