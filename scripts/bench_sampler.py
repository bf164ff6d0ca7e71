"""Benchmark the rollout sampler against transformers' generate on the same random model, same prompts,
same settings, in one run; compile time is reported apart from steady state.

Sections (``--sections``, comma separated):
  tiny       the "tiny" preset (4 layers, hidden 128, vocab 512), 16 prompts x 128 new tokens
  0.5b       a Qwen2.5-0.5B-shaped random model in float32, 8 prompts x 64 new tokens, plus the decode step
             time against the memory-bandwidth bound measured in the same run
  0.5b-bf16  the same in bfloat16 (weights, activations and cache), transformers in bfloat16 as well
  kernels    the rate at which XLA:CPU's matmul library streams each 0.5B decode matmul ([8, in] x kernel,
             float32) in both kernel layouts and under each CPU matmul library option, and the decode step
             those rates imply against the bandwidth bound: what a decode step built from XLA's matmuls
             can reach on this machine

Every section samples at temperature 1.0, top-p 0.95, no EOS (every row generates all its tokens, in both
implementations). Usage: ``python scripts/bench_sampler.py [--sections tiny,0.5b,0.5b-bf16] [--json F]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from jaxrlvr import kernels  # noqa: E402
from jaxrlvr.models import ModelConfig, init_params, save_hf_checkpoint  # noqa: E402
from jaxrlvr.sampling import Sampler, SamplingParams, generate, prepare_params  # noqa: E402
from jaxrlvr.sampling.prng import seed_key  # noqa: E402
from jaxrlvr.sampling.sampler import cpu_kernels_usable, pad_prompts  # noqa: E402

SECTIONS = {
    "tiny": dict(preset="tiny", dtype="float32", prompts=16, new_tokens=128, prompt_len=(16, 48)),
    "0.5b": dict(preset="qwen2.5-0.5b", dtype="float32", prompts=8, new_tokens=64, prompt_len=(20, 64)),
    "0.5b-bf16": dict(preset="qwen2.5-0.5b", dtype="bfloat16", prompts=8, new_tokens=64, prompt_len=(20, 64)),
}
TEMPERATURE, TOP_P = 1.0, 0.95


def log(msg):
    print(msg, flush=True)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


# ------------------------------------------------------------------------------------------------ bandwidth
def memory_bandwidth(repeats=5):
    """Copy bandwidth (STREAM convention: bytes read + bytes written per second, numpy memcpy of 1 GiB)
    and read bandwidth (an XLA sum over 1 GiB), best of ``repeats``."""
    n = 1 << 28
    src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
    copy = 2 * src.nbytes / min(timed(lambda: np.copyto(dst, src), repeats))
    x = jnp.asarray(src)
    src = dst = None
    s = jax.jit(jnp.sum)
    s(x).block_until_ready()
    read = x.nbytes / min(timed(lambda: s(x).block_until_ready(), repeats))
    return {"copy_GBps": copy / 1e9, "read_GBps": read / 1e9}


# ----------------------------------------------------------------------------------------------- sections
def make_prompts(cfg, n, lo_hi, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, cfg.vocab_size, int(rng.integers(lo_hi[0], lo_hi[1] + 1))).tolist() for _ in range(n)]


def bytes_per_step(ip, cfg, sampler, prompt_len):
    """Weights every decode step must read (all matmul kernels incl. the LM head, norms) + the mean KV cache
    a step must read (the filled slots: prompt bucket + tokens generated so far)."""
    w = sum(x.nbytes for x in jax.tree.leaves(ip.layers)) + ip.final_norm.nbytes
    w += (ip.lm_head if ip.lm_head is not None else ip.embed).nbytes
    n = sampler.max_new_tokens
    itemsize = jnp.dtype(cfg.jnp_dtype).itemsize
    per_slot = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * itemsize  # k and v, one row
    mean_filled = prompt_len + (n - 1) / 2
    return w, per_slot * mean_filled


def run_ours(cfg, params, prompts, n, repeats):
    kw = dict(max_new_tokens=n, temperature=TEMPERATURE, top_p=TOP_P, eos_ids=(), pad_id=0, seed=0)
    t = time.perf_counter()
    ip = prepare_params(cfg, params)
    jax.block_until_ready(ip)
    first_prepare = time.perf_counter() - t
    t = time.perf_counter()
    out = generate(cfg, ip, prompts, **kw)
    jax.block_until_ready(out)
    first = time.perf_counter() - t
    assert int(np.asarray(out.lengths).min()) == n
    steady = timed(lambda: jax.block_until_ready(generate(cfg, ip, prompts, **kw)), repeats)
    prepare = timed(lambda: jax.block_until_ready(prepare_params(cfg, params)), 2)
    # prefill / decode split through the same compiled functions generate uses
    sampler = Sampler(
        config=cfg,
        sampling=SamplingParams(temperature=TEMPERATURE, top_p=TOP_P),
        max_new_tokens=n,
        pad_id=0,
        cpu_kernels=ip.layout == "out_in" and cpu_kernels_usable(cfg),  # as generate() decides
    )
    ids, lengths = pad_prompts(cfg, prompts, n, 0)
    eos = np.full((4,), -1, np.int32)
    pre, dec = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        cache, state = sampler.prefill(ip, ids, lengths, seed_key(0), eos)
        jax.block_until_ready(cache)
        pre.append(time.perf_counter() - t)
        t = time.perf_counter()
        o, cache = sampler.decode(ip, cache, state)
        jax.block_until_ready(o)
        dec.append(time.perf_counter() - t)
        del cache
    return (
        {
            "first_call_s": first,
            "steady_s": steady,
            "compile_s": first - statistics.median(steady),
            "prepare_first_s": first_prepare,
            "prepare_s": min(prepare),
            "prefill_s": min(pre),
            "decode_step_ms": min(dec) / (n - 1) * 1e3,
            "prompt_bucket": ids.shape[1],
        },
        ip,
        sampler,
    )


def run_hf(cfg, params, prompts, n, repeats, dtype):
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as d:
        save_hf_checkpoint(cfg, params, d)
        model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=getattr(torch, dtype)).eval()
    w = max(map(len, prompts))
    ids = np.zeros((len(prompts), w), np.int64)
    mask = np.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, w - len(p) :] = p
        mask[i, w - len(p) :] = 1
    ids, mask = torch.tensor(ids), torch.tensor(mask)
    gen = dict(
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=True,
        temperature=TEMPERATURE,
        top_p=TOP_P,
        top_k=0,
        pad_token_id=0,
        eos_token_id=None,
    )
    with torch.no_grad():
        t = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, **gen)
        first = time.perf_counter() - t
        assert out.shape[1] == w + n
        steady = timed(lambda: model.generate(input_ids=ids, attention_mask=mask, **gen), repeats)
        prefill = timed(lambda: model(input_ids=ids, attention_mask=mask, logits_to_keep=1), repeats)
    med = statistics.median(steady)
    return {
        "first_call_s": first,
        "steady_s": steady,
        "prefill_s": min(prefill),
        "decode_step_ms_est": (med - min(prefill)) / (n - 1) * 1e3,
        "threads": torch.get_num_threads(),
    }


def section(name, repeats, bandwidth):
    spec = SECTIONS[name]
    cfg = ModelConfig.preset(spec["preset"], dtype=spec["dtype"], param_dtype=spec["dtype"])
    n = spec["new_tokens"]
    params = init_params(cfg, jax.random.key(0))
    prompts = make_prompts(cfg, spec["prompts"], spec["prompt_len"])
    tokens = len(prompts) * n
    load0 = os.getloadavg()[0]
    log(f"[{name}] {cfg.num_params() / 1e6:.1f}M params {cfg.dtype}, {len(prompts)} prompts x {n} new tokens")
    ours, ip, sampler = run_ours(cfg, params, prompts, n, repeats)
    log(f"[{name}] ours: {json.dumps(_round(ours))}")
    hf = run_hf(cfg, params, prompts, n, repeats, spec["dtype"])
    log(f"[{name}] transformers: {json.dumps(_round(hf))}")
    res = {
        "section": name,
        "model": dataclasses.asdict(cfg),
        "prompts": len(prompts),
        "new_tokens": n,
        "ours": ours,
        "transformers": hf,
        "ours_tokens_per_s": tokens / statistics.median(ours["steady_s"]),
        "hf_tokens_per_s": tokens / statistics.median(hf["steady_s"]),
        "load_avg_1min": [load0, os.getloadavg()[0]],
    }
    res["speedup"] = res["ours_tokens_per_s"] / res["hf_tokens_per_s"]
    if bandwidth is not None:
        w, kv = bytes_per_step(ip, cfg, sampler, ours["prompt_bucket"])
        step = ours["decode_step_ms"] / 1e3
        res["bytes_per_step"] = {"weights": w, "kv_mean": kv}
        res["bound_ms_copy_bw"] = (w + kv) / (bandwidth["copy_GBps"] * 1e9) * 1e3
        res["bound_ms_read_bw"] = (w + kv) / (bandwidth["read_GBps"] * 1e9) * 1e3
        res["step_over_bound_copy"] = step * 1e3 / res["bound_ms_copy_bw"]
        res["step_over_bound_read"] = step * 1e3 / res["bound_ms_read_bw"]
    log(
        f"[{name}] ours {res['ours_tokens_per_s']:.0f} tok/s vs transformers "
        f"{res['hf_tokens_per_s']:.0f} tok/s = {res['speedup']:.2f}x; load {res['load_avg_1min']}"
    )
    return res


# ------------------------------------------------------------------------------------------------ kernels
_LIBRARY_OPTIONS = {  # XLA:CPU's matmul library choices (jax 0.10); "default" is YNNPACK for dots
    "default": {},
    "eigen": {"xla_cpu_experimental_ynn_fusion_type": ""},
    "xnnpack": {
        "xla_cpu_experimental_ynn_fusion_type": "",
        "xla_cpu_experimental_xnn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    },
    "onednn": {
        "xla_cpu_experimental_ynn_fusion_type": "",
        "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    },
}


def kernel_rates(rows=8, copies_bytes=1 << 28, repeats=3):
    """GB/s of weights streamed by ``[rows, in] x kernel`` for each matmul of a 0.5B decode step, kernels
    stored ``[in, out]`` and ``[out, in]``, under each library option (several weight copies rotate so the
    caches do not hold them). Returns per shape the rates and the best, and the step time the best rates
    imply (sum over the step's matmuls of bytes / best rate)."""
    cfg = ModelConfig.preset("qwen2.5-0.5b")
    d, i, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    shapes = {  # name: (in, out, count per step)
        "qkv": (d, (cfg.num_heads + 2 * cfg.num_kv_heads) * hd, cfg.num_layers),
        "o": (cfg.num_heads * hd, d, cfg.num_layers),
        "gate_up": (d, 2 * i, cfg.num_layers),
        "down": (i, d, cfg.num_layers),
        "lm_head": (d, cfg.vocab_size, 1),
    }
    rng = np.random.default_rng(0)
    out, implied = {}, 0.0
    for name, (n_in, n_out, count) in shapes.items():
        nbytes = n_in * n_out * 4
        k = max(2, min(8, copies_bytes // nbytes))
        w_io = [jnp.asarray(rng.standard_normal((n_in, n_out), np.float32)) for _ in range(k)]
        w_oi = [jnp.asarray(np.ascontiguousarray(np.asarray(w).T)) for w in w_io]
        x = jnp.asarray(rng.standard_normal((rows, n_in), np.float32))
        rates = {}
        for opt_name, opts in _LIBRARY_OPTIONS.items():
            for layout, ws, fn in (("[in,out]", w_io, lambda a, w: a @ w), ("[out,in]", w_oi, lambda a, w: a @ w.T)):
                try:
                    f = jax.jit(fn, compiler_options=opts or None)
                    f(x, ws[0]).block_until_ready()
                except Exception as e:  # an option this jaxlib does not know
                    rates[f"{opt_name} {layout}"] = f"error: {type(e).__name__}"
                    continue
                n = 4 * k
                calls = [(f, x, ws[j % k]) for j in range(n)]
                best = min(timed(lambda calls=calls: [g(a, w).block_until_ready() for g, a, w in calls], repeats))
                rates[f"{opt_name} {layout}"] = nbytes * n / best / 1e9
        if kernels.available():  # ours (jaxrlvr.kernels), reported apart from XLA's libraries
            f = jax.jit(kernels.small_matmul)
            f(x, w_oi[0]).block_until_ready()
            n = 4 * k
            calls = [(f, x, w_oi[j % k]) for j in range(n)]
            best = min(timed(lambda calls=calls: [g(a, w).block_until_ready() for g, a, w in calls], repeats))
            rates["jaxrlvr kernel [out,in]"] = nbytes * n / best / 1e9
        del w_io, w_oi
        numeric = {kk: v for kk, v in rates.items() if isinstance(v, float) and not kk.startswith("jaxrlvr")}
        top = max(numeric, key=numeric.get)
        out[name] = {"in": n_in, "out": n_out, "per_step": count, "bytes": nbytes, "GBps": rates, "best": top}
        implied += count * nbytes / (numeric[top] * 1e9)
        ours = rates.get("jaxrlvr kernel [out,in]")
        ours = f"; jaxrlvr kernel {ours:.1f} GB/s" if isinstance(ours, float) else ""
        log(f"[kernels] {name} [{rows}, {n_in}] x [{n_in}, {n_out}]: best XLA {top} {numeric[top]:.1f} GB/s{ours}")
    res = {"rows": rows, "shapes": out, "implied_step_ms": implied * 1e3}
    if kernels.available():
        res["implied_step_ms_jaxrlvr_kernel"] = 1e3 * sum(
            v["per_step"] * v["bytes"] / (v["GBps"]["jaxrlvr kernel [out,in]"] * 1e9) for v in out.values()
        )
    return res


def _round(d):
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_round(v) for v in d]
    return round(d, 4) if isinstance(d, float) else d


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="tiny,0.5b,0.5b-bf16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    import torch
    import transformers

    env = {
        "jax": jax.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "backend": jax.default_backend(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    log(f"env: {json.dumps(env)}")
    results = {"env": env, "sections": []}
    bandwidth = None
    for name in args.sections.split(","):
        if name not in SECTIONS and name != "kernels":
            ap.error(f"unknown section {name!r} (known: {', '.join([*SECTIONS, 'kernels'])})")
        if name != "tiny" and bandwidth is None:
            bandwidth = memory_bandwidth()
            results["bandwidth"] = bandwidth
            log(f"memory bandwidth: {json.dumps(_round(bandwidth))}")
        if name == "kernels":
            k = kernel_rates(repeats=args.repeats)
            weights = sum(v["per_step"] * v["bytes"] for v in k["shapes"].values())
            k["bound_ms_copy_bw"] = weights / (bandwidth["copy_GBps"] * 1e9) * 1e3
            k["implied_over_bound_copy"] = k["implied_step_ms"] / k["bound_ms_copy_bw"]
            log(
                f"[kernels] best XLA library rates imply a {k['implied_step_ms']:.0f} ms step (matmuls alone) = "
                f"{k['implied_over_bound_copy']:.2f}x the copy-bandwidth bound of {k['bound_ms_copy_bw']:.0f} ms"
            )
            if "implied_step_ms_jaxrlvr_kernel" in k:
                k["implied_over_bound_copy_jaxrlvr_kernel"] = (
                    k["implied_step_ms_jaxrlvr_kernel"] / k["bound_ms_copy_bw"]
                )
                log(
                    f"[kernels] the jaxrlvr kernel's rates imply {k['implied_step_ms_jaxrlvr_kernel']:.0f} ms = "
                    f"{k['implied_over_bound_copy_jaxrlvr_kernel']:.2f}x the bound"
                )
            results["kernels"] = k
            continue
        results["sections"].append(section(name, args.repeats, bandwidth if name != "tiny" else None))
    log(json.dumps(_round(results), indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_round(results), f, indent=1)


if __name__ == "__main__":
    main()
