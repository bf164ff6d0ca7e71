"""GPU-kit parts for packed updates (issue 15): attention kernels and the packed vs padded update.

``attention``: one packed row of ``T`` slots (long-tailed sequence lengths, segment ids) at Qwen2.5-0.5B's
head shape (14 query / 2 kv heads of 64), bf16: forward + backward wall time of every attention
implementation that takes the mask (``xla_blockwise``, ``pallas_gpu``, and ``dense`` for reference), plus
``cudnn`` on the same row unpacked (one causal sequence, no segments: the fastest kernel's ceiling), and the
largest difference of each from ``xla_blockwise`` in outputs and gradients.

``packed``: ``scripts/bench_update_scale.py``'s measurement at the 0.5B preset in bf16 with full remat: one
full update over a long-tailed rollout batch, packed (token budget, ``auto`` attention: the Pallas flash
kernel on a GPU) vs padded rows (dense attention, as before packing), same state, same process; useful
tokens per second and MFU against the measured bf16 matmul peak.

Sizes are fixed here (``--dry-run``: tiny, on the CPU, where the kernels run in Pallas interpret mode).
"""

from __future__ import annotations

import argparse
import time

# bench: scripts/bench_update_scale.py's arguments, as a command line would give them
GPU_SIZES = dict(
    t=8192,
    heads=14,
    kv=2,
    hd=64,
    repeats=5,
    bench="--preset qwen2.5-0.5b --dtype bfloat16 --remat full --batch 64 --mini_batch 32 --micro_batch 4 "
    "--prompt_len 256 --max_new_tokens 2048 --max_tokens 16384".split(),
)
DRY_SIZES = dict(
    t=200,
    heads=4,
    kv=2,
    hd=16,
    repeats=2,
    bench="--layers 1 --width 32 --heads 4 --kv_heads 2 --vocab 64 --batch 8 --mini_batch 4 --micro_batch 2 "
    "--prompt_len 8 --max_new_tokens 32 --max_tokens 128 --repeats 1".split(),
)


def _segments(t: int, rng):
    """Segment ids of one packed row: sequence lengths drawn long-tailed (exponential, mean t / 8) until the
    row is full; the last sequence is cut at the row's end."""
    import numpy as np

    seg, i, s = np.zeros(t, np.int32), 0, 1
    while i < t:
        n = max(1, int(rng.exponential(t / 8)))
        seg[i : i + n] = s
        i, s = i + n, s + 1
    return seg, s - 1


def part_attention(s, out: dict, dry_run: bool, cap_s: float) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from gpu_check_parts import _require_gpu

    from jaxrlvr.models.attention import attention

    z = DRY_SIZES if dry_run else GPU_SIZES
    out["backend"] = _require_gpu(dry_run)
    dtype = jnp.float32 if dry_run else jnp.bfloat16
    rng = np.random.default_rng(0)
    t, n, kv, hd = z["t"], z["heads"], z["kv"], z["hd"]
    seg_np, count = _segments(t, rng)
    seg = jnp.asarray(seg_np[None])
    q = jnp.asarray(rng.normal(size=(1, t, n, hd)), dtype)
    k, v = (jnp.asarray(rng.normal(size=(1, t, kv, hd)), dtype) for _ in range(2))
    w = jnp.asarray(rng.normal(size=(1, t, n, hd)), dtype)
    out.update(seq_len=t, segments=count, heads=f"{n}/{kv}x{hd}", dtype=str(jnp.dtype(dtype)))

    def fwd_bwd(impl, packed=True):
        kw = dict(q_segment_ids_BT=seg, kv_segment_ids_BS=seg) if packed else {}

        def loss(q, k, v):
            o = attention(q, k, v, impl=impl, **kw)
            return jnp.sum((o * w).astype(jnp.float32)), o

        return jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))

    results, ref = {}, None
    cases = [("xla_blockwise", True), ("pallas_gpu", True), ("dense", True)]
    if not dry_run:
        cases.append(("cudnn", False))
    for impl, packed in cases:
        name = impl if packed else f"{impl}_unpacked"
        try:
            fn = fwd_bwd(impl, packed)
            t0 = time.perf_counter()
            got = jax.block_until_ready(fn(q, k, v))
            first = time.perf_counter() - t0
            times = []
            for _ in range(z["repeats"]):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(q, k, v))
                times.append(time.perf_counter() - t0)
            r = {"first_call_s": first, "fwd_bwd_s": min(times), "times_s": times}
            if impl == "xla_blockwise":
                ref = got
            elif packed and ref is not None:
                (gq, gk, gv), o = got
                (rq, rk, rv), ro = ref
                r["max_diff_vs_blockwise"] = max(
                    float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))
                    for a, b in ((o, ro), (gq, rq), (gk, rk), (gv, rv))
                )
            results[name] = r
        except Exception as e:  # a kernel that does not build here is a finding, not a crash of the part
            results[name] = {"error": f"{type(e).__name__}: {str(e)[:400]}"}
        print(f"{name}: {results[name]}", flush=True)
    out["impls"] = results
    blk = results.get("xla_blockwise", {}).get("fwd_bwd_s")
    for r in results.values():
        if blk and "fwd_bwd_s" in r:
            r["speedup_vs_blockwise"] = blk / r["fwd_bwd_s"]
    tol = 1e-4 if dry_run else 0.25  # bf16: differences of a few ulps of outputs / gradients of size ~10
    pal = results.get("pallas_gpu", {})
    out["checks"] = {"pallas_gpu_matches_blockwise": pal.get("max_diff_vs_blockwise", 1e9) <= tol}


def part_packed(s, out: dict, dry_run: bool, cap_s: float) -> None:
    import bench_update_scale
    from gpu_check_parts import _require_gpu, peak_matmul_flops

    z = DRY_SIZES if dry_run else GPU_SIZES
    out["backend"] = _require_gpu(dry_run)
    peak = peak_matmul_flops(256 if dry_run else 8192)
    ap = argparse.ArgumentParser()
    bench_update_scale.add_args(ap)
    args = ap.parse_args(z["bench"] + ["--peak_flops", str(peak)])
    out["args"] = vars(args).copy()
    out["peak_bf16_flops_measured"] = peak
    out.update(bench_update_scale.run_update(args))
    out["checks"] = {
        "loss_matches_padded": out["max_abs_loss_diff"] <= (1e-5 if dry_run else 5e-2),
        "packed_faster": out["update_speedup_vs_padded"] > 1.0 or dry_run,
    }
    print(
        f"packed {out['packed_useful_tokens_per_s']:,.0f} vs padded {out['padded_useful_tokens_per_s']:,.0f} useful "
        f"tokens/s ({out['update_speedup_vs_padded']:.2f}x)",
        flush=True,
    )
