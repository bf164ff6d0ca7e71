"""The parts of scripts/gpu_check.py: each ``part_NAME(shapes, out, dry_run, cap_s)`` fills the dict ``out``
(its results and ``out["checks"]``, name -> passed) and runs in a subprocess of its own (docs/gpu.md).
Only stable entry points are called: ``jaxrlvr.models``, ``jaxrlvr.sampling.generate``, the jitted
``jaxrlvr.train.step.train_step``, and scripts/memory_plan.py and scripts/train.py as subprocesses."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SMOKE = "configs/dapo_baseline.py:smoke"


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What each part runs: GPU sizes, or tiny ones for ``--dry-run``."""

    parity_model: dict  # transformers.Qwen2Config fields
    parity_rows: tuple[int, ...]  # prompt lengths
    parity_new: int
    bw_bytes: int
    sampler_models: tuple[tuple[str, str, dict], ...]  # (label, preset, overrides)
    slots: int
    sampler_prompt: tuple[int, int]  # prompt length range
    sampler_new: int
    matmul_n: int
    update_models: tuple[tuple[str, str, dict], ...]
    update_rows: int
    update_micro: int
    update_prompt: int
    update_response: int
    repeats: int
    memory_args: tuple[str, ...]
    train_args: tuple[str, ...]


_HF_SMALL = dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=8)
GPU = Shapes(
    parity_model=dict(vocab_size=2048, num_key_value_heads=2, max_position_embeddings=512, **_HF_SMALL),
    parity_rows=(64, 17, 40, 1, 64, 33, 8, 50),
    parity_new=32,
    bw_bytes=2 << 30,
    sampler_models=(("qwen2.5-0.5b", "qwen2.5-0.5b", {}), ("qwen2.5-7b", "qwen2.5-7b", {})),
    slots=64,
    sampler_prompt=(96, 128),
    sampler_new=129,
    matmul_n=8192,
    update_models=(("qwen2.5-0.5b", "qwen2.5-0.5b", {}), ("qwen2.5-1.5b", "qwen2.5-1.5b", {})),
    update_rows=16,
    update_micro=8,
    update_prompt=256,
    update_response=1792,
    repeats=3,
    memory_args=(
        "--config=configs/dapo_baseline.py:model=qwen2.5-0.5b",
        "--param_dtype=bfloat16",
        "--mini_batch=8",
        "--micro_batch=4",
    ),
    train_args=(),
)
_TINY = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
DRY = Shapes(
    parity_model=dict(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    ),
    parity_rows=(5, 12, 1, 8),
    parity_new=8,
    bw_bytes=16 << 20,
    sampler_models=(("tiny", "tiny", _TINY),),
    slots=4,
    sampler_prompt=(4, 8),
    sampler_new=9,
    matmul_n=256,
    update_models=(("tiny", "tiny", _TINY),),
    update_rows=4,
    update_micro=2,
    update_prompt=8,
    update_response=24,
    repeats=2,
    memory_args=(f"--config={SMOKE}", "--micro_batch=8"),
    # no held-out evaluation or plots: each adds compilations that cost CI seconds, not GPU coverage
    train_args=("--config.data.heldout=0", "--config.log.plots=false"),
)


# ------------------------------------------------------------------------------------------------ helpers
def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times


def _require_gpu(dry_run):
    import jax

    backend = jax.default_backend()
    if not dry_run and backend == "cpu":
        raise RuntimeError(
            "JAX sees no accelerator (jax.default_backend() == 'cpu'): install jax with its CUDA plugin "
            "(pip install 'jax[cuda13]') or check JAX_PLATFORMS; use --dry-run for the CPU version"
        )
    return backend


def device_bandwidth(nbytes, repeats=10):
    """Copy bandwidth of the default device (``x + 1`` over ``nbytes``: bytes read + bytes written per
    second, the STREAM convention) and read bandwidth (a sum over ``nbytes``), best of ``repeats``."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones((nbytes // 4,), jnp.float32)
    copy, read = jax.jit(lambda a: a + 1.0), jax.jit(jnp.sum)
    copy(x).block_until_ready(), read(x).block_until_ready()
    t_copy, _ = _best(lambda: copy(x).block_until_ready(), repeats)
    t_read, _ = _best(lambda: read(x).block_until_ready(), repeats)
    return {"bytes": x.nbytes, "copy_GBps": 2 * x.nbytes / t_copy / 1e9, "read_GBps": x.nbytes / t_read / 1e9}


def peak_matmul_flops(n, repeats=5, chained=10):
    """bf16 FLOP/s of an [n, n] x [n, n] matmul on random data (``chained`` calls per timing, so dispatch
    overlaps compute), best of ``repeats``."""
    import jax
    import jax.numpy as jnp

    k1, k2 = jax.random.split(jax.random.key(0))
    a, b = (jax.random.normal(k, (n, n), jnp.bfloat16) for k in (k1, k2))
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()

    def run():
        for _ in range(chained):
            out = f(a, b)
        out.block_until_ready()

    t, _ = _best(run, repeats)
    return 2 * n**3 * chained / t


# Dense bf16 peak of the chips this check targets (NVIDIA datasheets, SXM parts), for a second MFU figure.
SPEC_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12}


def _spec_peak(device_kind):
    return next((v for k, v in SPEC_BF16_FLOPS.items() if k in device_kind and "PCIe" not in device_kind), None)


def _detect(module, words):
    """Names in ``module`` (and ``module``'s functions' parameters / dataclass fields) containing one of
    ``words``: how the check notices a code path (packing, continuous batching) once it lands."""
    import importlib
    import inspect

    mod = importlib.import_module(module)
    found = []
    for name, obj in vars(mod).items():
        if name.startswith("_"):
            continue
        if any(w in name.lower() for w in words):
            found.append(f"{module}.{name}")
        if inspect.isfunction(obj) or dataclasses.is_dataclass(obj):
            params = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
            with contextlib.suppress(TypeError, ValueError):
                params = params or list(inspect.signature(obj).parameters)
            found += [f"{module}.{name}({p})" for p in params if any(w in p.lower() for w in words)]
    return sorted(set(found))


# -------------------------------------------------------------------------------------------------- parts
def part_env(s: Shapes, out: dict, dry_run: bool, cap_s: float) -> None:
    import importlib.metadata
    import platform
    import tomllib

    import jax

    out["python"] = platform.python_version()
    out["jax"] = jax.__version__
    out["backend"] = jax.default_backend()
    out["devices"] = []
    for d in jax.devices():
        stats = {}
        with contextlib.suppress(Exception):
            stats = d.memory_stats() or {}
        out["devices"].append({"kind": d.device_kind, "platform": d.platform, "bytes_limit": stats.get("bytes_limit")})
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    names = [d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for d in deps]
    out["packages"] = {}
    for n in [*names, "torch", "jaxlib"]:
        try:
            out["packages"][n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out["packages"][n] = None
    out["missing_packages"] = [n for n, v in out["packages"].items() if v is None]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        q = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem"
        smi = subprocess.run(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True
        )
        out["nvidia_smi"] = smi.stdout.strip()
    out["cpus"] = os.cpu_count()
    out["checks"] = {"accelerator_visible": dry_run or out["backend"] != "cpu", "packages": not out["missing_packages"]}


def _hf_model(s: Shapes, device):
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, attn_implementation="eager", **s.parity_model
    )
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # non-trivial biases and norms (transformers initialises them to 0 / 1)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model.to(device)


def part_parity(s: Shapes, out: dict, dry_run: bool, cap_s: float) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from jaxrlvr.models import forward, load_hf_checkpoint
    from jaxrlvr.sampling import generate

    out["backend"] = _require_gpu(dry_run)
    device = "cuda" if torch.cuda.is_available() and not dry_run else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out["torch_device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    model = _hf_model(s, device)
    rng = np.random.default_rng(1)
    v, w = s.parity_model["vocab_size"], max(s.parity_rows)
    prompts = [rng.integers(1, v, n).tolist() for n in s.parity_rows]
    ids, mask = np.zeros((len(prompts), w), np.int64), np.zeros((len(prompts), w), np.int64)
    for i, p in enumerate(prompts):
        ids[i, w - len(p) :], mask[i, w - len(p) :] = p, 1
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    valid = mask.astype(bool)

    def ref_logits():
        with torch.no_grad():
            t = {k: torch.tensor(a, device=device) for k, a in (("input_ids", ids), ("attention_mask", mask))}
            return model(**t, position_ids=torch.tensor(pos, device=device)).logits.float().cpu().numpy()

    fwd = jax.jit(forward, static_argnums=0)  # one compiled program per call, not op-by-op dispatch

    def ours(cfg, params):
        return np.asarray(fwd(cfg, params, jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32)))

    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        c32, p32 = load_hf_checkpoint(d)
        c16, p16 = load_hf_checkpoint(d, dtype="bfloat16")
    ref = ref_logits()
    with jax.default_matmul_precision("highest"):
        err = float(np.abs(ours(c32, p32)[valid] - ref[valid]).max())
    out["f32_max_abs_err"] = err
    out["f32_default_precision_max_abs_err"] = float(np.abs(ours(c32, p32)[valid] - ref[valid]).max())
    out["logit_std"] = float(ref[valid].std())

    # greedy generation, float32, no EOS: every row generates parity_new tokens in both
    n = s.parity_new
    with torch.no_grad():
        gen = model.generate(
            input_ids=torch.tensor(ids, device=device),
            attention_mask=torch.tensor(mask, device=device),
            max_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    ref_tok = gen[:, w:].cpu().numpy()
    with jax.default_matmul_precision("highest"):
        got = np.asarray(
            generate(c32, p32, prompts, max_new_tokens=n, greedy=True, eos_ids=(), pad_id=0, seed=0).tokens
        )
    out["greedy_identical"] = bool(ref_tok.shape == got.shape and np.array_equal(ref_tok, got))
    if not out["greedy_identical"] and ref_tok.shape == got.shape:
        r, j = map(int, np.argwhere(ref_tok != got)[0])
        with torch.no_grad():  # transformers' logits where the two first disagree: a near-tie, or a bug?
            seq = gen[r : r + 1, : w + j].clone()
            att = torch.cat([torch.tensor(mask[r : r + 1], device=device), torch.ones_like(seq[:, w:])], 1)
            at_pos = (att.cumsum(-1) - 1).clamp(min=0)
            lg = model(input_ids=seq, attention_mask=att, position_ids=at_pos).logits[0, -1].float().cpu().numpy()
        out["greedy_first_mismatch"] = {
            "row": r,
            "position": j,
            "ref_token": int(ref_tok[r, j]),
            "our_token": int(got[r, j]),
            "ref_logit_gap": float(lg[ref_tok[r, j]] - lg[got[r, j]]),
        }

    model = model.to(torch.bfloat16)
    ref16 = ref_logits()
    diff = np.abs(ours(c16, p16)[valid] - ref16[valid])
    out["bf16_max_abs_err"], out["bf16_mean_abs_err"] = float(diff.max()), float(diff.mean())
    out["checks"] = {"f32_logits_le_1e-4": err <= 1e-4, "greedy_f32_identical": out["greedy_identical"]}


def _time_generate(cfg, ip, prompts, repeats, **kw):
    """(first call s, best s, all timed s) of ``sampling.generate``, compile excluded from the timed calls."""
    import jax

    from jaxrlvr.sampling import generate

    t0 = time.perf_counter()
    jax.block_until_ready(generate(cfg, ip, prompts, **kw).tokens)
    first = time.perf_counter() - t0
    best, times = _best(lambda: jax.block_until_ready(generate(cfg, ip, prompts, **kw).tokens), repeats)
    return first, best, times


def part_sampler(s: Shapes, out: dict, dry_run: bool, cap_s: float, save=lambda: None) -> None:
    import inspect

    import jax
    import numpy as np

    from jaxrlvr.models import ModelConfig, init_params
    from jaxrlvr.sampling import bucket_prompt_length, generate, prepare_params

    out["backend"] = _require_gpu(dry_run)
    bw = device_bandwidth(s.bw_bytes)
    out["bandwidth"] = bw
    cb = _detect("jaxrlvr.sampling", ("slot", "continuous", "refill"))
    slot_arg = [p for p in inspect.signature(generate).parameters if "slot" in p]
    out["continuous_batching"] = {"available": bool(slot_arg), "detected": cb}
    out["models"] = {}
    cfgs = [
        (label, ModelConfig.preset(preset, dtype="bfloat16", param_dtype="bfloat16", **over))
        for label, preset, over in s.sampler_models
    ]
    vocab = min(c.vocab_size for _, c in cfgs)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, vocab, int(rng.integers(*s.sampler_prompt) + 1)).tolist() for _ in range(s.slots)]
    bucket = bucket_prompt_length(max(map(len, prompts)))
    kw = dict(temperature=1.0, top_p=0.95, eos_ids=(), pad_id=0, seed=0)
    for label, cfg in cfgs:
        t0 = time.perf_counter()
        ip = prepare_params(cfg, init_params(cfg, jax.random.key(0)))
        jax.block_until_ready(ip)
        r = {"params": cfg.num_params(), "init_s": time.perf_counter() - t0, "rows": s.slots, "prompt_bucket": bucket}
        times = {}
        for n in (1, s.sampler_new):  # prefill + first token; then n - 1 decode steps more
            r[f"first_call_s_n{n}"], times[n], r[f"times_s_n{n}"] = _time_generate(
                cfg, ip, prompts, s.repeats, **kw, max_new_tokens=n
            )
        n = s.sampler_new
        step = (times[n] - times[1]) / (n - 1)
        # bytes a step must read: every weight (the untied input embedding is a gather, not read whole) and
        # the filled KV cache of every row (prompt bucket + tokens so far, averaged over the steps)
        item = np.dtype(cfg.jnp_dtype).itemsize
        weights = (cfg.num_params() - (0 if cfg.tie_word_embeddings else cfg.vocab_size * cfg.hidden_size)) * item
        kv = s.slots * 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * item * (bucket + n / 2)
        bound = (weights + kv) / (bw["copy_GBps"] * 1e9)
        r.update(
            prefill_s=times[1],
            decode_step_ms=step * 1e3,
            tokens_per_s=s.slots * n / times[n],
            weight_bytes=weights,
            kv_bytes_mean=kv,
            bound_ms_copy_bw=bound * 1e3,
            bound_ms_read_bw=(weights + kv) / (bw["read_GBps"] * 1e9) * 1e3,
            step_over_bound=step / bound,
        )
        if slot_arg:  # the continuous-batching path: twice as many rows as slots
            two = prompts + prompts[::-1]
            ckw = {**kw, slot_arg[0]: s.slots, "max_new_tokens": n}
            _, t, _ = _time_generate(cfg, ip, two, s.repeats, **ckw)
            r["continuous"] = {"rows": len(two), "slots": s.slots, "call_s": t, "tokens_per_s": len(two) * n / t}
        out["models"][label] = r
        save()
        print(f"{label}: decode step {step * 1e3:.3f} ms, {step / bound:.2f}x the bound", flush=True)
        del ip
    out["checks"] = {"ran": True}


def part_update(s: Shapes, out: dict, dry_run: bool, cap_s: float, save=lambda: None) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxrlvr import algos
    from jaxrlvr.models import ModelConfig, init_params
    from jaxrlvr.train.step import OptimConfig, TrainState, make_optimizer, train_step

    out["backend"] = _require_gpu(dry_run)
    kind = jax.devices()[0].device_kind
    peak = peak_matmul_flops(s.matmul_n)
    out["device_kind"], out["peak_bf16_flops_measured"], out["peak_bf16_flops_spec"] = kind, peak, _spec_peak(kind)
    packed = _detect("jaxrlvr.train.step", ("pack", "segment"))
    out["packed_path"] = {
        "available": bool(packed),
        "detected": packed,
        "note": "timed by the packed part" if packed else "not available",
    }
    out["models"] = {}
    b, p, r_len, mb = s.update_rows, s.update_prompt, s.update_response, s.update_micro
    t_len = p + r_len
    algo_cfg = algos.AlgoConfig(group_size=8)
    tx = make_optimizer(OptimConfig(lr=1e-6, warmup_steps=0))
    for label, preset, over in s.update_models:
        cfg = ModelConfig.preset(preset, dtype="bfloat16", param_dtype="float32", remat="full", **over)
        rng = np.random.default_rng(0)
        batch = {
            "input_ids": jnp.asarray(rng.integers(1, cfg.vocab_size, (b, t_len)), jnp.int32),
            "attention_mask": jnp.ones((b, t_len), jnp.int32),
            "old_logp": jnp.full((b, r_len), -np.log(cfg.vocab_size), jnp.float32),  # ~ a random model's
            "adv": jnp.asarray(rng.choice([-1.0, 1.0], (b, r_len)), jnp.float32),
            "mask": jnp.ones((b, r_len), jnp.float32),
        }
        params = init_params(cfg, jax.random.key(0))
        state = TrainState(
            step=jnp.int32(0), params=params, opt_state=tx.init(params), knobs=algos.initial_step_state(algo_cfg)
        )
        del params
        kw = dict(model_cfg=cfg, algo_cfg=algo_cfg, tx=tx, prompt_len=p, temperature=1.0, micro_batch=mb)
        key = jax.random.key(1)
        t0 = time.perf_counter()
        state, m = train_step(state, batch, key, **kw)
        jax.block_until_ready(m)
        first = time.perf_counter() - t0
        times = []
        for _ in range(s.repeats):
            t0 = time.perf_counter()
            state, m = train_step(state, batch, key, **kw)
            jax.block_until_ready((state, m))
            times.append(time.perf_counter() - t0)
        t = min(times)
        tokens = b * t_len
        # model FLOPs: 6 x params x tokens + attention 12 x layers x heads x head_dim x seq per token (PaLM,
        # Chowdhery et al. 2022, appendix B); full remat's extra forward is not counted (it is not "useful")
        flops = tokens * (6 * cfg.num_params() + 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * t_len)
        spec = out["peak_bf16_flops_spec"]
        out["models"][label] = {
            "params": cfg.num_params(),
            "rows": b,
            "micro_batch": mb,
            "seq_len": t_len,
            "first_call_s": first,
            "step_s": t,
            "times_s": times,
            "tokens_per_s": tokens / t,
            "model_flops_per_step": flops,
            "mfu_measured_peak": flops / t / peak,
            "mfu_spec_peak": flops / t / spec if spec else None,
            "loss_finite": bool(np.isfinite(float(m["loss"]))),
            "skipped": float(m["skipped"]),
        }
        save()
        print(f"{label}: {tokens / t:,.0f} tokens/s, MFU {flops / t / peak:.1%} of the measured peak", flush=True)
        del state, m, batch
    out["checks"] = {"finite_loss": all(r["loss_finite"] and r["skipped"] == 0 for r in out["models"].values())}


def _run_cli(args, timeout, env=None):
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or "", e.stderr or "", time.perf_counter() - t0


def part_memory(s: Shapes, out: dict, dry_run: bool, cap_s: float) -> None:
    base = ["scripts/memory_plan.py", "--mesh=1,1,1", "--json", *s.memory_args]
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    # both plans at once (the CPU one compiles on the host's cores, the GPU one for the GPU)
    with tempfile.TemporaryDirectory() as d:
        procs = {}
        for backend in ("gpu", "cpu"):
            f = open(pathlib.Path(d) / backend, "w+")  # noqa: SIM115 (closed below)
            cmd = [sys.executable, *base, f"--backend={backend}"]
            procs[backend] = (
                subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, text=True, env=env),
                f,
            )
            out[f"{backend}_command"] = " ".join(["python", *cmd[1:]])
        for backend, (proc, f) in procs.items():
            try:
                rc = proc.wait(timeout=max(cap_s - 10, 5))
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "timeout"
            f.seek(0)
            text = f.read()
            f.close()
            out[f"{backend}_rc"] = rc
            try:
                out[backend] = json.loads(text.strip().splitlines()[-1])
            except (ValueError, IndexError):
                out[f"{backend}_output_tail"] = text[-3000:]
    if "gpu" in out and "cpu" in out:
        out["gpu_over_cpu"] = out["gpu"]["per_device_gib"] / max(out["cpu"]["per_device_gib"], 1e-9)
    out["checks"] = {
        "both_plans": "gpu" in out and "cpu" in out,
        "gpu_plan_on_gpu": dry_run or out.get("gpu", {}).get("backend") == "gpu",
    }


def part_train(s: Shapes, out: dict, dry_run: bool, cap_s: float) -> None:
    with tempfile.TemporaryDirectory() as wd:
        # no SFT warm start: the smoke preset's SFT packing length is too short for its own template
        args = ["scripts/train.py", f"--config={SMOKE}", f"--workdir={wd}", "--config.train.num_steps=3"]
        args += ["--config.sft.steps=0", *s.train_args]
        out["command"] = " ".join(["python", *args[:2], "--workdir=DIR", *args[3:]])
        rc, stdout, stderr, wall = _run_cli(args, timeout=max(cap_s - 10, 5))
        out.update(rc=rc, wall_s=wall)
        metrics = pathlib.Path(wd) / "metrics.jsonl"
        rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if metrics.exists() else []
    out["steps_logged"] = len([r for r in rows if "time_step" in r])
    out["time_step_s"] = [r["time_step"] for r in rows if "time_step" in r]
    brace = stdout.find("\n{")
    with contextlib.suppress(ValueError):
        out["summary"] = json.loads(stdout[brace + 1 :] if brace >= 0 else stdout)
    if rc != 0:
        out["stderr_tail"] = stderr[-3000:]
    out["checks"] = {"exit_0": rc == 0, "three_steps": out["steps_logged"] == 3}


from gpu_check_async import part_async  # noqa: E402
from gpu_check_packed import part_attention, part_packed  # noqa: E402
from gpu_check_paged import part_paged  # noqa: E402

PARTS = {
    "env": part_env,
    "parity": part_parity,
    "sampler": part_sampler,
    "update": part_update,
    "attention": part_attention,
    "packed": part_packed,
    "paged": part_paged,
    "async": part_async,
    "memory": part_memory,
    "train": part_train,
}
