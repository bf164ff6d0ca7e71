"""The RL loop, one named stage per data-flow step (``train.stages``): rollout (with dynamic sampling) ->
rewards -> filter -> score -> advantages -> update -> controllers -> log / checkpoint. ``train(config,
workdir)`` runs it and resumes from the latest checkpoint in ``workdir``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp

from jaxrlvr import algos, runs, sharding
from jaxrlvr.runs_lock import WorkdirLock
from jaxrlvr.train import config as config_lib
from jaxrlvr.train import stages
from jaxrlvr.train.async_rollout import RolloutProducer, overlap_metrics
from jaxrlvr.train.checkpoint import RunCheckpointer
from jaxrlvr.train.controllers import (
    LoopState,
    advance_knobs,
    entropy_threshold,
    observe_stage,
    schedule_epoch,
    step_knobs,
)
from jaxrlvr.train.evaluation import heldout_accuracy, periodic_eval
from jaxrlvr.train.metrics import MetricsWriter
from jaxrlvr.train.preemption import GracefulStop
from jaxrlvr.train.setup import (
    NoWriter,
    PromptStream,
    RunContext,
    build_data,
    build_model,
    build_tokenizer,
    filter_long_prompts,
    make_score_fn,
)
from jaxrlvr.train.sft import run_sft
from jaxrlvr.train.step import TrainState, make_optimizer

# Re-exported for callers of the earlier single-module loop.
__all__ = ["PromptStream", "TrainingError", "build_model", "build_tokenizer", "train"]


class TrainingError(RuntimeError):
    """The run cannot continue (e.g. several non-finite updates in a row)."""


def _set_up(c, workdir: pathlib.Path, log, stack) -> tuple[RunContext, dict, list[dict], list[dict], dict]:
    """Resolves and validates the config, starts multi-process JAX when configured, takes the workdir's lock
    (process 0, held until ``stack`` closes; before anything is written), writes ``config.json`` (with
    ``model_used``, the model config the run actually uses) and appends its changes to
    ``config_history.jsonl``, and builds the run's fixed pieces:
    (context, initial params, train rows, held-out rows, data counts). Every prompt is checked against
    ``rollout.max_prompt_len`` here, before anything is compiled."""
    c, notes = config_lib.resolve_sources(c)
    config_lib.validate(c)
    if not isinstance(c.seed, int) or not 0 <= c.seed < 2**31:  # ours: seeds become 32-bit JAX keys
        raise ValueError(f"seed={c.seed!r} is out of range: give an integer in [0, 2**31)")
    sharding.initialize_distributed(c, log=log)  # multi-host runs (mesh.distributed or JAX_* variables)
    main = sharding.is_main_process()
    n_proc = jax.process_count()
    if c.rollout.prompts_per_step % n_proc:
        raise ValueError(
            f"rollout.prompts_per_step={c.rollout.prompts_per_step} is not divisible by the number of processes "
            f"({n_proc}): every process reads the same number of prompts per step"
        )
    if not main:
        log = lambda *a, **k: None  # noqa: E731 (one process speaks)
    for note in notes:
        log(note)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir {str(workdir)!r} is a file; give a folder (it is created if missing)")
    if main:  # one writer per workdir (jaxrlvr.runs_lock); other processes write only checkpoint shards
        stack.enter_context(WorkdirLock(workdir, what="training", log=log))
    workdir.mkdir(parents=True, exist_ok=True)
    previous = None
    if (workdir / "config.json").is_file() and (workdir / "checkpoints").is_dir():
        previous = json.loads((workdir / "config.json").read_text())
        config_lib.check_resume_config(previous, c)  # mesh may change
    tokenizer = build_tokenizer(c)
    train_rows, heldout_rows, n_bad = build_data(c, tokenizer)
    train_rows, n_long = filter_long_prompts(c, train_rows, "training")
    heldout_rows, n_long_heldout = filter_long_prompts(c, heldout_rows, "held-out")
    counts = {"prompts_kept": len(train_rows), "prompts_filtered_overlong": n_long, "rows_skipped_bad": n_bad}
    where = c.data.path if c.data.source == "file" else "synthetic problems"
    dropped = n_long + n_long_heldout
    log(
        f"data: {len(train_rows)} training prompts from {where}"
        + (f", {len(heldout_rows)} held-out" if heldout_rows else "")
        + (f"; dropped {dropped} longer than rollout.max_prompt_len={c.rollout.max_prompt_len}" if dropped else "")
        + (f"; skipped {n_bad} bad rows (data.skip_bad_rows)" if n_bad else "")
    )
    model_cfg, params = build_model(c, tokenizer, jax.random.fold_in(jax.random.key(c.seed), 1), log=log)
    if main:
        saved = json.loads(c.to_json_best_effort())
        saved["model_used"] = dataclasses.asdict(model_cfg)
        runs.append_config_history(workdir, previous, saved, event="resume" if previous else "start")
        tmp = workdir / "config.json.tmp"
        tmp.write_text(json.dumps(saved, indent=2) + "\n")
        tmp.replace(workdir / "config.json")
    log(
        f"model: {model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}, vocabulary {model_cfg.vocab_size} "
        f"({sum(x.size for x in jax.tree.leaves(params)) / 1e6:.2f}M parameters)"
    )
    optim_cfg = config_lib.optim_config(c)
    # The mesh (docs/mesh.md): the trainer's pure functions jitted with explicit shardings on it.
    pl = sharding.placement(sharding.mesh_from_config(c), model_cfg, sharding.rules_from_config(c))
    pl.check_rows(c.train.micro_batch_size, "train.micro_batch_size")
    ctx = RunContext(
        c=c,
        workdir=workdir,
        rc=config_lib.rollout_config(c),
        algo_cfg=config_lib.algo_config(c),
        tx=make_optimizer(optim_cfg),
        lr_fn=optim_cfg.schedule_fn(),
        model_cfg=model_cfg,
        tokenizer=tokenizer,
        pl=pl,
        score_fn=make_score_fn(c),
        main=main,
        log=log,
    )
    return ctx, params, train_rows, heldout_rows, counts


def _fresh_state(ctx: RunContext, params) -> TrainState:
    return TrainState(
        step=jnp.int32(0),
        params=params,
        opt_state=ctx.tx.init(params),
        knobs=algos.initial_step_state(ctx.algo_cfg),
        ref_params=jax.tree.map(jnp.copy, params) if ctx.algo_cfg.uses_kl else None,
    )


def _heldout(ctx: RunContext, params, rows, seed: int, when: str, summary: dict) -> None:
    """Held-out accuracy at the rollout settings, into ``summary`` (``heldout_accuracy_<when>``, ...)."""
    c = ctx.c
    res = heldout_accuracy(
        c, ctx.model_cfg, params, ctx.tokenizer, rows, ctx.score_fn, seed=seed, generate_fn=ctx.pl.generate
    )
    summary[f"heldout_accuracy_{when}"] = res["accuracy"]
    summary[f"heldout_pass_at_n_{when}"] = res["pass_at_n"]
    ctx.log(
        f"held-out accuracy {when} RL: {res['accuracy']:.3f} (pass@{c.data.heldout_samples} "
        f"{res['pass_at_n']:.3f}); e.g. {example_line(rows[0], res['example'])}"
    )


def example_line(row: dict, response: str, width: int = 160) -> str:
    """``problem -> response (gold: answer)`` on one readable line (newlines shown as ' | ', no escapes)."""
    problem = str(row.get("problem", "")).strip() or "(prompt)"

    def flat(t):
        t = " | ".join(x.strip() for x in str(t).strip().splitlines() if x.strip())
        return t if len(t) <= width else t[: width - 3] + "..."

    return f"{flat(problem)} -> {flat(response) or '(empty)'} (gold: {row.get('answer')})"


def _wandb_args(ctx: RunContext) -> dict | None:
    """The W&B logger's settings (``log.wandb``; None when off): the config as saved in config.json."""
    lc = ctx.c.log
    if not lc.wandb:
        return None
    config = json.loads((ctx.workdir / "config.json").read_text())
    return dict(project=lc.wandb_project, name=lc.wandb_name, mode=lc.wandb_mode, config=config, log=ctx.log)


def _restore_or_start(ctx: RunContext, params, train_rows, heldout_rows, stream, ckpt, writer):
    """(state, loop state, first step): the latest checkpoint restored onto this run's mesh (metrics after
    it dropped), or a fresh start (SFT warm start, held-out accuracy before RL, step-0 checkpoint)."""
    c = ctx.c
    abstract = jax.eval_shape(lambda p: _fresh_state(ctx, p), params)
    found = ckpt.restore_latest(ctx.pl.abstract_state(abstract, ctx.tx))  # onto this run's mesh, verified
    if found is not None:
        start, state, extra = found
        stream.set_state(extra["data_state"])
        loop = LoopState.from_extra(extra)
        writer.truncate_after(start)
        ctx.log(f"resumed from step {start} in {ckpt.dir}")
        return state, loop, start
    loop = LoopState()
    if c.sft.steps:
        params = run_sft(c, ctx.model_cfg, params, ctx.tokenizer, train_rows, log=ctx.log)
    if heldout_rows:
        _heldout(ctx, params, heldout_rows, c.seed + 17, "before", loop.summary)
    state = ctx.pl.put_state(_fresh_state(ctx, params), ctx.tx)
    loop.data_state = stream.get_state()
    ckpt.save(0, state, loop.to_extra(0), ctx.model_cfg, force=True)
    return state, loop, 0


# ---------------------------------------------------------------------------------------------- the loop
def train(c, workdir: str, *, log=print, stop_after: int | None = None, _threaded: bool = False) -> dict:
    """Runs (or resumes) the configured RL run in ``workdir``; returns the summary dict.

    ``stop_after`` ends this invocation after that many RL steps (after checkpointing), as a preemption
    would; re-running with the same workdir resumes.

    Several processes (``mesh.distributed`` or the ``JAX_*`` variables; docs/mesh.md) run this same call
    with the same config and ``workdir`` (a shared filesystem): each reads its own shard of every prompt
    batch and verifies its share of the responses; sampling, scoring and updates run on the global mesh;
    process 0 writes metrics, config, summary, plots and dumps; checkpoints are written together.

    ``_threaded`` (tests): with ``rollout.max_staleness = 0``, generate on the rollout thread anyway (each
    step submits and waits for its own batch), to check that the thread changes nothing.
    """
    with contextlib.ExitStack() as stack:
        return _train(c, pathlib.Path(workdir), log, stop_after, stack, _threaded)


def _step_key(key, step: int):
    """The key of RL step ``step`` (0-based): its rollout seed and its updates' randomness."""
    return jax.random.fold_in(key, 1000 + step)


def _seed_base(step_key) -> int:
    """A step's rollout seed, the same whichever thread samples it."""
    return int(jax.random.randint(step_key, (), 0, 2**30))


def _producer(ctx: RunContext, stream, key, state, start: int, num_steps: int, stack) -> RolloutProducer:
    """The rollout thread of an asynchronous run (``rollout.max_staleness = k``), with the rollouts of steps
    ``start .. start + k - 1`` queued (sampled by the params of step ``start``). With ``mesh.rollout_devices``
    it samples on a mesh of its own, and each job's params are sent there (``jax.device_put``) when queued;
    otherwise it shares the training mesh and samples from a copy."""
    if jax.process_count() > 1:
        raise ValueError(
            f"rollout.max_staleness={ctx.rc.max_staleness} runs on one process for now (this run has "
            f"{jax.process_count()}): give rollout.max_staleness=0 for a multi-process run"
        )
    mesh = sharding.rollout_mesh_from_config(ctx.c)
    sampler_ctx, send = ctx, None
    if mesh is not None:
        pl = sharding.placement(mesh, ctx.model_cfg, sharding.rules_from_config(ctx.c))
        sampler_ctx = dataclasses.replace(ctx, pl=pl)
        send = lambda params: jax.device_put(params, pl.param_shardings)  # noqa: E731
        ctx.log(
            f"asynchronous rollouts on {mesh.devices.size} devices of their own (mesh {dict(mesh.shape)}), "
            f"training on {ctx.pl.mesh.devices.size} (mesh {dict(ctx.pl.mesh.shape)})"
        )
    producer = RolloutProducer(
        lambda params, seed: stages.collect_rollouts(sampler_ctx, params, stream, seed),
        stream.get_state,
        lambda step: _seed_base(_step_key(key, step)),
        send=send,
    )
    stack.callback(producer.close)
    for s in range(start, min(start + ctx.rc.max_staleness, num_steps)):
        producer.submit(s, start, state.params)
    return producer


def _train(c, workdir: pathlib.Path, log, stop_after: int | None, stack, threaded: bool = False) -> dict:
    t_start = time.time()
    stop = stack.enter_context(GracefulStop())  # SIGTERM / SIGINT: finish the step, checkpoint, return
    ctx, params, train_rows, heldout_rows, counts = _set_up(c, workdir, log, stack)
    c, log = ctx.c, ctx.log  # the resolved config (config_lib.resolve_sources)
    n_proc, proc = jax.process_count(), jax.process_index()
    stream = PromptStream(train_rows, c.rollout.prompts_per_step, c.seed, shard_index=proc, shard_count=n_proc)
    ckpt = RunCheckpointer(
        workdir, every=c.checkpoint.every, keep=c.checkpoint.keep, checksums=c.checkpoint.checksums, log=log
    )
    writer = MetricsWriter(workdir, tensorboard=c.log.tensorboard, wandb=_wandb_args(ctx)) if ctx.main else NoWriter()
    state, loop, start = _restore_or_start(ctx, params, train_rows, heldout_rows, stream, ckpt, writer)
    loop.summary.update(counts)

    threshold = entropy_threshold(ctx, state.params, train_rows, loop, c.seed + 29)  # adaptive_entropy preset
    num_steps = c.train.num_steps
    if start > num_steps:
        raise ValueError(
            f"train.num_steps={num_steps} but {workdir} is already trained to step {start}; "
            f"give train.num_steps >= {start} (raising it extends the run)"
        )
    key = jax.random.key(c.seed)
    consecutive_skips = 0
    progress = None
    if c.log.progress and ctx.main:
        from tqdm import tqdm

        progress = tqdm(total=num_steps, initial=start, desc="rl", dynamic_ncols=True)
    if start < num_steps:
        log(
            f"RL steps {start + 1}..{num_steps}: compiling the sampler and the train step on the first one "
            "(per step: reward = mean reward, acc = share verified correct, ent = mean token entropy in nats, "
            "sec = seconds)"
        )
    hinted = False
    k = ctx.rc.max_staleness
    producer = _producer(ctx, stream, key, state, start, num_steps, stack) if k or threaded else None
    own_sampler = producer.exclusive if producer is not None else contextlib.nullcontext  # evaluations
    for step in range(start, num_steps):
        if stop.requested and n_proc == 1:  # during set-up: the checkpoint of step ``start`` is on disk
            return _stopped(ctx, loop, step, stop.name, writer, ckpt, progress)
        t0 = time.time()
        step_key = _step_key(key, step)
        knobs = sharding.conform(step_knobs(c, state.knobs, loop, step), ctx.pl.replicated)
        # rollout -> rewards -> filter (dynamic sampling); asynchronous: the rollout thread's batch of this
        # step, and the one of step + k queued with this step's params (docs/training.md)
        if producer is None:
            batch, info = stages.collect_rollouts(ctx, state.params, stream, _seed_base(step_key))
            data_state = None
        else:
            if k == 0:
                producer.submit(step, step, state.params)
            job, waited = producer.take(step)
            batch, info, data_state = job.batch, job.info, job.data_state
            if k and step + k < num_steps:
                producer.submit(step + k, step, state.params)
        t1 = time.time()
        # score -> advantages
        scored = stages.score_and_shape(ctx, state, batch, knobs, step=step)
        t2 = time.time()
        # update
        state, upd, skipped, n_updates = stages.update_policy(
            ctx, state.replace(knobs=knobs), batch, scored, step=step, step_key=step_key
        )
        consecutive_skips = consecutive_skips + 1 if skipped == n_updates else 0
        t3 = time.time()
        stages.dump_stage(ctx, state, batch, scored, step)
        # controllers
        mean_entropy = stages.masked_mean(scored.entropy, batch["mask"])
        epoch, n_epochs = schedule_epoch(
            step, num_steps, c.rollout.prompts_per_step, len(train_rows), c.train.schedule_epochs
        )
        knobs = advance_knobs(
            ctx.algo_cfg,
            state.knobs,  # the step's own knobs were donated with the state
            step=step,
            num_steps=num_steps,
            epoch=epoch,
            num_epochs=n_epochs,
            entropy=mean_entropy,
            entropy_target=threshold,
        )
        state = state.replace(knobs=sharding.conform(knobs, ctx.pl.replicated))
        # log / checkpoint
        info["skipped_updates"] = skipped
        times = {"rollout": t1 - t0, "score": t2 - t1, "update": t3 - t2}
        rec = stages.step_metrics(ctx, batch, scored, upd, info, times)
        rec.update({"lambda": float(knobs.lam), "entropy_coef": float(knobs.entropy_coef)})
        rec["time_step"] = time.time() - t0
        if k:  # asynchronous: the rows' age and how much of the update the sampler covered
            rec["staleness"] = float(step - job.version)
            rec.update(
                overlap_metrics(producer, step_t0=t0, train_t0=t1, train_t1=t3, step_t1=time.time(), waited=waited)
            )
        observe_stage(c, loop, step, rec["entropy"], rec["accuracy"], log)
        rec["position_active"] = float(knobs.position_active)
        if c.eval.every and ((step + 1) % c.eval.every == 0 or step + 1 == num_steps):
            with own_sampler():
                rec.update(
                    periodic_eval(
                        c, ctx.model_cfg, state.params, ctx.tokenizer, workdir, step + 1, log, ctx.pl.generate
                    )
                )
        if c.data.heldout_every and heldout_rows and (step + 1) % c.data.heldout_every == 0:
            with own_sampler():
                res = heldout_accuracy(
                    c, ctx.model_cfg, state.params, ctx.tokenizer, heldout_rows, ctx.score_fn,
                    seed=c.seed + 29 + step + 1, generate_fn=ctx.pl.generate,
                )  # fmt: skip
            rec["heldout_accuracy"] = res["accuracy"]
        writer.write(step + 1, rec)
        shown = {"reward": "reward", "acc": "accuracy", "ent": "entropy", "sec": "time_step"}
        if rec.get("staleness"):
            shown["stale"] = "staleness"
        if progress is not None:
            progress.set_postfix({k: f"{rec[v]:.3f}" for k, v in shown.items()})
            progress.update(1)
        else:  # one line per step when the progress bar is off
            first = " (first step: includes compiling)" if step == start else ""
            log(f"step {step + 1}/{num_steps} " + " ".join(f"{k} {rec[v]:.3f}" for k, v in shown.items()) + first)
        if not hinted and rec["accuracy"] == 0 and rec["response_clip_ratio"] == 1.0:
            hinted = True
            log(
                f"hint: every response of step {step + 1} was wrong and ran to rollout.max_new_tokens="
                f"{c.rollout.max_new_tokens} (reward {rec['reward']:.3f} = the incorrect reward plus the full "
                "overlong penalty): expected from a random or untrained model, e.g. a smoke preset on a random "
                "checkpoint; a trained checkpoint, an SFT warm start (sft.steps) or a larger budget changes it"
            )
        if consecutive_skips >= c.train.max_consecutive_skips:
            raise TrainingError(
                f"{consecutive_skips} steps in a row had only non-finite updates (last step "
                f"{step + 1}); stopping. Lower optim.lr or check the data."
            )
        preempt = stop_after is not None and step + 1 - start >= stop_after
        # every process stops after the same step (a signal may reach them at different times)
        asked = [stop.requested] if n_proc == 1 else sharding.process_allgather_json(stop.requested)
        signalled = any(asked) and step + 1 < num_steps
        # the stream's state after this step's draws (asynchronous: not after the jobs still in flight)
        loop.data_state = stream.get_state() if data_state is None else data_state
        ckpt.save(
            step + 1, state, loop.to_extra(step + 1), ctx.model_cfg, force=step + 1 == num_steps or preempt or signalled
        )
        if preempt or signalled:
            return _stopped(ctx, loop, step + 1, stop.name or f"stop_after={stop_after}", writer, ckpt, progress)
    if progress is not None:
        progress.close()
    return _finish(ctx, state, loop, heldout_rows, writer, ckpt, t_start)


def _stopped(ctx: RunContext, loop: LoopState, step: int, why: str, writer, ckpt, progress) -> dict:
    """Ends an interrupted invocation whose step ``step`` is checkpointed: closes the writers, says how to
    resume; the summary carries ``stopped_at`` (and ``signal`` when a signal stopped it)."""
    if progress is not None:
        progress.close()
    writer.close()
    ckpt.close()
    ctx.log(f"stopped after step {step} ({why}); checkpoint in {ckpt.dir}; run the same command again to resume")
    out = dict(loop.summary, stopped_at=step)
    if not why.startswith("stop_after"):
        out["signal"] = why
    return out


def _finish(ctx: RunContext, state, loop: LoopState, heldout_rows, writer, ckpt, t_start: float) -> dict:
    """Held-out accuracy after RL, ``summary.json`` and plots (process 0); closes the writers."""
    c, summary = ctx.c, loop.summary
    if heldout_rows:
        _heldout(ctx, state.params, heldout_rows, c.seed + 29, "after", summary)
    summary.update(steps=c.train.num_steps, wall_seconds=time.time() - t_start, workdir=str(ctx.workdir))
    if jax.process_count() > 1:
        summary["processes"] = jax.process_count()
    if ctx.main:
        (ctx.workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    writer.close()
    ckpt.close()
    if c.log.plots and ctx.main:
        from jaxrlvr.train.plots import plot_run

        plot_run(ctx.workdir)
    return summary
