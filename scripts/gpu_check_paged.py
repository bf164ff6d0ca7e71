"""GPU-kit part ``paged`` (issue 28): paged decode through the Pallas GPU paged-attention kernel vs the XLA
path, and paged vs contiguous continuous batching, Qwen2.5-1.5B bf16.

The same rows (``ROWS`` rows of 96-128 random prompt tokens, every row run to ``NEW`` tokens: EOS never
sampled, so every path decodes the same steps) through ``sampling.generate``: ``paged_kernel`` (paged,
``decode_kernel="pallas_gpu"``), ``paged`` (paged, ``decode_kernel="xla"``: the portable gather path) and
``contiguous`` (``paged_cache=False``), the same slot count (``SLOTS``; the paged pool holds every row, so
nothing waits for pages), best of ``repeats`` calls after a compiling one. Reports each path's tokens/s,
its decode step time (from a 1-token and an ``NEW``-token call) and the fraction of the HBM-bandwidth bound
it reaches: a step must read every weight and the live rows' K/V (prompt + half the new tokens on
average), at the device's measured copy bandwidth (``gpu_check_parts.device_bandwidth``). Where the kernel
cannot run (this JAX has none, or it does not compile here) ``paged_kernel`` records why and the rest
still runs. Sizes fixed here; ``--dry-run``: a tiny model on the CPU, the kernel in Pallas interpret mode
(its timing there means nothing; it checks the path runs and gives the XLA path's tokens).
"""

from __future__ import annotations

import time

GPU_SIZES = dict(preset="qwen2.5-1.5b", overrides={}, rows=64, slots=64, new=257, prompt=(96, 128), repeats=3)
DRY_SIZES = dict(
    preset="tiny",
    overrides=dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2),
    rows=8,
    slots=4,
    new=17,
    prompt=(4, 8),
    repeats=2,
)


def part_paged(s, out: dict, dry_run: bool, cap_s: float, save=lambda: None) -> None:
    import jax
    import numpy as np
    from gpu_check_parts import _best, _require_gpu, device_bandwidth

    from jaxrlvr.models import ModelConfig, init_params
    from jaxrlvr.models import paged_attention_kernels as pk
    from jaxrlvr.sampling import bucket_prompt_length, generate, prepare_params

    z = DRY_SIZES if dry_run else GPU_SIZES
    out["backend"] = _require_gpu(dry_run)
    bw = device_bandwidth(s.bw_bytes)
    out["bandwidth"] = bw
    cfg = ModelConfig.preset(z["preset"], dtype="bfloat16", param_dtype="bfloat16", **z["overrides"])
    ip = prepare_params(cfg, init_params(cfg, jax.random.key(0)))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, cfg.vocab_size, int(rng.integers(*z["prompt"]) + 1)).tolist() for _ in range(z["rows"])]
    bucket = bucket_prompt_length(max(map(len, prompts)))
    mean_prompt = float(np.mean([len(p) for p in prompts]))
    kw = dict(temperature=1.0, top_p=1.0, eos_ids=(), pad_id=0, seed=0, slots=z["slots"])
    item = np.dtype(cfg.jnp_dtype).itemsize
    weights = (cfg.num_params() - (0 if cfg.tie_word_embeddings else cfg.vocab_size * cfg.hidden_size)) * item
    per_pos = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * item
    n = z["new"]
    out.update(model=z["preset"], rows=z["rows"], slots=z["slots"], new_tokens=n, prompt_bucket=bucket)
    kernel = "pallas_gpu_interpret" if dry_run else "pallas_gpu"
    why_not = pk.decode_kernel_error(kernel)
    out["kernel"] = {"setting": kernel, "jax_has_it": pk.available("pallas_gpu"), "error": why_not}
    paths = [("paged_kernel", True, kernel)] if why_not is None else []
    paths += [("paged", True, "xla"), ("contiguous", False, "xla")]
    tokens = {}
    for name, paged, dk in paths:
        times = {}
        for m in (1, n):
            call = lambda m=m, paged=paged, dk=dk: jax.block_until_ready(  # noqa: E731
                generate(cfg, ip, prompts, max_new_tokens=m, paged_cache=paged, decode_kernel=dk, **kw).tokens
            )
            t0 = time.perf_counter()
            try:
                tokens[name] = np.asarray(call())
            except Exception as e:  # the kernel does not compile here: recorded, the other paths still run
                if name != "paged_kernel":
                    raise
                out["kernel"]["error"] = f"{type(e).__name__}: {str(e)[:500]}"
                break
            first = time.perf_counter() - t0
            times[m], _ = _best(call, z["repeats"])
            out[f"{name}_first_call_s_n{m}"] = first
        if len(times) < 2:  # the kernel failed
            continue
        step = (times[n] - times[1]) / max(n - 1, 1) / -(-z["rows"] // z["slots"])  # per step of the slots
        live = min(z["rows"], z["slots"])
        kv = live * per_pos * (mean_prompt + n / 2)  # what the live rows attend, on average over the steps
        bound = (weights + kv) / (bw["copy_GBps"] * 1e9)
        out[name] = {
            "tokens_per_s": z["rows"] * n / times[n],
            "call_s": times[n],
            "decode_step_ms": step * 1e3,
            "bound_ms_copy_bw": bound * 1e3,
            "fraction_of_bandwidth_bound": bound / step if step > 0 else None,
        }
        save()
        print(f"{name}: {out[name]['tokens_per_s']:.0f} tokens/s, step {step * 1e3:.3f} ms", flush=True)
    out["paged_speedup"] = out["paged"]["tokens_per_s"] / out["contiguous"]["tokens_per_s"]
    ran = "paged_kernel" in out
    if ran:
        out["kernel_speedup_vs_xla"] = out["paged_kernel"]["tokens_per_s"] / out["paged"]["tokens_per_s"]
        # bf16 on a GPU: another summation order can flip a near-tied sample, so agreement is a fraction
        out["kernel_tokens_equal_fraction"] = float(np.mean(tokens["paged_kernel"] == tokens["paged"]))
    out["checks"] = {"ran": True, "kernel_ran": ran}
