"""The run configuration: one ``ml_collections.ConfigDict`` tree shared by every config file, and its
validation (before anything is compiled).

Config files in ``configs/`` start from :func:`base_config` and change fields; the command line overrides
any field (``--config.rollout.temperature=0.6``) and an unknown key is an error (the dict is locked).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib

import ml_collections

from jaxrlvr.algos import AlgoConfig
from jaxrlvr.models import PRESETS
from jaxrlvr.models.paged_attention_kernels import decode_kernel_error
from jaxrlvr.sharding import DEFAULT_RULES, check_mesh_shape, validate_rules
from jaxrlvr.train.rollout import RolloutConfig
from jaxrlvr.train.step import OptimConfig


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Set by the ``smoke`` preset (configs/_smoke.py): sizes shrink, but a model, tokenizer or data file
    # given on the command line is kept (``resolve_sources``).
    c.smoke = False

    c.model = ml_collections.ConfigDict()
    c.model.preset = "tiny"  # a ModelConfig preset, used when no hf_path / init_ckpt is given
    c.model.hf_path = ""  # local Hugging Face folder (weights + config.json + tokenizer)
    c.model.init_ckpt = ""  # jaxrlvr checkpoint (conversion output or a run) to start from
    c.model.dtype = "float32"
    c.model.param_dtype = "float32"
    c.model.remat = "none"
    c.model.attention_impl = (
        "auto"  # auto | xla_blockwise | dense | cudnn | pallas_tpu | pallas_gpu (docs/training.md "Packing")
    )
    # For presets built from scratch: fields overriding the preset (e.g. the demo's tiny char model).
    c.model.hidden_size = 0
    c.model.intermediate_size = 0
    c.model.num_layers = 0
    c.model.num_heads = 0
    c.model.num_kv_heads = 0
    c.model.vocab_size = 0  # 0: the preset's; -1: the tokenizer's size
    # Context overrides, applied to presets, hf_path and init_ckpt models alike (0: keep the model's). Needed
    # for Qwen2.5-Math-7B (config.json: 4096 positions, rope_theta 1e4) at the papers' 1024 + 8192 tokens.
    c.model.max_position_embeddings = 0
    c.model.rope_theta = 0.0

    c.tokenizer = ""  # "char", a folder, or "" for model.hf_path

    c.data = ml_collections.ConfigDict()
    c.data.source = "synthetic"  # synthetic | file
    c.data.path = ""  # jsonl / parquet training file; a given path selects data.source="file"
    c.data.problem_key = "problem"
    c.data.answer_key = "answer"
    c.data.id_key = "id"
    c.data.template = "qwen_math_cot"
    c.data.skip_bad_rows = False
    # Prompts longer than rollout.max_prompt_len: dropped and counted (log, summary.json), as verl's
    # filter_overlong_prompts; False: an error at load time, before anything is compiled.
    c.data.filter_overlong_prompts = True
    c.data.synthetic_digits = 2
    c.data.synthetic_task = "add"  # add (the demo's) | testbed (the study's, jaxrlvr/data/testbed.py)
    c.data.synthetic_train = 6000
    c.data.heldout = 320  # held-out problems (synthetic source) for accuracy before / after RL
    c.data.heldout_samples = 4
    c.data.heldout_every = 0  # held-out accuracy every K RL steps too (metrics.jsonl "heldout_accuracy"); 0: never

    c.rollout = ml_collections.ConfigDict(dataclasses.asdict(RolloutConfig()))
    c.rollout.prompts_per_step = 16

    algo = dataclasses.asdict(AlgoConfig())
    algo.pop("group_size")  # set from rollout.group_size
    c.algo = ml_collections.ConfigDict(algo)
    c.algo.clip_c = ml_collections.FieldReference(None, field_type=float)
    c.algo.loss_norm_len = ml_collections.FieldReference(None, field_type=int)

    optim = dataclasses.asdict(OptimConfig())
    optim.pop("updates_per_step")  # derived from train.* (optim_config)
    c.optim = ml_collections.ConfigDict(optim)  # warmup_steps / total_steps in RL steps

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 100
    c.train.mini_batch_prompts = 16  # prompts per optimizer update (x G sequences)
    c.train.micro_batch_size = 16  # sequences per forward/backward (padded rows, train.packing=False)
    c.train.packing = True  # pack sequences into token-budget micro-batches (docs/training.md "Packing")
    c.train.max_tokens_per_micro_batch = 16384  # packed: token slots per device per forward/backward
    # Passes over the rollout batch. NOT the papers' N: N (off-policy updates per rollout batch) is the number
    # of mini-batches, rollout.prompts_per_step / train.mini_batch_prompts; updates per step = N * ppo_epochs.
    c.train.ppo_epochs = 1
    # The first mini-batch's old log-probs from its own update's forward (exact: nothing is updated yet), so
    # the scoring pass covers only the other rows (none with one mini-batch); docs/training.md "Old log-probs"
    c.train.reuse_first_old_logp = True
    # The sampler's log-probs as the behaviour policy on every step, also at rollout.max_staleness=0: corrects
    # the sampler's and the trainer's numerics (e.g. a bf16 sampler) with algo.stale_correction (TIS by
    # default); docs/training.md "Old log-probs"
    c.train.sampler_logp_correction = False
    c.train.shuffle_minibatches = True
    c.train.dynamic_sampling = False
    c.train.max_gen_batches = 3
    c.train.max_consecutive_skips = 3
    # Epochs seen by epoch-wise schedules (Pos-Adv "epoch"): 0 = real passes over the training prompts;
    # N >= 2 = the run split into N equal phases (a scaled-down run that keeps the paper's epoch count:
    # configs/study.py)
    c.train.schedule_epochs = 0
    c.train.entropy_threshold_prompts = 0  # >0: algo.entropy_target = initial entropy on this many prompts
    c.train.dump_rollouts_every = 0  # save the trained-on batch every K steps (0: never); see docs/training.md
    c.train.ppl_window = (0, -1)  # (start step, number of steps; -1 = to the end) PPL shaping is active
    c.train.position_window = (0, -1)  # same for position shaping
    c.train.position_auto = False  # start position shaping when the stage detector sees the plateau

    c.sft = ml_collections.ConfigDict()
    c.sft.steps = 0  # warm start (synthetic source: the noisy teacher)
    c.sft.batch_size = 64
    c.sft.lr = 3e-3
    c.sft.seq_len = 96
    c.sft.step_error = 0.1
    c.sft.answer_error = 0.5

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 50
    c.checkpoint.keep = 2  # the newest checkpoints kept (>= 1)
    c.checkpoint.checksums = True  # SHA-256 of every checkpoint file, verified on resume (docs/training.md)

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 0  # evaluate every K RL steps and at the end (0: never); results go to metrics.jsonl
    c.eval.benchmarks = "math500"  # comma-separated names or files (jaxrlvr.eval registry)
    c.eval.num_samples = 8
    c.eval.temperature = 0.6
    c.eval.top_p = 0.95
    c.eval.max_new_tokens = 0  # 0: rollout.max_new_tokens
    c.eval.max_problems = 0  # 0: all
    c.eval.template = ""  # "": each benchmark's default
    c.eval.keep_best = False  # keep the params of the best first-benchmark acc_at_n in WORKDIR/best_validated/

    c.reward = ml_collections.ConfigDict()
    c.reward.workers = 2
    c.reward.timeout_s = 5.0

    c.log = ml_collections.ConfigDict()
    c.log.tensorboard = True
    c.log.progress = True
    c.log.plots = True
    # Weights & Biases (optional extra: pip install -e '.[wandb]'; docs/training.md "Logging"): the same scalars
    # as metrics.jsonl, the config at start. Mode "auto": online with credentials, offline (files only) without.
    c.log.wandb = False
    c.log.wandb_project = "jaxrlvr"
    c.log.wandb_name = ""  # "": the workdir's name
    c.log.wandb_mode = "auto"  # "auto", "online", "offline" or "disabled"

    # Devices (docs/mesh.md): mesh axes (data, fsdp, tensor); -1 = the rest of the devices. Only this
    # section may change when a run resumes (move a run to another mesh by changing it).
    c.mesh = ml_collections.ConfigDict()
    c.mesh.shape = (-1, 1, 1)
    c.mesh.devices = -1  # use the first N devices (-1: all; multi-process runs use all)
    # Asynchronous rollouts on devices of their own (rollout.max_staleness >= 1; docs/training.md): 0 =
    # colocated; n >= 1 = the last n devices sample; a fraction in (0, 1) = that share of the devices
    c.mesh.rollout_devices = 0.0
    c.mesh.rollout_shape = (-1, 1, 1)  # the sampling mesh's (data, fsdp, tensor) shape over those devices
    c.mesh.rules = DEFAULT_RULES  # ordered (logical axis, mesh axes) pairs ending in the catch-all ("*", None)
    c.mesh.distributed = ml_collections.ConfigDict()
    c.mesh.distributed.coordinator_address = ""  # host:port of process 0 (or JAX_COORDINATOR_ADDRESS)
    c.mesh.distributed.num_processes = 0  # (or JAX_NUM_PROCESSES)
    c.mesh.distributed.process_id = -1  # (or JAX_PROCESS_ID)
    c.mesh.distributed.auto = False  # JAX's cluster detection (SLURM, Open MPI, Kubernetes, TPU)
    c.mesh.distributed.timeout_s = 300
    return c


WANDB_MODES = ("auto", "online", "offline", "disabled")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # sys.modules[module] is None: imports of it are blocked
        return False


def _validate_log(log) -> None:
    if log.wandb_mode not in WANDB_MODES:
        raise ValueError(f"log.wandb_mode={log.wandb_mode!r}: use one of {list(WANDB_MODES)}")
    if log.wandb and not log.wandb_project:
        raise ValueError("log.wandb=True needs a log.wandb_project (got an empty one)")
    if log.wandb and not _installed("wandb"):
        raise ValueError(
            "log.wandb=True but the wandb package is not installed; install the extra with "
            "pip install -e '.[wandb]' (or leave log.wandb=False)"
        )


def validate(c: ml_collections.ConfigDict) -> None:
    """Checks the whole config; raises ValueError naming the field and the value. Runs before any compile."""
    if c.model.preset not in PRESETS and not c.model.hf_path and not c.model.init_ckpt:
        raise ValueError(
            f"model.preset={c.model.preset!r} is not a preset ({sorted(PRESETS)}) and no "
            "model.hf_path / model.init_ckpt is given"
        )
    for key in ("hf_path", "init_ckpt"):
        p = c.model[key]
        if p and not pathlib.Path(p).is_dir():
            raise ValueError(f"model.{key}={p!r} does not exist")
    if c.model.hf_path and not (pathlib.Path(c.model.hf_path) / "config.json").is_file():
        raise ValueError(f"model.hf_path={c.model.hf_path!r} has no config.json")
    if c.data.source not in ("synthetic", "file"):
        raise ValueError(f"data.source must be 'synthetic' or 'file', got {c.data.source!r}")
    if c.data.synthetic_task not in ("add", "testbed"):
        raise ValueError(f"data.synthetic_task must be 'add' or 'testbed', got {c.data.synthetic_task!r}")
    if c.data.source == "file" and not pathlib.Path(c.data.path).is_file():
        raise ValueError(f"data.path={c.data.path!r} is not a file (data.source='file')")
    rc = rollout_config(c)
    if (err := decode_kernel_error(rc.decode_kernel)) is not None:
        raise ValueError(f"rollout.decode_kernel={rc.decode_kernel!r}: {err}")
    ctx_len = model_context(c)
    if rc.max_prompt_len + rc.max_new_tokens > ctx_len:
        raise ValueError(
            f"rollout.max_prompt_len + rollout.max_new_tokens = {rc.max_prompt_len + rc.max_new_tokens} is beyond "
            f"the model's context (max_position_embeddings={ctx_len}); set model.max_position_embeddings (and "
            "model.rope_theta, docs/training.md) to extend it, or shorten the rollout"
        )
    _ = algo_config(c)
    _ = optim_config(c)
    t = c.train
    for key in ("num_steps", "mini_batch_prompts", "micro_batch_size", "ppo_epochs", "max_gen_batches"):
        if t[key] < 1:
            raise ValueError(f"train.{key} must be >= 1, got {t[key]}")
    p = c.rollout.prompts_per_step
    if p < 1:
        raise ValueError(f"rollout.prompts_per_step must be >= 1, got {p}")
    if p % t.mini_batch_prompts:
        raise ValueError(
            f"rollout.prompts_per_step={p} is not divisible by train.mini_batch_prompts={t.mini_batch_prompts}"
        )
    rows = t.mini_batch_prompts * rc.group_size
    if rows % t.micro_batch_size:
        raise ValueError(
            f"a mini-batch of {rows} sequences (train.mini_batch_prompts x rollout.group_size) is not "
            f"divisible by train.micro_batch_size={t.micro_batch_size}"
        )
    if p * rc.group_size % t.micro_batch_size:
        raise ValueError(
            f"the rollout batch ({p * rc.group_size} sequences) is not divisible by "
            f"train.micro_batch_size={t.micro_batch_size}"
        )
    longest = rc.max_prompt_len + rc.max_new_tokens
    if t.packing and t.max_tokens_per_micro_batch < longest:
        raise ValueError(
            f"train.max_tokens_per_micro_batch={t.max_tokens_per_micro_batch} cannot hold a sequence of "
            f"rollout.max_prompt_len + rollout.max_new_tokens = {longest} tokens; raise it to >= {longest}"
        )
    if c.sft.steps < 0 or c.checkpoint.every < 0:
        raise ValueError("sft.steps and checkpoint.every must be >= 0")
    se = c.train.schedule_epochs
    if isinstance(se, bool) or not isinstance(se, int) or se < 0 or se == 1:
        raise ValueError(
            f"train.schedule_epochs={se!r}: use 0 (real passes over the data) or an integer >= 2 (the run split "
            "into that many schedule epochs)"
        )
    if c.checkpoint.keep < 1:
        raise ValueError(
            f"checkpoint.keep={c.checkpoint.keep}: must be >= 1 (how many of the newest checkpoints are kept; "
            "with 0 nothing could be resumed)"
        )
    if c.sft.steps and c.data.source != "synthetic":
        raise ValueError("sft.steps > 0 needs data.source='synthetic' (the noisy teacher writes the targets)")
    if c.eval.every < 0:
        raise ValueError(f"eval.every must be >= 0, got {c.eval.every}")
    if c.eval.every:
        eval_config(c)  # validates benchmarks and sampling settings
    if c.train.entropy_threshold_prompts < 0 or (c.train.entropy_threshold_prompts and not c.algo.entropy_adaptive):
        raise ValueError(
            f"train.entropy_threshold_prompts={c.train.entropy_threshold_prompts}: the number of prompts that "
            "measure the adaptive entropy threshold (>= 0), used only with algo.entropy_adaptive=True"
        )
    _validate_log(c.log)
    check_mesh_shape(c.mesh.shape)
    validate_rules(c.mesh.rules)
    sampling_shape = c.mesh.rollout_shape if c.mesh.rollout_devices else c.mesh.shape
    if rc.decode_kernel not in ("auto", "xla") and int(sampling_shape[2]) > 1:
        where = "mesh.rollout_shape" if c.mesh.rollout_devices else "mesh.shape"
        raise ValueError(
            f"rollout.decode_kernel={rc.decode_kernel!r} with {where}={tuple(sampling_shape)}: the paged-attention "
            "kernels run with whole K/V heads, not on a sampling mesh with tensor > 1; use auto or xla"
        )
    if c.mesh.devices == 0 or c.mesh.devices < -1:
        raise ValueError(f"mesh.devices must be -1 (all) or >= 1, got {c.mesh.devices}")
    if c.mesh.rollout_devices:
        check_mesh_shape(c.mesh.rollout_shape)
        if not c.rollout.max_staleness:
            raise ValueError(
                f"mesh.rollout_devices={c.mesh.rollout_devices} sets devices apart for asynchronous rollouts: give "
                "rollout.max_staleness >= 1 too (or mesh.rollout_devices=0 to sample on the training mesh)"
            )
    for key in ("ppl_window", "position_window"):
        w = tuple(t[key])
        if len(w) != 2 or w[0] < 0 or (w[1] < 0 and w[1] != -1):
            raise ValueError(f"train.{key} must be (start >= 0, steps >= 0 or -1), got {w}")


# Keys that may change when a run resumes: they change what happens next, never what was already trained.
RESUME_FREE = (
    "mesh",
    "log",
    "eval",
    "train.num_steps",
    "train.dump_rollouts_every",
    "rollout.decode_kernel",  # the decode attention's implementation (the same rows; a run may change device kind)
    "checkpoint.every",
    "checkpoint.keep",
)
# The smoke preset's prompt length on the synthetic source (its prompts have at most 8 characters).
SMOKE_PROMPT_LEN = 16
_SIZE_FIELDS = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "vocab_size")


def resolve_sources(c: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, list[str]]:
    """(the config a run actually uses, one line per change) from the command line's config; ``c`` is not
    modified. A given ``data.path`` selects the file source; with the ``smoke`` preset a model, tokenizer or
    data file given by the user is kept and only sizes shrink (the SFT warm start and the short synthetic
    prompts belong to the synthetic source); the preset's size fields are cleared when the weights come
    from ``model.hf_path`` / ``model.init_ckpt`` (their own config is used; the run records it)."""
    import copy

    c = copy.deepcopy(c)
    notes = []
    if c.data.path and c.data.source == "synthetic":
        c.data.source = "file"
        notes.append(f"data.path={c.data.path!r} is set: using data.source='file'")
    if c.smoke:
        if c.tokenizer == "char" and (c.model.hf_path or c.model.init_ckpt):
            from jaxrlvr.runs import run_tokenizer

            # hf_path: its own tokenizer; init_ckpt: the one its run recorded (a bare conversion output: kept)
            c.tokenizer = "" if c.model.hf_path else (run_tokenizer(c.model.init_ckpt) or c.tokenizer)
            notes.append(f"smoke with a given model: tokenizer {c.tokenizer or c.model.hf_path!r}")
        if c.data.source == "file" and c.sft.steps:
            c.sft.steps = 0
            notes.append("smoke with a data file: no SFT warm start (it needs the synthetic source)")
        if c.data.source == "synthetic":
            c.rollout.max_prompt_len = min(c.rollout.max_prompt_len, SMOKE_PROMPT_LEN)
    if c.model.hf_path or c.model.init_ckpt:
        for k in _SIZE_FIELDS:
            c.model[k] = 0
    return c, notes


def check_resume_config(saved: dict, c: ml_collections.ConfigDict, free=RESUME_FREE) -> None:
    """A resumed run must have the configuration it was started with, except the keys in ``free`` (sections
    or dotted keys: the mesh, to move a run to other devices; logging, evaluation, checkpoint and dump
    frequency; ``train.num_steps``, to extend a finished run). ``saved`` is the run's ``config.json``. A key
    the saved config lacks (a run started before the key existed) passes when its value is the default."""
    now = json.loads(c.to_json_best_effort())
    defaults = json.loads(base_config().to_json_best_effort())

    def default(path):
        d = defaults
        for k in path:
            d = d.get(k, "<none>") if isinstance(d, dict) else "<none>"
        return d

    def diff(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if ".".join(path + [k]) in free or (not path and k == "model_used"):
                    continue
                if k not in a and b.get(k) == default(path + [k]):
                    continue  # a key added since the run started, at its default
                yield from diff(a.get(k, "<missing>"), b.get(k, "<missing>"), path + [k])
        elif a != b:
            yield ".".join(path), a, b

    changed = list(diff(saved, now, []))
    if changed:
        desc = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed[:8])
        raise ValueError(
            f"resuming with a changed config ({desc}); only {', '.join(free)} may change on resume "
            "(start a new --workdir to change anything else)"
        )


def model_config(c, tokenizer_vocab_size: int):
    """The ``ModelConfig`` of a preset-based ``c.model``: the preset, its size overrides (``hidden_size``,
    ``intermediate_size``, ``num_layers``, ``num_heads``, ``num_kv_heads``; head_dim follows hidden / heads),
    ``vocab_size`` (-1: the tokenizer's), dtypes, remat and the attention implementation. A vocabulary
    smaller than the tokenizer's is an error."""
    from jaxrlvr.models import ModelConfig

    m = c.model
    over = {k: m[k] for k in ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads") if m[k]}
    if "hidden_size" in over or "num_heads" in over:
        base = ModelConfig.preset(m.preset)
        over["head_dim"] = over.get("hidden_size", base.hidden_size) // over.get("num_heads", base.num_heads)
    if m.vocab_size == -1:
        over["vocab_size"] = tokenizer_vocab_size
    elif m.vocab_size:
        over["vocab_size"] = m.vocab_size
    cfg = ModelConfig.preset(
        m.preset, dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat, attention_impl=m.attention_impl, **over
    )
    cfg = apply_context_overrides(c, cfg)
    if cfg.vocab_size < tokenizer_vocab_size:
        raise ValueError(f"model vocab_size={cfg.vocab_size} is smaller than the tokenizer's {tokenizer_vocab_size}")
    return cfg


def apply_context_overrides(c, cfg):
    """``cfg`` with ``model.max_position_embeddings`` / ``model.rope_theta`` applied where set (non-zero).

    The papers trained Qwen2.5-Math-7B (config.json: 4096 positions) at 1024 + 8192 tokens through verl
    with an edited config.json; the usual edit (e.g. the LUFFY recipe) is 16384 positions with rope_theta
    4e4. Neither paper prints its values (``configs/dapo_baseline.py`` documents ours)."""
    over = {}
    if c.model.max_position_embeddings:
        over["max_position_embeddings"] = int(c.model.max_position_embeddings)
    if c.model.rope_theta:
        over["rope_theta"] = float(c.model.rope_theta)
    return dataclasses.replace(cfg, **over) if over else cfg


def model_context(c) -> int:
    """The context length (positions) the run's model will have, read without building it: the override,
    else ``hf_path``'s config.json, else the preset's (an ``init_ckpt``'s is checked by the sampler)."""
    from jaxrlvr.models import ModelConfig

    if c.model.max_position_embeddings:
        return int(c.model.max_position_embeddings)
    if c.model.hf_path:
        f = pathlib.Path(c.model.hf_path) / "config.json"
        return int(json.loads(f.read_text()).get("max_position_embeddings", 32768)) if f.is_file() else 1 << 30
    if c.model.preset in PRESETS and not c.model.init_ckpt:
        return ModelConfig.preset(c.model.preset).max_position_embeddings
    return 1 << 30  # unknown until loaded; the sampler checks it then


def set_dotted(c: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """``c`` with each ``{"train.num_steps": 4, ...}`` entry set (as ``--config.train.num_steps=4`` would);
    an unknown key is an error, as on the command line. Returns ``c``."""
    for dotted, value in overrides.items():
        node = c
        *path, last = dotted.split(".")
        for part in path:
            node = node[part]
        if last not in node:
            raise KeyError(f"unknown config key {dotted!r}")
        node[last] = value
    return c


def rollout_config(c) -> RolloutConfig:
    d = c.rollout.to_dict()
    d.pop("prompts_per_step")
    return RolloutConfig(**d)


def algo_config(c) -> AlgoConfig:
    return AlgoConfig.from_dict(dict(c.algo.to_dict(), group_size=c.rollout.group_size))


def updates_per_step(c) -> int:
    """Optimizer updates per RL step: mini-batches per rollout batch (the papers' N) x passes."""
    return max(1, c.rollout.prompts_per_step // max(1, c.train.mini_batch_prompts)) * max(1, c.train.ppo_epochs)


def optim_config(c) -> OptimConfig:
    """``c.optim`` with its warm-up / cosine length in RL steps converted to updates (``updates_per_step``)."""
    return OptimConfig(**c.optim.to_dict(), updates_per_step=updates_per_step(c))


def eval_config(c, out_dir: str | None = None):
    """The periodic evaluation's ``jaxrlvr.eval.EvalConfig`` (unknown benchmark names are errors here)."""
    from jaxrlvr.eval import EvalConfig, get_benchmark

    e = c.eval
    cfg = EvalConfig(
        benchmarks=e.benchmarks,
        num_samples=e.num_samples,
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=e.max_new_tokens or c.rollout.max_new_tokens,
        max_problems=e.max_problems or None,
        template=e.template or None,
        seed=c.seed,
        verifier_workers=c.reward.workers,
        verifier_timeout_s=c.reward.timeout_s,
        out_dir=out_dir,
    )
    for b in cfg.benchmarks:
        get_benchmark(b)
    return cfg
