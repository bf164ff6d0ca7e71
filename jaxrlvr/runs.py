"""What a training run leaves in its work directory, in one neutral module that the trainer (which writes it)
and evaluation / analysis (which read it) both use: rollout dumps, ``metrics.jsonl``, ``summary.json``,
``config.json``, and model params from a run checkpoint (:func:`load_params`).

Rollout dump format (written by the trainer with ``--config.train.dump_rollouts_every=K``, one file per
dumped step, ``WORKDIR/rollouts/step_NNNNNN.npz`` + ``step_NNNNNN.texts.json``). ``B = P * G`` rows, the
``G`` responses of a prompt contiguous; ``P`` prompt columns (left-padded), ``R`` response columns:

===============  =========  ==========================================================================
key              shape      meaning
===============  =========  ==========================================================================
``prompt_ids``   [B, P]     prompt token ids, left-padded
``prompt_mask``  [B, P]     1 on real prompt tokens
``tokens``       [B, R]     response token ids
``mask``         [B, R]     1 on response tokens (up to and including EOS)
``old_logp``     [B, R]     log-prob of each token under the rollout policy, at the rollout temperature
``entropy``      [B, R]     entropy (nats) of the rollout policy's next-token distribution
``adv``          [B, R]     token advantage after shaping (what the loss used)
``new_logp``     [B, R]     log-prob of the same tokens after the step's updates (same temperature)
``rewards``      [B]        scalar reward (+1 / -1, plus the overlong penalty when enabled)
``correct``      [B]        verifier result
``adv_group``    [B]        GRPO group advantage before shaping
``lengths``      [B]        response length in tokens
``truncated``    [B]        hit the token budget without EOS
``step``         []         the RL step (1-based: the dump after the step's update)
``group_size``   []         G
===============  =========  ==========================================================================

The texts file is a JSON list of the ``B`` decoded responses; ``step_NNNNNN.answers.json`` (when present)
the ``B`` gold answers the verifier compared them with (what per-token impact, Deng et al. Eq. 6, needs to
score continuations). ``step_NNNNNN.settings.json`` (when present) holds the settings in force when the dump
was written (:func:`dump_settings`: the ``rollout`` and ``algo`` sections and ``train.dump_rollouts_every``,
as dotted keys): a run resumed with another ``dump_rollouts_every`` has dumps written under different
settings, and ``config.json`` holds only the latest. :meth:`Run.dump_settings` reads them (for older dumps it
rebuilds them from ``config_history.jsonl``). ``RolloutDump.save`` writes the same format.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
import warnings

import numpy as np

_DUMP_RE = re.compile(r"^step_(\d+)\.npz$")
_BR_KEYS = ("tokens", "mask", "old_logp", "entropy", "adv", "new_logp")
_B_KEYS = ("rewards", "correct", "adv_group", "lengths", "truncated")
_BP_KEYS = ("prompt_ids", "prompt_mask")
DUMP_KEYS = _BP_KEYS + _BR_KEYS + _B_KEYS + ("step", "group_size")


@dataclasses.dataclass(frozen=True, eq=False)
class RolloutDump:
    """One dumped training batch (see the module docstring for every field)."""

    step: int
    group_size: int
    prompt_ids: np.ndarray
    prompt_mask: np.ndarray
    tokens: np.ndarray
    mask: np.ndarray
    old_logp: np.ndarray
    entropy: np.ndarray
    adv: np.ndarray
    new_logp: np.ndarray
    rewards: np.ndarray
    correct: np.ndarray
    adv_group: np.ndarray
    lengths: np.ndarray
    truncated: np.ndarray
    texts: list[str] | None = None
    answers: list[str] | None = None  # the gold answer of each row
    settings: dict | None = None  # the run's settings when the dump was written (dump_settings)

    def __post_init__(self):
        b, r = np.shape(self.tokens)[:2] if np.ndim(self.tokens) == 2 else (None, None)
        if b is None:
            raise ValueError(f"RolloutDump.tokens must have shape [B, R], got shape {np.shape(self.tokens)}")
        for k in _BR_KEYS:
            if np.shape(getattr(self, k)) != (b, r):
                raise ValueError(f"RolloutDump.{k} has shape {np.shape(getattr(self, k))}, expected {(b, r)}")
        for k in _B_KEYS:
            if np.shape(getattr(self, k)) != (b,):
                raise ValueError(f"RolloutDump.{k} has shape {np.shape(getattr(self, k))}, expected {(b,)}")
        for k in _BP_KEYS:
            s = np.shape(getattr(self, k))
            if len(s) != 2 or s[0] != b:
                raise ValueError(f"RolloutDump.{k} has shape {s}, expected [{b}, P]")
        if np.shape(self.prompt_ids) != np.shape(self.prompt_mask):
            raise ValueError(
                f"RolloutDump.prompt_ids {np.shape(self.prompt_ids)} and prompt_mask "
                f"{np.shape(self.prompt_mask)} differ in shape"
            )
        if self.group_size < 1 or b % self.group_size:
            raise ValueError(f"RolloutDump: batch of {b} rows is not a multiple of group_size={self.group_size}")
        for k in ("texts", "answers"):
            v = getattr(self, k)
            if v is not None and len(v) != b:
                raise ValueError(f"RolloutDump.{k} has {len(v)} entries for {b} rows")

    # ------------------------------------------------------------------------------------------ shapes
    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_prompts(self) -> int:
        return self.batch_size // self.group_size

    @property
    def positive(self) -> np.ndarray:
        """[B] bool: correct responses (the papers' "positive samples")."""
        return np.asarray(self.correct, bool)

    def prompt(self, i: int) -> list[int]:
        """The unpadded prompt ids of row ``i``."""
        return [int(t) for t, m in zip(self.prompt_ids[i], self.prompt_mask[i], strict=True) if m]

    def response(self, i: int) -> list[int]:
        """The response ids of row ``i`` (its valid tokens, EOS included)."""
        return [int(t) for t, m in zip(self.tokens[i], self.mask[i], strict=True) if m]

    # --------------------------------------------------------------------------------------------- I/O
    @classmethod
    def load(cls, path: str | os.PathLike) -> RolloutDump:
        """Reads ``step_NNNNNN.npz`` (and its ``.texts.json`` / ``.answers.json`` when present); names a
        missing key."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"rollout dump {path} does not exist")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in DUMP_KEYS if k not in z.files]
            if missing:
                raise ValueError(f"rollout dump {path} lacks the arrays {missing} (has {sorted(z.files)})")
            arrays = {k: np.asarray(z[k]) for k in DUMP_KEYS}
        side = {}
        for k in ("texts", "answers", "settings"):
            side_path = _side_path(path, k)
            side[k] = json.loads(side_path.read_text()) if side_path.is_file() else None
        return cls(step=int(arrays.pop("step")), group_size=int(arrays.pop("group_size")), **side, **arrays)

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes the documented format (npz + texts / answers JSON when set); returns the npz path."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(getattr(self, k)) for k in _BP_KEYS + _BR_KEYS + _B_KEYS}
        np.savez_compressed(path, step=self.step, group_size=self.group_size, **arrays)
        for k in ("texts", "answers"):
            v = getattr(self, k)
            if v is not None:
                _side_path(path, k).write_text(json.dumps([str(t) for t in v]))
        if self.settings is not None:
            _side_path(path, "settings").write_text(json.dumps(self.settings, sort_keys=True, default=str))
        return path


def _side_path(npz_path: pathlib.Path, kind: str) -> pathlib.Path:
    return npz_path.with_name(npz_path.name[: -len(".npz")] + f".{kind}.json")


def dump_path(workdir: str | os.PathLike, step: int) -> pathlib.Path:
    """``WORKDIR/rollouts/step_NNNNNN.npz``."""
    return pathlib.Path(workdir) / "rollouts" / f"step_{step:06d}.npz"


def list_dumps(workdir: str | os.PathLike) -> dict[int, pathlib.Path]:
    """``{step: path}`` of every rollout dump of a run, in step order (empty when there are none)."""
    d = pathlib.Path(workdir) / "rollouts"
    if not d.is_dir():
        return {}
    found = {}
    for p in d.iterdir():
        m = _DUMP_RE.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


DUMP_SETTING_SECTIONS = ("rollout.", "algo.", "train.dump_rollouts_every")


def dump_settings(config: dict) -> dict:
    """The settings a rollout dump records (dotted keys): the ``rollout`` and ``algo`` sections and
    ``train.dump_rollouts_every`` of a config dict (``config.json``'s layout)."""
    return {k: v for k, v in _flat(config).items() if k.startswith(DUMP_SETTING_SECTIONS)}


def _finite(v) -> float:
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """What ``load_run`` found in a work directory."""

    workdir: pathlib.Path
    metrics: list[dict]
    summary: dict
    config: dict | None
    dumps: dict[int, pathlib.Path]

    @property
    def steps(self) -> np.ndarray:
        """[N] int: the ``step`` of every metrics record."""
        return np.asarray([int(r["step"]) for r in self.metrics], dtype=np.int64)

    def series(self, key: str) -> np.ndarray:
        """[N] float64 values of ``key`` per metrics record; NaN where missing, null or non-numeric."""
        return np.asarray([_finite(r.get(key)) for r in self.metrics], dtype=np.float64)

    def has(self, key: str) -> bool:
        return any(key in r for r in self.metrics)

    def dump(self, step: int) -> RolloutDump:
        if step not in self.dumps:
            raise KeyError(f"no rollout dump for step {step} in {self.workdir} (have {list(self.dumps)})")
        return RolloutDump.load(self.dumps[step])

    def dump_settings(self, step: int) -> tuple[dict, str]:
        """(settings in force when the dump of ``step`` was written, where they come from): the dump's own
        ``settings.json``; for a dump without one, ``config.json`` with every later change in
        ``config_history.jsonl`` (an invocation after the dump was written) undone; else ``config.json``."""
        path = self.dumps.get(int(step))
        if path is None:  # a dump from elsewhere: only the current config is known
            return dump_settings(self.config or {}), "config.json"
        side = _side_path(path, "settings")
        if side.is_file():
            return json.loads(side.read_text()), "dump"
        now = dump_settings(self.config or {})
        history = read_config_history(self.workdir)
        if not history:
            return now, "config.json"
        import calendar
        import time

        written = path.stat().st_mtime
        for rec in reversed(history):
            try:
                t = calendar.timegm(time.strptime(rec["time"], "%Y-%m-%dT%H:%M:%SZ"))
            except (KeyError, ValueError):
                continue
            if t <= int(written):
                break
            for k, (old, _new) in rec.get("changed", {}).items():
                if k.startswith(DUMP_SETTING_SECTIONS):
                    now[k] = old
        return now, "config_history.jsonl"

    def dump_value(self, step: int, dotted: str, default=None):
        """One setting in force when the dump of ``step`` was written (:meth:`dump_settings`), or ``default``."""
        v = self.dump_settings(step)[0].get(dotted)
        return default if v is None else v

    def config_value(self, dotted: str, default=None):
        """A value of the run's ``config.json`` by dotted key (``"rollout.temperature"``), or ``default``.
        For what a rollout dump was made with, use :meth:`dump_value` (a resume may have changed it)."""
        node = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def load_run(workdir: str | os.PathLike) -> Run:
    """Reads ``metrics.jsonl`` (required), ``summary.json`` and ``config.json`` (optional) and lists the
    rollout dumps of a run directory. Records are sorted by step; a resumed run's duplicates keep the last.
    """
    workdir = pathlib.Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"run directory {workdir} does not exist")
    mpath = workdir / "metrics.jsonl"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: is {workdir} a training run directory?")
    by_step = {}
    for i, rec in enumerate(read_metrics(mpath)):
        if "step" not in rec:
            raise ValueError(f"{mpath}: record {i} has no 'step' key")
        by_step[int(rec["step"])] = rec
    metrics = [by_step[s] for s in sorted(by_step)]

    def read_json(name):
        p = workdir / name
        return json.loads(p.read_text()) if p.is_file() else None

    return Run(
        workdir=workdir,
        metrics=metrics,
        summary=read_json("summary.json") or {},
        config=read_json("config.json"),
        dumps=list_dumps(workdir),
    )


class MetricsFileError(ValueError):
    """A malformed line in ``metrics.jsonl`` (the message names the file and line)."""


def read_metrics(path: str | os.PathLike, *, torn_tail: str = "error") -> list[dict]:
    """The records of a ``metrics.jsonl`` file, in order. A line that is not a JSON object is a
    :class:`MetricsFileError` naming file and line; with ``torn_tail="drop"`` an unterminated malformed
    *last* line (what a kill during an append leaves) is dropped with a warning instead."""
    path = pathlib.Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError(f"a record must be a JSON object, got {type(rec).__name__}")
        except ValueError as e:
            torn = i == len(lines) and not text.endswith("\n")
            if torn and torn_tail == "drop":
                warnings.warn(f"{path}:{i}: dropping a torn last line (interrupted write): {line[:80]!r}", stacklevel=2)
                continue
            raise MetricsFileError(f"{path}:{i}: malformed metrics line ({e}): {line[:80]!r}") from None
        out.append(rec)
    return out


def _latest_step_dir(ckpt_dir: pathlib.Path) -> pathlib.Path:
    steps = sorted((int(p.name), p) for p in ckpt_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not steps:
        raise FileNotFoundError(f"no step folders in {ckpt_dir}")
    return steps[-1][1]


def run_config(path: str | os.PathLike) -> dict | None:
    """The trainer's ``config.json`` of the run that ``path`` belongs to (a run workdir, its checkpoints
    folder or a step folder), or None (e.g. a conversion output or a Hugging Face folder)."""
    path = pathlib.Path(path).absolute()
    for folder in (path, *list(path.parents)[:3]):
        f = folder / "config.json"
        if f.is_file() and (folder / "checkpoints").is_dir():
            raw = json.loads(f.read_text())
            if isinstance(raw, dict) and "tokenizer" in raw and "model" in raw:
                return raw
    return None


def run_tokenizer(path: str | os.PathLike) -> str | None:
    """The tokenizer a run was trained with (``"char"`` or a folder: its ``tokenizer``, else its
    ``model.hf_path``), or None when ``path`` is not inside a run."""
    raw = run_config(path)
    if raw is None:
        return None
    return raw.get("tokenizer") or (raw.get("model") or {}).get("hf_path") or None


def load_params(path: str | os.PathLike):
    """(ModelConfig, params) from a run workdir / checkpoints folder / step folder / conversion output, restored
    onto this process's first device whatever mesh (or number of processes) wrote the checkpoint."""
    import jax
    import orbax.checkpoint as ocp

    from jaxrlvr.models import ModelConfig, abstract_params
    from jaxrlvr.models import checkpoint as model_ckpt

    path = pathlib.Path(path).absolute()
    if (path / model_ckpt.CONFIG_FILE).is_file():
        return model_ckpt.load_params(path)
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if not (path / "state").is_dir() and path.is_dir():
        path = _latest_step_dir(path)
    if not (path / "model").exists() or not (path / "state").is_dir():
        raise FileNotFoundError(f"{path} is neither a jaxrlvr run checkpoint nor a model checkpoint")
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as c:
        model_cfg = ModelConfig(**c.restore(path / "model"))
    target = {"params": abstract_params(model_cfg)}
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    with ocp.PyTreeCheckpointer() as c:
        restored = c.restore(
            path / "state",
            args=ocp.args.PyTreeRestore(
                item=target,
                restore_args=jax.tree.map(
                    lambda x: ocp.ArrayRestoreArgs(sharding=device, global_shape=x.shape, dtype=x.dtype), target
                ),
                partial_restore=True,
            ),
        )
    return model_cfg, restored["params"]


_EVAL_RE = re.compile(r"^step_(\d+)$")


def find_eval_summaries(workdir: str | os.PathLike) -> dict[int, dict[str, float]]:
    """``{step: {benchmark: acc_at_n}}`` from ``WORKDIR/eval/step_NNNNNN/summary.json`` files."""
    root = pathlib.Path(workdir) / "eval"
    out: dict[int, dict[str, float]] = {}
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        m = _EVAL_RE.match(d.name)
        if m and (d / "summary.json").is_file():
            out[int(m.group(1))] = read_eval_summary(d / "summary.json")
    return out


def read_eval_summary(path: str | os.PathLike) -> dict[str, float]:
    """``{benchmark: acc_at_n}`` of one ``scripts/evaluate.py`` ``summary.json``."""
    payload = json.loads(pathlib.Path(path).read_text())
    summaries = payload.get("summaries", payload)
    items = summaries.values() if isinstance(summaries, dict) else summaries
    out = {}
    for s in items:
        if isinstance(s, dict) and "benchmark" in s and isinstance(s.get("acc_at_n"), int | float):
            out[str(s["benchmark"])] = float(s["acc_at_n"])
    return out


# ------------------------------------------------------------------------------------------ config history
CONFIG_HISTORY = "config_history.jsonl"


def _flat(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_changes(old: dict | None, new: dict) -> dict[str, list]:
    """``{dotted key: [old value, new value]}`` for every key whose value differs (a key missing on one side
    has ``None`` there)."""
    a, b = _flat(old), _flat(new)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def append_config_history(workdir: str | os.PathLike, old: dict | None, new: dict, *, event: str) -> dict:
    """Appends one line to ``WORKDIR/config_history.jsonl``: time (UTC), host, pid, command, ``event``
    (``start`` / ``resume``) and ``changed`` (the keys that differ from the previous ``config.json``, old and
    new values). ``config.json`` itself always holds the current config; this file says how it got there."""
    import socket
    import sys
    import time

    rec = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": " ".join(sys.argv)[:2000],
        "event": event,
        "changed": config_changes(old, new) if old is not None else {},
    }
    with open(pathlib.Path(workdir) / CONFIG_HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
    return rec


def read_config_history(workdir: str | os.PathLike) -> list[dict]:
    path = pathlib.Path(workdir) / CONFIG_HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
