"""The 8-device checks, run as a script in a subprocess (tests/mesh/test_mesh.py) because the device count
must be set before JAX starts: ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.

    python tests/mesh/mesh_checks.py OUT.json [section ...]

Sections: ``step`` (one sharded train step per mesh vs the single-device step), ``sample`` (greedy tokens
per mesh), ``port`` (a run checkpointed on (1, 8, 1) resumed on (2, 2, 2) and on one device). Results
(numbers, not verdicts) go to OUT.json; the test module asserts on them.
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")

from jaxrlvr import algos  # noqa: E402
from jaxrlvr import sharding as S  # noqa: E402
from jaxrlvr.models import ModelConfig, init_params  # noqa: E402
from jaxrlvr.train.step import (  # noqa: E402
    OptimConfig,
    TrainState,
    make_optimizer,
    score_tokens,
    score_tokens_fn,
    train_step,
    train_step_fn,
)

MESHES = [(8, 1, 1), (1, 8, 1), (1, 4, 2), (2, 2, 2), (1, 2, 4)]  # sampling
STEP_MESHES = MESHES[:4]  # training (the K/V-replicating (1, 2, 4) placement is checked by test_rules)
SCORE_MESHES = [(1, 8, 1), (2, 2, 2)]
# continuous batching with fewer slots than rows, sampled: per-shard page pools on a data-parallel mesh and
# with K/V heads split over tensor = 2 (the replicated heads of tensor = 4 are checked greedy, on every mesh)
CONTINUOUS_MESHES = [(8, 1, 1), (2, 2, 2)]
SAMPLED = dict(max_new_tokens=12, temperature=1.0, top_p=0.9, num_samples=2, eos_ids=(1, 2, 3, 4), pad_id=0, seed=4)
# tiny model: 4 query heads, 2 K/V heads (tensor=4 must replicate K/V), vocab divisible by 8
CFG = ModelConfig.preset("nano", vocab_size=128, num_layers=2)
P, R, B, MICRO = 8, 8, 16, 8


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, CFG.vocab_size, (B, P + R)).astype(np.int32)
    am = np.ones((B, P + R), np.int32)
    am[::2, :3] = 0  # left padding on half the prompts
    lengths = rng.integers(1, R + 1, B)
    mask = (np.arange(R)[None] < lengths[:, None]).astype(np.int32)
    am[:, P:] = mask
    adv = (np.repeat(rng.normal(size=(B, 1)), R, 1) * mask).astype(np.float32)
    return {
        "input_ids": ids,
        "attention_mask": am,
        "mask": mask,
        "adv": adv,
        "truncated": np.zeros((B,), bool),
    }


def _max_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def check_step(out):
    algo = algos.AlgoConfig(group_size=2)
    tx = make_optimizer(OptimConfig(lr=1e-4, warmup_steps=0, weight_decay=0.01))
    static = dict(model_cfg=CFG, algo_cfg=algo, tx=tx, prompt_len=P, temperature=0.9, micro_batch=MICRO, lr_fn=None)
    params = init_params(CFG, jax.random.key(0))
    batch = _batch()
    old, old_ent = score_tokens(
        CFG,
        params,
        jnp.asarray(batch["input_ids"]),
        jnp.asarray(batch["attention_mask"]),
        prompt_len=P,
        temperature=0.9,
        micro_batch=MICRO,
    )
    noise = np.random.default_rng(1).normal(0, 0.1, old.shape).astype(np.float32)
    batch["old_logp"] = np.asarray(old) + noise  # ratios != 1: clipping is exercised

    def fresh_state():
        p = init_params(CFG, jax.random.key(0))
        return TrainState(step=jnp.int32(0), params=p, opt_state=tx.init(p), knobs=algos.initial_step_state(algo))

    rng = jax.random.key(7)
    t0 = time.time()
    ref_state, ref_m = train_step(fresh_state(), jax.tree.map(jnp.asarray, batch), rng, **static)
    ref_params = jax.tree.map(np.asarray, ref_state.params)
    ref = {"loss": float(ref_m["loss"]), "grad_norm": float(ref_m["grad_norm"]), "clipfrac": float(ref_m["clipfrac"])}
    out["step_reference"] = ref
    out["step_reference_param_change"] = _max_diff(ref_params, jax.tree.map(np.asarray, fresh_state().params))
    out["step_single_s"] = time.time() - t0
    res = {}
    for shape in STEP_MESHES:
        t0 = time.time()
        mesh = S.make_mesh(shape, num_devices=int(np.prod(shape)))
        pl = S.placement(mesh, CFG)
        state = pl.put_state(fresh_state(), tx)
        b = pl.put_batch(batch)
        lp, ent = old, old_ent
        if shape in SCORE_MESHES:
            lp, ent = pl.score_tokens(
                score_tokens_fn,
                CFG,
                state.params,
                b["input_ids"],
                b["attention_mask"],
                prompt_len=P,
                temperature=0.9,
                micro_batch=MICRO,
            )
        new, m = pl.train_step(train_step_fn, state, b, rng, **static)
        emb = new.params["embed"]["embedding"]
        res[str(shape)] = {
            "loss": abs(float(m["loss"]) - ref["loss"]),
            "grad_norm": abs(float(m["grad_norm"]) - ref["grad_norm"]),
            "clipfrac": abs(float(m["clipfrac"]) - ref["clipfrac"]),
            "params": _max_diff(jax.tree.map(np.asarray, new.params), ref_params),
            "score_logp": _max_diff(lp, old),
            "score_entropy": _max_diff(ent, old_ent),
            "scored": shape in SCORE_MESHES,
            "step": int(new.step),
            "embed_spec": str(emb.sharding.spec),
            "embed_devices": len(emb.sharding.device_set),
            "kv_spec": str(new.params["layers"]["attn"]["k_proj"]["kernel"].sharding.spec),
            "mu_spec": str(jax.tree.leaves(new.opt_state[1][0].mu["embed"])[0].sharding.spec),
            "seconds": time.time() - t0,
        }
    out["step"] = res
    errors = {}
    try:
        S.make_mesh((3, -1, 1))
    except S.MeshError as e:
        errors["impossible_shape"] = str(e)
    try:
        S.make_mesh((2, 2, 1))
    except S.MeshError as e:
        errors["too_few_axes_product"] = str(e)
    try:
        S.put_batch(S.make_mesh((1, 8, 1)), {"input_ids": np.zeros((12, 4), np.int32)})
    except S.MeshError as e:
        errors["rows_not_divisible"] = str(e)
    out["errors"] = errors


def check_sample(out):
    from jaxrlvr.sampling import generate

    params = init_params(CFG, jax.random.key(3))
    params = jax.tree.map(lambda x: x * 6.0 if x.ndim >= 2 else x, params)  # sharper logits: no near-ties
    rng = np.random.default_rng(5)
    prompts = [rng.integers(3, CFG.vocab_size, n).tolist() for n in (5, 9, 3, 12, 7, 1, 10, 4)]
    kw = dict(max_new_tokens=12, greedy=True, num_samples=2, eos_ids=(1,), pad_id=0, seed=0)
    t0 = time.time()
    ref = generate(CFG, params, prompts, **kw)
    ref_tokens, ref_logp = np.asarray(ref.tokens), np.asarray(ref.logprobs)
    out["sample_reference_rows"] = int(ref_tokens.shape[0])
    out["sample_single_s"] = time.time() - t0
    res = {}
    for shape in MESHES:
        t0 = time.time()
        mesh = S.make_mesh(shape)
        pl = S.placement(mesh, CFG)
        placed = pl.put_params(params)
        got = pl.generate(CFG, placed, prompts, **kw)
        ip = pl.sampler_params(placed)
        res[str(shape)] = {
            "tokens_equal": bool(np.array_equal(np.asarray(got.tokens), ref_tokens)),
            "mask_equal": bool(np.array_equal(np.asarray(got.mask), np.asarray(ref.mask))),
            "logp": float(np.max(np.abs(np.asarray(got.logprobs) - ref_logp))),
            "wqkv_spec": str(ip.layers[0].wqkv.sharding.spec),
            "paged": any(isinstance(k, tuple) and k[0] == "paged" for k in pl._cache),  # per-shard page pools
            **_paged_probe(pl, prompts, kw),
            "seconds": time.time() - t0,
        }
        if shape in CONTINUOUS_MESHES:  # sampled rows through 8 sharded slots (refilled)
            got = pl.generate(CFG, placed, prompts, slots=8, **SAMPLED)
            one = generate(CFG, params, prompts, slots=3, **SAMPLED)  # one device, another slot count
            static = generate(CFG, params, prompts, continuous=False, **SAMPLED)
            res[str(shape)]["continuous"] = {
                "tokens_equal_one_device": bool(np.array_equal(np.asarray(got.tokens), np.asarray(one.tokens))),
                "tokens_equal_static": bool(np.array_equal(np.asarray(got.tokens), np.asarray(static.tokens))),
                "lengths_equal_static": bool(np.array_equal(np.asarray(got.lengths), np.asarray(static.lengths))),
                "logp": float(np.max(np.abs(np.asarray(got.logprobs) - np.asarray(static.logprobs)))),
                "distinct_lengths": len(set(np.asarray(static.lengths).tolist())),
            }
    out["sample"] = res
    out["sample_paged_tight"] = _paged_tight(params, prompts, static)


def _paged_probe(pl, prompts, kw):
    """One device's block of a layer's key pool as ``paged_fns`` creates it (4 slots, 8 pages per shard),
    and the error of a paged-attention kernel asked for on this mesh (None: it runs per shard)."""
    import dataclasses

    from jaxrlvr.sampling.sampler import setup_call
    from jaxrlvr.sharding.sampler import paged_fns, paged_pool_share

    sampler = setup_call(CFG, prompts, top_k=0, temperature=1.0, top_p=1.0, **kw)[0]
    share = paged_pool_share(pl, CFG, 16, free_bytes=1 << 30)  # pages of 16 in half of 1 GiB per device
    pool = paged_fns(pl, sampler).call("pg_init", 4, 8, 2, len(prompts) * 2)[0]
    try:
        paged_fns(pl, dataclasses.replace(sampler, decode_kernel="pallas_gpu_interpret"))
        error = None
    except ValueError as e:
        error = str(e)
    return {
        "pool_shard_shape": list(pool[0][0].addressable_shards[0].data.shape),
        "kernel_error": error,
        "pool_share_1gib": share,
    }


def _paged_tight(params, prompts, static):
    """The paged sampler on a (1, 2, 1) mesh (2 shards of 4 prompts), each shard's pool near its minimum
    and the rows admitted in a shuffled order: rows wait for pages and are preempted."""
    from jaxrlvr.sampling import paged
    from jaxrlvr.sampling.sampler import setup_call
    from jaxrlvr.sharding.sampler import paged_fns

    pl = S.placement(S.make_mesh((1, 2, 1), num_devices=2), CFG)
    sampler, ids, lengths, key, eos = setup_call(CFG, prompts, top_k=0, greedy=False, **SAMPLED)
    ip = pl.sampler_params(pl.put_params(params))
    least = paged.min_pool_pages(ids.shape[1], SAMPLED["max_new_tokens"], 2)
    order = np.random.default_rng(1).permutation(len(prompts) * 2).tolist()
    got, stats = paged.run(
        sampler, ip, ids, lengths, key, eos, pool_pages=least + 1, page_size=2, num_slots=8, order=order,
        mesh_fns=paged_fns(pl, sampler),
    )  # fmt: skip
    return {
        "tokens_equal_static": bool(np.array_equal(np.asarray(got.tokens), np.asarray(static.tokens))),
        "lengths_equal_static": bool(np.array_equal(np.asarray(got.lengths), np.asarray(static.lengths))),
        "logp": float(np.max(np.abs(np.asarray(got.logprobs) - np.asarray(static.logprobs)))),
        "devices": stats.devices,
        "preemptions": stats.preemptions,
        "peak_pages": stats.peak_pages,
        "pool_pages": stats.pool_pages,
    }


def _smoke(shape, devices=-1, **over):
    from configs import demo
    from jaxrlvr.train import config as config_lib

    c = demo.get_config("smoke")
    c.log.tensorboard = False
    c.log.plots = False
    c.train.num_steps = 2
    c.sft.steps = 0  # a random tiny model is enough to follow a run across meshes
    c.data.heldout = 0
    c.mesh.shape = shape
    c.mesh.devices = devices
    return config_lib.set_dotted(c, over)


def _metrics(wd):
    from jaxrlvr.train.metrics import read_metrics

    return read_metrics(wd / "metrics.jsonl")


def _metric_diff(a, b):
    """Largest |difference| of the non-timing metrics of two runs, step by step; steps must match."""
    if [r["step"] for r in a] != [r["step"] for r in b]:
        return float("inf")
    worst = 0.0
    for ra, rb in zip(a, b, strict=True):
        for k, v in ra.items():
            if k.startswith(("time", "tokens_per_s")) or not isinstance(v, int | float):
                continue
            worst = max(worst, abs(float(v) - float(rb.get(k, float("nan")))) if k in rb else float("inf"))
    return worst


def check_port(out):
    import pathlib
    import shutil
    import tempfile

    from jaxrlvr.train.checkpoint import load_params
    from jaxrlvr.train.loop import train

    quiet = lambda *_: None  # noqa: E731
    root = pathlib.Path(tempfile.mkdtemp(prefix="jaxrlvr_port_"))
    try:
        t0 = time.time()
        full = root / "full"
        train(_smoke((1, 8, 1)), str(full), log=quiet)  # the run that never moves
        out["port_full_s"] = time.time() - t0
        t0 = time.time()
        moved = root / "moved"
        first = train(_smoke((1, 8, 1)), str(moved), log=quiet, stop_after=1)
        out["port_stopped_at"] = first.get("stopped_at")
        single = root / "single"
        shutil.copytree(moved, single)
        train(_smoke((2, 2, 2)), str(moved), log=quiet)  # resume on another mesh
        out["port_resumed_222_s"] = time.time() - t0
        t0 = time.time()
        train(_smoke((1, 1, 1), devices=1), str(single), log=quiet)  # ... and on one device
        out["port_resumed_single_s"] = time.time() - t0
        ref = _metrics(full)
        out["port_steps"] = [r["step"] for r in ref]
        out["port_metric_keys"] = sorted(ref[-1])
        out["port_222_metrics"] = _metric_diff(ref, _metrics(moved))
        out["port_single_metrics"] = _metric_diff(ref, _metrics(single))
        _, p_full = load_params(full)
        _, p_moved = load_params(moved)
        _, p_single = load_params(single)
        out["port_222_params"] = _max_diff(p_full, p_moved)
        out["port_single_params"] = _max_diff(p_full, p_single)
        try:  # anything but the mesh changed on resume is an error
            train(_smoke((1, 8, 1), **{"optim.lr": 2e-4, "train.num_steps": 5}), str(single), log=quiet)
            out["port_changed_config_error"] = ""
        except ValueError as e:
            out["port_changed_config_error"] = str(e)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_kernels(out):
    """The Pallas attention kernels (interpret mode here) under the activation rules of a (2, 2, 2) mesh:
    wrapped in shard_map (rows over data x fsdp, heads over tensor) and equal to the dense formula. (In
    interpret mode the kernel is plain HLO that XLA could partition anyway, so the jaxpr is what shows the
    per-shard call; compiled on a TPU / GPU the kernel is an opaque custom call.)"""
    from jaxrlvr.models import partitioning
    from jaxrlvr.models.attention import attention

    mesh = S.make_mesh((2, 2, 2))
    rules = dict(S.activation_rules(mesh, S.DEFAULT_RULES))
    rng = np.random.default_rng(0)
    b, t, n, kv, h = 4, 40, 4, 2, 8
    q = jnp.asarray(rng.normal(size=(b, t, n, h)), jnp.float32)
    k, v = (jnp.asarray(rng.normal(size=(b, t, kv, h)), jnp.float32) for _ in range(2))
    seg = jnp.asarray(np.repeat(np.arange(4)[None], b, 0).repeat(10, 1), jnp.int32)
    heads = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"), None, "tensor", None))
    q, k, v = (jax.device_put(x, heads) for x in (q, k, v))
    ref = attention(q, k, v, impl="dense", q_segment_ids_BT=seg, kv_segment_ids_BS=seg)
    out["kernels"] = {}
    for kind in ("pallas_tpu", "pallas_gpu"):

        def fn(q, k, v, kind=kind):
            return attention(q, k, v, impl=kind, q_segment_ids_BT=seg, kv_segment_ids_BS=seg)

        # (fresh function objects: JAX caches a trace per function, and the rules are not part of its key)
        with partitioning.activation_sharding(mesh, rules):
            got = jax.jit(fn)(q, k, v)
            inside = str(jax.make_jaxpr(lambda *a: fn(*a))(q, k, v))
        outside = str(jax.make_jaxpr(lambda *a: fn(*a))(q, k, v))
        out["kernels"][kind] = {
            "max_diff": _max_diff(got, ref),
            "shard_map_on_mesh": "shard_map" in inside,
            "shard_map_off_mesh": "shard_map" in outside,
        }


SECTIONS = {"step": check_step, "sample": check_sample, "port": check_port, "kernels": check_kernels}


def main(path, sections):
    out = {"devices": jax.device_count()}
    t0 = time.time()
    for name in sections or list(SECTIONS):
        SECTIONS[name](out)
    out["total_s"] = time.time() - t0
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
