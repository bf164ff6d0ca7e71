"""Orbax checkpoints of a training run: ``WORKDIR/checkpoints/<step>/{state, extra, model}``.

- ``state``: the ``TrainState`` pytree (params, optimizer state, update count, algorithm knobs).
- ``extra``: JSON: the RL step, the data iterator state (grain), controller and bookkeeping values.
- ``model``: JSON: the ``ModelConfig`` (so evaluation can rebuild the model from the folder alone).
- ``jaxrlvr_sha256.json``: the SHA-256 of every file of the step, written (atomically, by process 0) once the
  save is complete: a step folder without it is incomplete (a save that was killed) and is ignored with a
  warning (``checkpoint.checksums=False`` writes no sums; such steps are then only checked for finiteness).

Restoring (:meth:`RunCheckpointer.restore_latest`) verifies the newest complete step: every file present with
its checksum, every restored floating-point leaf finite. A damaged step is reported (the files named) and
moved to ``WORKDIR/checkpoints_damaged/<step>``, and the next newest intact step is restored instead; never
silently. ``load_params(path)`` (re-exported from :mod:`jaxrlvr.runs`) accepts a run's workdir, its
``checkpoints`` folder, one step folder, or a conversion checkpoint and returns ``(ModelConfig, params)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil

import jax
import jax.numpy as jnp

from jaxrlvr.models import ModelConfig
from jaxrlvr.runs import load_params  # noqa: F401 (re-exported: the run layout is read in jaxrlvr.runs)

SUMS_FILE = "jaxrlvr_sha256.json"


class CheckpointError(RuntimeError):
    """No intact checkpoint to resume from (every candidate is named with what is wrong with it)."""


class CheckpointSaveError(RuntimeError):
    """A save failed (e.g. a full disk); the previous complete checkpoint is left as it was."""


class _QuietStderr:
    """Captures file descriptor 2 while a save runs: a save failing on a full disk makes orbax's and
    tensorstore's threads print tracebacks of the same error; the caller reports it once. A successful
    save's output (warnings) is passed on; after a failure the threads get ``grace_s`` to finish first."""

    def __init__(self, grace_s: float = 1.0):
        self.grace_s = grace_s

    def __enter__(self):
        import sys
        import tempfile

        sys.stderr.flush()
        self._saved = os.dup(2)
        self._tmp = tempfile.TemporaryFile()
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, kind, e, tb):
        import sys
        import time

        if e is not None:
            time.sleep(self.grace_s)
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        if e is None:
            self._tmp.seek(0)
            data = self._tmp.read()
            if data:
                os.write(2, data)
        self._tmp.close()
        return False


def _root_cause(e: BaseException) -> BaseException:
    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        nxt = e.__cause__ or e.__context__
        if nxt is None:
            break
        e = nxt
    return e


def _sha256(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_sums(step_dir: pathlib.Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file below ``step_dir`` except the sums file itself."""
    return {
        str(p.relative_to(step_dir)): _sha256(p)
        for p in sorted(step_dir.rglob("*"))
        if p.is_file() and p.name != SUMS_FILE
    }


def verify_step_dir(step_dir: pathlib.Path) -> list[str]:
    """What is wrong with a step folder's files against its sums (empty: intact, or no sums written)."""
    sums_path = step_dir / SUMS_FILE
    if not sums_path.is_file():
        return []
    try:
        want = json.loads(sums_path.read_text())
    except (OSError, ValueError) as e:
        return [f"{sums_path} is unreadable ({e})"]
    problems = []
    for rel, digest in want.items():
        p = step_dir / rel
        if not p.is_file():
            problems.append(f"missing file {p}")
        elif _sha256(p) != digest:
            problems.append(f"checksum mismatch in {p}")
    return problems


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _nonfinite_leaves(tree) -> list[str]:
    bad = []
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact) and not bool(jnp.all(jnp.isfinite(x))):
            bad.append(jax.tree_util.keystr(path))
    return bad


class RunCheckpointer:
    """Save / restore of the whole run state every ``every`` steps, keeping the last ``keep``."""

    def __init__(self, workdir: str | os.PathLike, *, every: int, keep: int = 2, checksums: bool = True, log=print):
        import orbax.checkpoint as ocp

        if keep < 1:
            raise ValueError(f"checkpoint.keep must be >= 1 (the number of newest checkpoints kept), got {keep}")
        self.dir = pathlib.Path(workdir).absolute() / "checkpoints"
        self.every = every
        self.keep = keep
        self.checksums = checksums
        self.log = log
        self._ocp = ocp
        self.manager = self._manager()

    def _manager(self):
        ocp = self._ocp
        return ocp.CheckpointManager(
            self.dir,
            options=ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True, enable_async_checkpointing=False),
        )

    def _step_dirs(self) -> tuple[list[int], list[int]]:
        """(complete steps, incomplete steps), oldest first. Complete: the sums file is there (or, for a step
        saved without sums, orbax's metadata); anything else (a killed save, an empty folder) is incomplete."""
        if not self.dir.is_dir():
            return [], []
        complete, incomplete = [], []
        for p in sorted((q for q in self.dir.iterdir() if q.is_dir() and q.name.isdigit()), key=lambda q: int(q.name)):
            if len(p.name) > 12:  # not a step this trainer writes (orbax keeps steps in 64 bits)
                incomplete.append(int(p.name))
                continue
            done = (p / SUMS_FILE).is_file() or (p / "_CHECKPOINT_METADATA").is_file()
            (complete if done else incomplete).append(int(p.name))
        return complete, incomplete

    def complete_steps(self) -> list[int]:
        return self._step_dirs()[0]

    def latest_step(self) -> int | None:
        steps = self.complete_steps()
        return steps[-1] if steps else None

    def save(self, step: int, state, extra: dict, model_cfg: ModelConfig, *, force: bool = False) -> bool:
        ocp = self._ocp
        if not force and (self.every <= 0 or step % self.every):
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            extra=ocp.args.JsonSave(extra),
            model=ocp.args.JsonSave(dataclasses.asdict(model_cfg)),
        )
        step_dir = self.dir / str(step)
        if step_dir.exists() and not (step_dir / SUMS_FILE).is_file() and jax.process_index() == 0:
            shutil.rmtree(step_dir)  # an incomplete earlier attempt at this step
            self.manager = self._manager()
        previous = self.latest_step()
        try:
            with _QuietStderr():
                self.manager.save(step, args=args, force=True)
                self.manager.wait_until_finished()
                if jax.process_index() == 0:
                    sums = file_sums(step_dir) if self.checksums else {}
                    tmp = step_dir / (SUMS_FILE + ".tmp")
                    tmp.write_text(json.dumps(sums, indent=0, sort_keys=True) + "\n")
                    os.replace(tmp, step_dir / SUMS_FILE)  # written last: the step is complete
        except Exception as e:  # orbax wraps the OSError of a full or read-only disk in its own errors
            cause = _root_cause(e)
            why = getattr(cause, "strerror", None)
            if not why:  # tensorstore's errors carry the errno in their text
                code = re.search(r"os_error_code='?(\d+)", str(cause))
                why = os.strerror(int(code.group(1))) if code else f"{type(cause).__name__}: {str(cause)[:300]}"
            kept = f"step {previous} in {self.dir} is intact" if previous is not None else "no earlier checkpoint"
            raise CheckpointSaveError(
                f"saving the checkpoint of step {step} failed ({why}); {kept} (its partial folder is ignored "
                "on resume): free space and run the same command again"
            ) from e
        return True

    def restore(self, step: int, abstract_state) -> tuple[object, dict]:
        ocp = self._ocp
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), extra=ocp.args.JsonRestore())
        out = self.manager.restore(step, args=args)
        return out["state"], out["extra"]

    def restore_latest(self, abstract_state) -> tuple[int, object, dict] | None:
        """(step, state, extra) of the newest intact complete step, or ``None`` when there is none to resume.

        A damaged step (a file missing or changed since its save, an unreadable file, a non-finite restored
        value) is reported, moved to ``checkpoints_damaged/<step>`` and the next newest tried; if every step
        is damaged a :class:`CheckpointError` names each with its problems."""
        steps, incomplete = self._step_dirs()
        _sync("jaxrlvr-checkpoint-listed")  # every process lists before process 0 moves anything
        for step in incomplete:
            self.log(f"warning: ignoring incomplete checkpoint folder {self.dir / str(step)} (its save did not finish)")
        if incomplete:
            self._quarantine(incomplete)
        if not steps:
            return None
        damaged = []
        for step in reversed(steps):
            problems = verify_step_dir(self.dir / str(step))
            state = extra = None
            if not problems:
                try:
                    state, extra = self.restore(step, abstract_state)
                except (OSError, ValueError, KeyError) as e:  # orbax names a missing / unreadable file
                    problems = [f"cannot be read: {type(e).__name__}: {e}"]
            if not problems and int((extra or {}).get("step", step)) != step:
                problems = [f"its folder says step {step} but the checkpoint records step {extra.get('step')}"]
            if not problems:
                problems = [f"non-finite values in {leaf}" for leaf in _nonfinite_leaves(state)]
            if not problems:
                if damaged:
                    self._quarantine([s for s, _ in damaged])
                return step, state, extra
            self.log(f"warning: checkpoint step {step} in {self.dir} is damaged: {'; '.join(problems[:5])}")
            damaged.append((step, problems))
        lines = "\n".join(f"  step {s}: {'; '.join(p[:5])}" for s, p in damaged)
        raise CheckpointError(
            f"no intact checkpoint in {self.dir}:\n{lines}\nremove the damaged step folders to start over"
        )

    def _quarantine(self, steps) -> None:
        """Moves damaged or incomplete step folders out of the orbax directory (process 0), kept for
        inspection in ``checkpoints_damaged/``; every process then re-reads the directory."""
        if jax.process_index() == 0:
            dest = self.dir.parent / "checkpoints_damaged"
            dest.mkdir(exist_ok=True)
            for step in steps:
                target = dest / str(step)
                if target.exists():
                    shutil.rmtree(target)
                shutil.move(str(self.dir / str(step)), target)
                self.log(f"warning: moved checkpoint folder {self.dir / str(step)} to {target}")
        _sync("jaxrlvr-checkpoint-quarantine")
        self.manager = self._manager()

    def close(self):
        self.manager.close()
