"""What crosses RL steps besides the ``TrainState``: the run's summary, the stage detector's history, the
data iterator's position (:class:`LoopState`, saved with every checkpoint), and the controllers that set
the next step's algorithm knobs (shaping windows, Pos-Adv lambda, adaptive entropy coefficient, the stage
detector that starts position shaping)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxrlvr import algos
from jaxrlvr.algos.stages import detect_plateau_start


@dataclasses.dataclass
class LoopState:
    """The loop's host-side state, checkpointed as JSON next to the ``TrainState`` (``extra`` of
    :class:`jaxrlvr.train.checkpoint.RunCheckpointer`).

    ``stage``: the stage detector's input curves (``entropy``, ``accuracy``: one value per RL step) and the
    step from which position shaping runs (``plateau_at``, ``None`` until the detector fires).
    ``data_state``: the prompt stream's iterator state (grain), taken right before each save.
    """

    summary: dict = dataclasses.field(default_factory=dict)
    stage: dict = dataclasses.field(default_factory=lambda: {"entropy": [], "accuracy": [], "plateau_at": None})
    data_state: dict | None = None

    def to_extra(self, step: int) -> dict:
        return {"step": step, "data_state": self.data_state, "summary": self.summary, "stage": self.stage}

    @classmethod
    def from_extra(cls, extra: dict) -> LoopState:
        fresh = cls()
        return cls(
            summary=extra.get("summary", {}),
            stage=extra.get("stage", fresh.stage),
            data_state=extra.get("data_state"),
        )


def window_active(window, step: int) -> float:
    """1.0 while ``step`` is in ``[start, start + n)`` for ``window = (start, n)`` (``n < 0``: forever)."""
    start, n = int(window[0]), int(window[1])
    return float(step >= start and (n < 0 or step < start + n))


def position_active(c, stage: dict, step: int) -> float:
    """Position shaping's on/off: a fixed window, or (``train.position_auto``) ``position_window[1]`` steps
    from the step after the stage detector (:func:`jaxrlvr.algos.stages.detect_plateau_start`) first sees
    the plateau."""
    if not c.train.position_auto:
        return window_active(c.train.position_window, step)
    if stage["plateau_at"] is None:
        return 0.0
    return window_active((stage["plateau_at"], c.train.position_window[1]), step)


def step_knobs(c, knobs, loop: LoopState, step: int):
    """The knobs of step ``step`` (host numpy): the state's knobs with the shaping windows' on/off set."""
    return jax.tree.map(np.asarray, knobs)._replace(
        ppl_active=np.float32(window_active(c.train.ppl_window, step)),
        position_active=np.float32(position_active(c, loop.stage, step)),
    )


def schedule_epoch(step: int, num_steps: int, prompts_per_step: int, train_size: int, schedule_epochs: int = 0):
    """(1-based epoch after RL step ``step`` (0-based), number of epochs) for epoch-wise schedules.

    ``schedule_epochs == 0``: real passes over ``train_size`` training prompts at ``prompts_per_step`` per
    step, at least 2 (the Pos-Adv epoch schedule needs 2). ``schedule_epochs = E >= 2``: the run's
    ``num_steps`` split into E equal phases, epoch ``1 + floor((step + 1) E / num_steps)`` capped at E (how a
    scaled-down run keeps a paper's epoch count)."""
    if schedule_epochs:
        return min(schedule_epochs, 1 + ((step + 1) * schedule_epochs) // max(num_steps, 1)), schedule_epochs
    n = max(2, -(-num_steps * prompts_per_step // max(train_size, 1)))
    return min(n, 1 + ((step + 1) * prompts_per_step) // max(train_size, 1)), n


def advance_knobs(
    algo_cfg, knobs, *, step: int, num_steps: int, epoch: int, num_epochs: int, entropy: float, entropy_target=None
):
    """The next step's knobs after step ``step`` (0-based): Pos-Adv lambda schedules and the adaptive entropy
    coefficient (``algos.advance_step_state``), as host numpy. ``entropy_target`` (the threshold measured by
    :func:`entropy_threshold`) replaces ``algo_cfg.entropy_target`` when given."""
    if entropy_target is not None:
        algo_cfg = dataclasses.replace(algo_cfg, entropy_target=float(entropy_target))
    knobs = algos.advance_step_state(
        algo_cfg,
        jax.tree.map(np.asarray, knobs),
        step=step + 1,
        total_steps=num_steps,
        epoch=epoch,
        num_epochs=num_epochs,
        entropy=np.float32(entropy),
    )
    return jax.tree.map(np.asarray, knobs)


def observe_stage(c, loop: LoopState, step: int, entropy: float, accuracy: float, log) -> None:
    """Feeds step ``step``'s curves to the stage detector; the first time it sees the plateau (with
    ``train.position_auto``), position shaping is scheduled from the next step."""
    loop.stage["entropy"].append(entropy)
    loop.stage["accuracy"].append(accuracy)
    if c.train.position_auto and loop.stage["plateau_at"] is None:
        if detect_plateau_start(loop.stage["entropy"], loop.stage["accuracy"]) is not None:
            loop.stage["plateau_at"] = step + 1  # position shaping starts with the next step
            loop.summary["plateau_detected_at_step"] = step + 1
            log(f"stage detector: plateau reached at step {step + 1}; position shaping starts")


def entropy_threshold(ctx, params, train_rows, loop: LoopState, seed: int) -> float | None:
    """The adaptive entropy controller's threshold measured before RL (Revisiting, arXiv 2511.05993, 5.1: "we
    randomly sample 1,000 prompts from the training set and compute the model's response entropy before
    training. The computed entropy value is set as the threshold"), or None when
    ``train.entropy_threshold_prompts`` is 0 (``algo.entropy_target`` is used as given).

    ``train.entropy_threshold_prompts`` prompts, rounded up to whole rollout batches of
    ``rollout.prompts_per_step`` (so the compiled sampler and scorer are reused: 1,000 -> 4 x 256 = 1,024),
    drawn without replacement (seeded) from the training prompts, ``rollout.group_size`` responses each at
    the rollout settings; the threshold is the token-pooled mean entropy of those responses under ``params``
    (the initial policy), as the trainer's ``entropy`` metric is measured. Stored in ``loop.summary``
    (``entropy_threshold``), so a resumed run keeps it; logged. Every process takes part (global rows)."""
    from jaxrlvr import sharding
    from jaxrlvr.train import stages

    c = ctx.c
    n = int(c.train.entropy_threshold_prompts)
    if n <= 0:
        return None
    if "entropy_threshold" in loop.summary:
        return float(loop.summary["entropy_threshold"])
    per = c.rollout.prompts_per_step
    total = -(-n // per) * per
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(train_rows), size=total, replace=len(train_rows) < total)
    tot = cnt = 0.0
    for b in range(total // per):
        rows = [train_rows[i] for i in idx[b * per : (b + 1) * per]]
        part = stages.rollout(
            ctx.model_cfg,
            params,
            rows,
            cfg=ctx.rc,
            tokenizer=ctx.tokenizer,
            score_fn=ctx.score_fn,
            seed=seed + b,
            generate_fn=ctx.pl.generate,
        )
        _, ent = stages.score_tokens(ctx, params, part)
        ent, m = np.asarray(sharding.to_host(ent), np.float64), np.asarray(part["mask"]) != 0
        tot, cnt = tot + float(np.where(m, ent, 0.0).sum()), cnt + float(m.sum())
    h = tot / max(cnt, 1.0)
    loop.summary.update(entropy_threshold=h, entropy_threshold_prompts=total)
    ctx.log(f"adaptive entropy threshold: {h:.4f} (initial response entropy on {total} training prompts)")
    return h
