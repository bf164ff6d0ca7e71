"""Per-device memory of a GRPO update on a mesh and, on one device, of the trainer and the paged sampler
together, from XLA's compiled memory analysis (nothing is allocated).

    python scripts/memory_plan.py --config configs/dapo_baseline.py:model=qwen2.5-7b --mesh 1,8,1 [--json]
    python scripts/memory_plan.py --config configs/dapo_baseline.py:model=qwen2.5-1.5b --mesh 1,1,1 --card h100-80gb

The real sharded train step (``jaxrlvr.sharding``) is lowered on abstract shapes for the config's model,
mini-batch (``train.mini_batch_prompts x rollout.group_size`` sequences of ``max_prompt_len +
max_new_tokens`` tokens, or ``--mini_batch``) and micro-batch, and compiled for ``prod(mesh)`` devices;
``memory_analysis()`` gives the bytes per device. Unless ``--micro_batch`` is given, micro-batch sizes
from the whole mini-batch down to one row per device are tried, largest first, and the largest that fits
the budget is reported.

Budget per device: ``--budget_gib`` if given; else ``--card NAME`` (``sharding.memory.CARDS``: the card's
total memory) times ``--mem_fraction`` on a GPU (default: ``XLA_CLIENT_MEM_FRACTION`` /
``XLA_PYTHON_CLIENT_MEM_FRACTION`` if set, else JAX's 0.75: what JAX's allocator may use); else, with
``--backend gpu``, the live device's ``memory_stats()["bytes_limit"]``; else an h100-80gb at that fraction.

With packing (``train.packing``, the default; ``--layout`` overrides) the plan is by tokens per device per
micro-step: the packed step is compiled at 2304 and 9216 slots per device (the temporaries per token of the
two are reported: attention is linear in memory, so they should be close), the temporaries are fitted as
``a + b * tokens``, and the largest multiple of 1024 slots predicted to fit the budget is compiled
to check it (if it does not fit, a secant through the 9216 probe and the failed plan gives the next
guess, with a 2% margin); it is reported as ``tokens_per_device``.

On a one-device mesh (where the trainer samples through the paged sampler) the plan adds the rollout
phase (``sharding.memory.colocated_memory``): the train state stays resident, the sampler's weights copy,
a page pool sized from what is left as the sampler sizes it, and its decode round and prefill compiled at
those shapes. Every mesh also gets the contiguous KV cache estimate for ``--sample_batch`` rows.

By default the devices are fake CPU devices (``--xla_force_host_platform_device_count``); the compiled
program is XLA:CPU's, whose fusion and scheduling differ from XLA:GPU's (see docs/mesh.md for how
faithful that is). ``--backend=gpu`` compiles for the real local accelerators instead (needs as many).
"""

from __future__ import annotations

import os
import pathlib
import sys


def _peek(flag: str, default: str) -> str:
    for i, a in enumerate(sys.argv):
        if a == flag and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


# The device count must be fixed before JAX starts.
_MESH = [int(x) for x in _peek("--mesh", "1,8,1").split(",")]
if _peek("--backend", "cpu") == "cpu":
    os.environ["JAX_PLATFORMS"] = "cpu"
    n_dev = 1
    for s in _MESH:
        n_dev *= max(s, 1)
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n_dev}"])

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file (configs/NAME.py[:presets])", lock_config=True)
flags.DEFINE_string("mesh", "1,8,1", "mesh shape data,fsdp,tensor")
flags.DEFINE_enum("backend", "cpu", ["cpu", "gpu"], "compile for fake CPU devices or the local accelerators")
flags.DEFINE_bool("json", False, "print one JSON object instead of the table")
flags.DEFINE_integer("mini_batch", 0, "sequences per optimizer update (0: mini_batch_prompts x group_size)")
flags.DEFINE_integer("micro_batch", 0, "padded: sequences per forward/backward (0: the largest that fits)")
flags.DEFINE_enum("layout", "", ["", "packed", "padded"], "update layout ('': the config's train.packing)")
flags.DEFINE_integer("tokens", 0, "packed: token slots per device per micro-step (0: the largest that fits)")
flags.DEFINE_float("budget_gib", 0.0, "memory per device to fit in (0: from --card / the live device)")
flags.DEFINE_string("card", "", "the device's card: h100-80gb, h200-141gb, a100-80gb, a100-40gb, tpu-v5e-16gb")
flags.DEFINE_float(
    "mem_fraction", 0.0, "share of a GPU card JAX may use (0: XLA_CLIENT_MEM_FRACTION if set, else 0.75)"
)
flags.DEFINE_bool("colocated", True, "one-device mesh: also plan the rollout (paged sampler after the train state)")
flags.DEFINE_string("param_dtype", "", "override model.param_dtype (e.g. bfloat16)")
flags.DEFINE_string("opt_dtype", "float32", "dtype of the Adam moments ('' = the param dtype)")
flags.DEFINE_string("remat", "", "override model.remat (none | full | dots)")
flags.DEFINE_integer("sample_batch", 512, "rows of the sampler KV-cache estimate")
flags.DEFINE_integer("sample_tokens", 0, "cache slots per row (0: max_prompt_len + max_new_tokens)")
flags.mark_flags_as_required(["config"])
FLAGS = flags.FLAGS


def _error(msg: str):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def _budget(sm, platform: str):
    """(bytes, source, fraction, fraction source) per device, by the precedence in the module docstring."""
    try:
        fraction, fsrc = (FLAGS.mem_fraction, "--mem_fraction") if FLAGS.mem_fraction else sm.mem_fraction_from_env()
    except ValueError as e:
        _error(f"{sm.MEM_FRACTION_ENV}: {e}; set a fraction such as 0.9")
    if FLAGS.budget_gib:
        return int(FLAGS.budget_gib * sm.GIB), "--budget_gib", fraction, fsrc
    if not FLAGS.card and platform != "cpu" and sm.device_bytes_limit() is not None:
        return sm.device_bytes_limit(), "the device's memory_stats() bytes_limit", fraction, fsrc
    card = FLAGS.card or sm.DEFAULT_CARD
    gib, kind, source = sm.CARDS[card]
    applied = f" x {fraction:g} ({fsrc})" if kind == "gpu" else " (no fraction on a TPU)"
    return sm.card_budget_bytes(card, fraction), f"{card}: {gib:.2f} GiB ({source}){applied}", fraction, fsrc


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from jaxrlvr.sharding import memory as sm

    if FLAGS.card and FLAGS.card not in sm.CARDS:
        _error(f"--card {FLAGS.card!r} is not a known card; give one of {', '.join(sm.CARDS)} or --budget_gib GIB")
    if not 0 <= FLAGS.mem_fraction <= 1 or FLAGS.budget_gib < 0:
        bad = f"--mem_fraction {FLAGS.mem_fraction:g} / --budget_gib {FLAGS.budget_gib:g}"
        _error(f"{bad}: give a fraction in (0, 1] and a budget >= 0")
    import jax
    import jax.numpy as jnp
    from absl import logging

    logging.set_verbosity(logging.ERROR)
    from jaxrlvr import sharding
    from jaxrlvr.models import abstract_params
    from jaxrlvr.train import config as config_lib
    from jaxrlvr.train.memory import train_step_memory
    from jaxrlvr.train.step import make_optimizer

    c, _ = config_lib.resolve_sources(_CONFIG.value)  # the config the trainer would run (smoke sizes etc.)
    m = c.model
    if m.hf_path:
        raise app.UsageError("memory_plan reads presets only; pass :model=PRESET instead of model.hf_path")
    from jaxrlvr.train.loop import build_tokenizer

    vocab = build_tokenizer(c).vocab_size if m.vocab_size == -1 else 0  # -1: the tokenizer's vocabulary
    model_cfg = dataclasses.replace(  # the model the trainer would build, with this script's overrides
        config_lib.model_config(c, vocab),
        param_dtype=FLAGS.param_dtype or m.param_dtype,
        remat=FLAGS.remat or m.remat,
    )
    shape = tuple(int(x) for x in FLAGS.mesh.split(","))
    mesh = sharding.make_mesh(shape)
    pl = sharding.placement(mesh, model_cfg, sharding.rules_from_config(c))
    rc = config_lib.rollout_config(c)
    algo_cfg = config_lib.algo_config(c)
    tx = make_optimizer(config_lib.optim_config(c))
    mini = FLAGS.mini_batch or c.train.mini_batch_prompts * rc.group_size
    per = sharding.batch_divisor(mesh)
    budget, budget_source, fraction, fraction_source = _budget(sm, jax.devices()[0].platform)
    budget_gib = budget / sharding.GIB
    opt_dtype = jnp.dtype(FLAGS.opt_dtype) if FLAGS.opt_dtype else None
    packed = FLAGS.layout == "packed" or (FLAGS.layout == "" and c.train.packing)

    def plan(micro_batch=0, tokens=0):
        r = train_step_memory(
            pl,
            algo_cfg=algo_cfg,
            tx=tx,
            mini_batch=mini,
            prompt_len=rc.max_prompt_len,
            response_len=rc.max_new_tokens,
            micro_batch=micro_batch,
            opt_dtype=opt_dtype,
            temperature=rc.temperature,
            with_ref_logp=algo_cfg.uses_kl,
            tokens_per_device=tokens,
        )
        r["micro_batch"], r["tokens"] = micro_batch or per, tokens
        r["per_device_gib"] = r["peak"] / sharding.GIB
        r["fits"] = r["peak"] <= budget
        # progress on stderr (the --json object goes to stdout)
        what = f"{tokens:6d} tokens per device" if tokens else f"micro-batch {micro_batch:4d}"
        print(
            f"{what}: {r['per_device_gib']:7.2f} GiB per device "
            f"(state {r['state'] / sharding.GIB:.2f}, temp {r['temp'] / sharding.GIB:.2f}; "
            f"compile {r['compile_s']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        tried.append(r)
        return r

    tried, chosen, linearity = [], None, None
    if mini % per:
        raise app.UsageError(f"mini-batch {mini} does not split over data x fsdp = {per}")
    if packed and FLAGS.tokens:
        chosen = plan(tokens=FLAGS.tokens)
    elif packed:  # two probes, a linear fit of the temporaries, then the largest predicted fit, checked
        lo, hi = plan(tokens=2304), plan(tokens=9216)
        linearity = {n: r["temp"] / n for n, r in ((2304, lo), (9216, hi))}
        slope = (hi["temp"] - lo["temp"]) / (9216 - 2304)
        fixed = hi["peak"] - slope * 9216  # peak at zero tokens, if the temporaries are linear
        guess = int((budget - fixed) / max(slope, 1.0)) // 1024 * 1024
        for _ in range(4):  # check the guess; if it does not fit, a secant through the last two plans
            guess = min(guess, 1 << 20)  # our choice: no plan beyond 1M slots per device
            if guess < 1024:
                break
            r = plan(tokens=guess)
            if r["fits"]:
                chosen = r
                break
            a, b = sorted((hi, r), key=lambda x: x["tokens"])
            slope = (b["peak"] - a["peak"]) / max(b["tokens"] - a["tokens"], 1)
            target = a["tokens"] + (budget - a["peak"]) / max(slope, 1.0)
            guess = min(int(target * 0.98) // 1024 * 1024, guess - 1024)  # 2% margin for the curvature
        if chosen is None:
            chosen = max((r for r in tried if r["fits"]), key=lambda r: r["tokens"], default=None)
    else:
        if FLAGS.micro_batch:
            candidates = [FLAGS.micro_batch]
        else:  # the largest micro-batch that fits: from the whole mini-batch down to one row per device
            candidates = sorted({mb for mb in range(per, mini + 1, per) if mini % mb == 0}, reverse=True)
        if not candidates or any(mini % mb or mb % per for mb in candidates):
            raise app.UsageError(f"mini-batch {mini} / micro-batch {candidates} do not split over data x fsdp = {per}")
        for mb in candidates:
            if plan(micro_batch=mb)["fits"]:
                chosen = tried[-1]
                break
    best = chosen or tried[-1]
    tokens = FLAGS.sample_tokens or rc.max_prompt_len + rc.max_new_tokens
    cache = sharding.sampler_cache_memory(mesh, model_cfg, FLAGS.sample_batch, tokens)
    colocated = None
    if mesh.size == 1 and FLAGS.colocated:  # the trainer's sampler on one device: the paged pool after the train state
        t0 = time.time()
        colocated = sm.colocated_memory(
            model_cfg, budget=budget, train_state=best["state"], train_peak=best["peak"],
            prompts=c.rollout.prompts_per_step, group_size=rc.group_size, prompt_len=rc.max_prompt_len,
            max_new_tokens=rc.max_new_tokens, page_size=rc.page_size,
        )  # fmt: skip
        print(f"paged sampler: compiled in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    gib = lambda b: round(b / sharding.GIB, 3)  # noqa: E731
    out = {
        "model": model_cfg.name,
        "num_params": model_cfg.num_params(),
        "mesh": dict(mesh.shape),
        "backend": jax.devices()[0].platform,
        "param_dtype": model_cfg.param_dtype,
        "compute_dtype": model_cfg.dtype,
        "opt_dtype": str(opt_dtype or model_cfg.param_dtype),
        "remat": model_cfg.remat,
        "mini_batch": mini,
        "seq_len": rc.max_prompt_len + rc.max_new_tokens,
        "layout": "packed" if packed else "padded",
        "micro_batch": best["micro_batch"],
        "per_device_gib": round(best["per_device_gib"], 3),
        "budget_gib": round(budget_gib, 3),
        "budget_source": budget_source,
        "mem_fraction": fraction,
        "mem_fraction_source": fraction_source,
        "fits": best["peak"] <= budget,
        "breakdown_gib": {k: gib(best[k]) for k in ("state", "arguments", "outputs", "aliased", "temp")},
        "tried": [
            {
                "micro_batch": r["micro_batch"],
                "tokens": r["tokens"],
                "per_device_gib": round(r["per_device_gib"], 3),
                "compile_s": round(r["compile_s"], 1),
            }
            for r in tried
        ],
        "sampler": {
            "batch": cache["batch"],
            "tokens": cache["tokens"],
            "kv_cache_total_gib": gib(cache["cache_total"]),
            "kv_cache_per_device_gib": gib(cache["cache_per_device"]),
            "weights_per_device_gib": gib(cache["weights_per_device"]),
        },
        "colocated": None,
    }
    if colocated:
        p = colocated["sampler"]
        out["colocated"] = {
            **{k: v for k, v in colocated.items() if k.startswith("pool_pages") or k == "pool_capped_by_rows"},
            **{k: colocated[k] for k in ("page_bytes", "slots", "rows", "fits")},
            "page_size": rc.page_size,
            "pairs": p["pairs"],
            "train_state_gib": gib(best["state"]),
            "free_for_sampler_gib": gib(colocated["free_for_sampler"]),
            "sampler_weights_gib": gib(p["weights"]),
            "pool_gib": gib(p["pool"]),
            "decode_round_gib": {k: gib(p[k]) for k in ("arguments", "outputs", "aliased", "temp", "peak")},
            "prefill_gib": {"temp": gib(p["prefill_temp"]), "peak": gib(p["prefill_peak"])},
            "train_peak_gib": gib(colocated["train_peak"]),
            "rollout_peak_gib": gib(colocated["rollout_peak"]),
            "peak_gib": gib(colocated["peak"]),
        }
        if out["backend"] == "cpu" and model_cfg.dtype == "bfloat16":
            # XLA:CPU float-normalizes the bf16 programs: the round and the prefill hold a float32 copy of the
            # whole pool as temporaries (2x the pool; tests/mesh/test_paged_memory.py), which XLA:GPU, with
            # native bf16, need not (not measured on a GPU here). The plan without that copy, as an estimate:
            up = 2 * p["pool"]
            out["colocated"]["xla_cpu_bf16_upcast_gib"] = gib(up)
            out["colocated"]["rollout_peak_gib_less_upcast"] = gib(colocated["rollout_peak"] - up)
            out["colocated"]["fits_less_upcast"] = max(colocated["rollout_peak"] - up, best["peak"]) <= budget
        k = c.rollout.max_staleness
        if k:  # a colocated asynchronous run: the update and a rollout at once (an upper bound)
            params = sum(int(math.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(
                abstract_params(model_cfg)))  # fmt: skip
            out["colocated"]["overlap_peak_gib"] = gib(sm.overlap_peak(colocated, params=params, staleness=k))
    if packed:
        out["tokens_per_device"] = best["tokens"] if best["fits"] else 0
        if linearity:
            out["temp_bytes_per_token"] = {str(n): round(v) for n, v in linearity.items()}
            out["temp_per_token_ratio_9216_vs_2304"] = round(linearity[9216] / linearity[2304], 3)
    if FLAGS.json:
        print(json.dumps(out))
        return 0
    rows = [
        ("model", f"{out['model']} ({out['num_params'] / 1e9:.2f} B params)"),
        ("mesh (data, fsdp, tensor)", f"{tuple(out['mesh'].values())} on {out['backend']}"),
        ("dtypes", f"params {out['param_dtype']}, compute {out['compute_dtype']}, Adam {out['opt_dtype']}"),
        ("remat", out["remat"]),
        ("mini-batch", f"{mini} sequences of up to {out['seq_len']} tokens"),
        (
            ("packed micro-step", f"{out.get('tokens_per_device', 0)} tokens per device")
            if packed
            else ("micro-batch", str(out["micro_batch"]))
        ),
        ("budget per device", f"{budget_gib:.2f} GiB: {budget_source}"),
        ("update: per-device memory", f"{out['per_device_gib']:.2f} GiB"),
        ("  train state (params + Adam)", f"{out['breakdown_gib']['state']:.2f} GiB"),
        ("  temporaries", f"{out['breakdown_gib']['temp']:.2f} GiB"),
        ("  fits the budget", "yes" if out["fits"] else "NO"),
    ]
    if colocated:
        o = out["colocated"]
        rows += [
            ("rollout (colocated): peak", f"{o['rollout_peak_gib']:.2f} GiB"),
            ("  train state, resident", f"{o['train_state_gib']:.2f} GiB"),
            ("  sampler weights copy", f"{o['sampler_weights_gib']:.2f} GiB"),
            (
                "  page pool",
                f"{o['pool_gib']:.2f} GiB: {o['pool_pages']} pages of {rc.page_size} "
                f"({o['pool_pages_from_free']} fit in half the free "
                f"{o['free_for_sampler_gib']:.2f} GiB, {o['pool_pages_every_row']} hold every row)",
            ),
            ("  decode round temporaries", f"{o['decode_round_gib']['temp']:.2f} GiB ({o['slots']} slots)"),
            ("  prefill temporaries", f"{o['prefill_gib']['temp']:.2f} GiB"),
            ("trainer + sampler fit", "yes" if o["fits"] else "NO"),
        ]
        if "xla_cpu_bf16_upcast_gib" in o:
            rows += [
                ("  of which XLA:CPU's f32 pool copy", f"{o['xla_cpu_bf16_upcast_gib']:.2f} GiB (bf16 on a CPU)"),
                ("  fit without it (estimate)", "yes" if o["fits_less_upcast"] else "NO"),
            ]
        if "overlap_peak_gib" in o:
            what = f"  overlapped (max_staleness {c.rollout.max_staleness})"
            rows.append((what, f"<= {o['overlap_peak_gib']:.2f} GiB"))
    rows += [
        (
            f"contiguous KV cache ({cache['batch']} x {tokens})",
            f"{out['sampler']['kv_cache_total_gib']:.1f} GiB total, "
            f"{out['sampler']['kv_cache_per_device_gib']:.2f} GiB per device",
        ),
        ("sampler weights per device", f"{out['sampler']['weights_per_device_gib']:.2f} GiB"),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0


if __name__ == "__main__":
    app.run(main)
