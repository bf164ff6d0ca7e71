"""The sampler on a mesh: decoding weights replicated over ``data`` and ``fsdp`` (split over ``tensor``), the
KV cache and loop state sharded over rows (and the cache over K/V heads), prefill and decode jitted with
those shardings; :func:`generate` has :func:`jaxrlvr.sampling.generate`'s arguments and results."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrlvr.models import ModelConfig, abstract_params
from jaxrlvr.sharding.mesh import BATCH_AXES, MeshError, batch_divisor, replicated
from jaxrlvr.sharding.transfer import put

if TYPE_CHECKING:  # placement.py imports this module (one way)
    from jaxrlvr.sharding.placement import Placement


def _tensor_dim(shape, nt: int) -> int | None:
    """The dimension of a 2-D weight split over a tensor axis of size ``nt``: the larger divisible one."""
    if nt == 1 or len(shape) != 2:
        return None
    for d in sorted(range(2), key=lambda d: -shape[d]):
        if shape[d] % nt == 0:
            return d
    return None


def sampler_param_shardings(mesh: Mesh, model_cfg: ModelConfig, ip=None):
    """Shardings of the sampler's ``InferenceParams``: every weight replicated over ``data`` and ``fsdp``
    (decoding reads all weights every step; gathering FSDP shards per token would dominate). With a
    ``tensor`` axis > 1 each 2-D weight is split over it along its larger divisible dimension (the
    vocabulary of embedding / LM head, the wide side of each kernel); vectors stay replicated."""
    if ip is None:
        from jaxrlvr.sampling import inference

        ip = jax.eval_shape(functools.partial(inference.prepare_params, model_cfg), abstract_params(model_cfg))
    nt = mesh.shape["tensor"]

    def one(x):
        d = _tensor_dim(x.shape, nt)
        spec = [None] * len(x.shape)
        if d is not None:
            spec[d] = "tensor"
        return NamedSharding(mesh, P(*spec))

    return jax.tree.map(one, ip)


def _rows_spec(mesh: Mesh, rows: int):
    return BATCH_AXES if rows % batch_divisor(mesh) == 0 else None


def cache_shardings(mesh: Mesh, model_cfg: ModelConfig, cache):
    """The sampler's KV cache (leaves ``[B, KV, ...]``): rows over ``('data', 'fsdp')`` and K/V heads over
    ``tensor`` when the head count divides (Qwen2.5 0.5B-3B have 2 K/V heads: replicated on tensor > 2)."""
    heads = "tensor" if kv_head_split(mesh, model_cfg) > 1 else None

    def one(x):
        b, kv = x.shape[0], x.shape[1]
        if kv != model_cfg.num_kv_heads:
            raise MeshError(f"cache leaf {x.shape}: expected [B, KV={model_cfg.num_kv_heads}, ...]")
        return NamedSharding(mesh, P(_rows_spec(mesh, b), heads))

    return jax.tree.map(one, cache)


def _rows_shardings(mesh: Mesh, tree, rows: int):
    """Leaves with ``rows`` leading rows sharded over the batch axes (when divisible), others replicated."""

    def one(x):
        if len(x.shape) >= 1 and x.shape[0] == rows:
            return NamedSharding(mesh, P(_rows_spec(mesh, rows)))
        return replicated(mesh)

    return jax.tree.map(one, tree)


def _sampler_jits(pl: Placement, sampler, p: int, t: int, e: int):
    from jaxrlvr.sampling import sampler as sampler_mod
    from jaxrlvr.sampling.prng import seed_key

    key = ("sampler", sampler, p, t, e)
    hit = pl._cache.get(key)
    if hit is not None:
        return hit
    mesh = pl.mesh
    ip_abs = jax.eval_shape(
        functools.partial(sampler_mod.inference.prepare_params, sampler.config), abstract_params(sampler.config)
    )
    ip_sh = sampler_param_shardings(mesh, sampler.config, ip_abs)
    ids = jax.ShapeDtypeStruct((p, t), jnp.int32)
    lens = jax.ShapeDtypeStruct((p,), jnp.int32)
    eos = jax.ShapeDtypeStruct((e,), jnp.int32)
    rng = jax.eval_shape(lambda: seed_key(0))
    cache_abs, state_abs = jax.eval_shape(
        lambda *a: sampler_mod.Sampler.prefill_impl(sampler, *a), ip_abs, ids, lens, rng, eos
    )
    b = p * sampler.num_samples
    cache_sh = cache_shardings(mesh, sampler.config, cache_abs)
    state_sh = _rows_shardings(mesh, state_abs, b)
    in_rows = NamedSharding(mesh, P(_rows_spec(mesh, p)))
    rep = replicated(mesh)
    platform = mesh.devices.flat[0].platform
    opts = None
    if hasattr(sampler_mod, "compiler_options") and not getattr(sampler_mod, "_OPTIONS_REJECTED", False):
        opts = sampler_mod.compiler_options(sampler.config, platform)  # the sampler's own XLA options
    prefill = jax.jit(
        functools.partial(sampler_mod.Sampler.prefill_impl, sampler),
        in_shardings=(ip_sh, in_rows, in_rows, rep, rep),
        out_shardings=(cache_sh, state_sh),
        compiler_options=opts,
    )
    decode = jax.jit(
        functools.partial(sampler_mod.Sampler.decode_impl, sampler),
        in_shardings=(ip_sh, cache_sh, state_sh),
        out_shardings=(rep, cache_sh),  # outputs gathered: every process can read every row
        donate_argnums=1,
        compiler_options=opts,
    )
    pl._cache[key] = (prefill, decode)
    return prefill, decode


def _continuous_fns(pl: Placement, sampler):
    """``continuous.sharded_fns`` for this mesh (cached per sampler): the store and the slot cache like the
    static cache (rows or slots over the batch axes, K/V heads over ``tensor``), the slot state and the
    outputs over rows, what the host reads back replicated."""
    from jaxrlvr.sampling import continuous
    from jaxrlvr.sampling import sampler as sampler_mod

    key = ("continuous", sampler)
    hit = pl._cache.get(key)
    if hit is not None:
        return hit
    mesh, cfg = pl.mesh, sampler.config

    def shardings(tree, kind):
        if kind == "replicated":
            return jax.tree.map(lambda _: replicated(mesh), tree)
        if kind == "prompts":  # (ids [P, T], lengths [P]): as the static path places them
            return jax.tree.map(lambda _: NamedSharding(mesh, P(_rows_spec(mesh, tree[1].shape[0]))), tree)
        if kind == "cache":
            return cache_shardings(mesh, cfg, tree)
        if kind == "store":
            rows = tree["plen"].shape[0]
            kv = {n: cache_shardings(mesh, cfg, tree[n]) for n in ("k", "v")}
            return {**_rows_shardings(mesh, {n: x for n, x in tree.items() if n not in kv}, rows), **kv}
        return _rows_shardings(mesh, tree, jax.tree.leaves(tree)[0].shape[0])  # "slots", "out"

    opts = None
    if not getattr(sampler_mod, "_OPTIONS_REJECTED", False):
        opts = sampler_mod.compiler_options(cfg, mesh.devices.flat[0].platform)
    fns = continuous.sharded_fns(sampler, shardings, put, opts)
    pl._cache[key] = fns
    return fns


# shard_map specs of the paged sampler's functions (``sampling.paged``), manual over the batch axes only:
# pools on their pages axis, slot state, outputs, first tokens and every per-slot / per-prompt / per-shard
# host array on their first axis over the batch axes; weights, key, EOS ids and scalars replicated over
# them. ``tensor`` stays in auto mode inside: the weights keep their tensor split, the pools' K/V heads are
# split over it where they divide (``_POOL_T``, the jit's shardings), and XLA adds the collectives
_SHARDS, _POOL, _REP = P(BATCH_AXES), P(None, BATCH_AXES), P()
_POOL_T = P("tensor", BATCH_AXES)
_PAGED_SPECS = {  # name -> (in_specs without the static args, out_specs, donated argnums)
    "pg_init": ((), (_POOL, _SHARDS, _SHARDS, _SHARDS), ()),
    "pg_open": ((_REP, _POOL, _SHARDS, _REP, *[_SHARDS] * 5), (_POOL, _SHARDS), (1, 2)),
    "pg_round": (
        (_REP, _POOL, *[_SHARDS] * 3, _REP, _REP, *[_SHARDS] * 8, _REP, _SHARDS),
        (_POOL, *[_SHARDS] * 3),
        (1, 2, 3),
    ),
    "pg_compact": ((_SHARDS,) * 3, (_SHARDS, _SHARDS), ()),
    "pg_finish": ((_SHARDS, _SHARDS, _REP), _SHARDS, ()),
}
_PAGED_READ_BACK = {"pg_round": 3, "pg_finish": None}  # outputs the host reads: replicated (None: all)
_STATIC_ARGS = {"pg_init": 4}  # leading static positional args (slots, pages, page, rows)


def kv_head_split(mesh: Mesh, config: ModelConfig) -> int:
    """Devices a K/V head axis is split over (``tensor`` when it divides the K/V heads, else 1: replicated,
    as :func:`cache_shardings`): a paged pool's page costs ``page_bytes / kv_head_split`` per device."""
    nt = mesh.shape["tensor"]
    return nt if nt > 1 and config.num_kv_heads % nt == 0 else 1


def paged_pool_share(pl: Placement, config: ModelConfig, page: int, free_bytes: int | None = None) -> int:
    """Pages of each shard's pool from its devices' free memory (``paged_sizing.POOL_FRACTION`` of it, at
    a device's share of a page: ``page_bytes / kv_head_split``, as the pool's K/V heads are split over
    ``tensor`` where they divide): the least over this process's devices of the mesh and, in a
    multi-process run, over the processes (every process must take the same decisions). ``free_bytes``:
    each device's free memory (default: measured, ``paged_sizing.free_device_bytes``; CPU devices share
    the host's memory: split between them)."""
    from jaxrlvr.sampling import paged_sizing

    mine = [dv for dv in pl.mesh.devices.flat if dv.process_index == jax.process_index()]
    free = free_bytes
    if free is None:
        free = min(paged_sizing.free_device_bytes(dv) for dv in mine)
        if mine[0].platform == "cpu":
            free //= len(mine)
    share = paged_sizing.pool_pages_from_free(config, page, free, kv_split=kv_head_split(pl.mesh, config))
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        share = int(np.min(multihost_utils.process_allgather(np.asarray([share], np.int64))))
    return share


def paged_fns(pl: Placement, sampler):
    """``paged.MeshFns`` of a mesh: each of the ``data x fsdp`` shards runs the paged sampler's jitted
    functions (``paged.JIT_SPECS``) on its own pool, slots and rows under ``shard_map``, manual over the
    batch axes only. With ``tensor`` = 1 a shard is one device with whole weights and no collective inside
    a round (each shard's decode loop stops on its own). With ``tensor`` > 1 a shard is a tensor group:
    ``tensor`` stays in auto mode inside the ``shard_map``, so the weights stay split over it as
    :func:`sampler_param_shardings` splits them, the pools' K/V heads are split over it where they divide
    (else replicated, as :func:`cache_shardings`), XLA adds the tensor-parallel collectives, and the
    shards' decode loops step in lockstep (``paged.round_``'s ``sync_axes``: XLA:CPU's collective-permute
    needs every device; a shard done early takes parked steps). A tensor group shares one page table.
    Host arrays are placed with ``put`` (multi-process safe) and what the host reads back (a round's
    ``info``, the outputs) comes back replicated. Jits cached per sampler."""
    from jaxrlvr.sampling import paged
    from jaxrlvr.sampling import sampler as sampler_mod

    mesh = pl.mesh
    nt = mesh.shape["tensor"]
    heads = kv_head_split(mesh, sampler.config) > 1
    if nt > 1 and sampler.decode_kernel != "xla":  # a kernel is opaque to the partitioner: whole heads only
        if sampler.decode_kernel != "auto":
            raise ValueError(
                f"decode_kernel={sampler.decode_kernel!r}: the paged-attention kernels run per data x fsdp shard "
                f"with whole K/V heads, not on a mesh with tensor = {nt}; use auto or xla"
            )
        if mesh.devices.flat[0].platform != "cpu":
            msg = f"decode_kernel=auto: the paged decode on a mesh with tensor = {nt} uses the XLA path"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        sampler = dataclasses.replace(sampler, decode_kernel="xla")
    opts = None
    if not getattr(sampler_mod, "_OPTIONS_REJECTED", False):
        opts = sampler_mod.compiler_options(sampler.config, mesh.devices.flat[0].platform)
    named = lambda spec: NamedSharding(mesh, spec)  # noqa: E731

    def jitted(name, static_args, static_kw):
        key = ("paged", sampler, name, static_args, tuple(sorted(static_kw.items())))
        hit = pl._cache.get(key)
        if hit is not None:
            return hit
        in_specs, out_specs, donate = _PAGED_SPECS[name]
        fn = functools.partial(paged.JIT_SPECS[name][0], sampler, *static_args, **static_kw)
        mapped = jax.shard_map(
            fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, axis_names=set(BATCH_AXES), check_vma=False
        )
        pool_t = lambda sp: _POOL_T if sp is _POOL and heads else sp  # noqa: E731  (K/V heads over tensor)
        outs = jax.tree.map(lambda sp: named(pool_t(sp)), out_specs, is_leaf=lambda x: isinstance(x, P))
        back = _PAGED_READ_BACK.get(name, -1)
        if back is None:
            outs = named(_REP)
        elif back >= 0:
            outs = (*outs[:back], named(_REP))
        hit = jax.jit(mapped, out_shardings=outs, donate_argnums=donate, compiler_options=opts)
        pl._cache[key] = hit
        return hit

    def call(name, *args, **static):
        if name == "pg_round" and nt > 1:  # the step's tensor collectives: every shard steps in lockstep
            static["sync_axes"] = BATCH_AXES
        n_static = _STATIC_ARGS.get(name, 0)
        static_args, args = tuple(args[:n_static]), args[n_static:]
        fn = jitted(name, static_args, static)
        in_specs = _PAGED_SPECS[name][0]
        args = tuple(
            a if all(isinstance(x, jax.Array) for x in jax.tree.leaves(a)) else put(a, named(spec))
            for a, spec in zip(args, in_specs, strict=True)
        )
        return fn(*args)

    return paged.MeshFns(
        devices=batch_divisor(mesh),
        call=call,
        pool_share=lambda page: paged_pool_share(pl, sampler.config, page),
    )


def default_slots(pl: Placement, config: ModelConfig, rows: int, prompt_len: int, max_new_tokens: int) -> int:
    """Slots whose cache fits each device's memory share (``continuous.default_num_slots`` per device,
    times the batch-axes size the slots are split over), at most ``rows``; a multiple of that size when
    at least one."""
    from jaxrlvr.sampling import continuous

    d = batch_divisor(pl.mesh)
    per_device = continuous.default_num_slots(config, rows, prompt_len, max_new_tokens, pl.mesh.devices.flat[0])
    s = min(rows, per_device * d)
    return s - s % d if s >= d else s


def generate(
    pl: Placement,
    config: ModelConfig,
    params,
    prompts,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    num_samples: int = 1,
    eos_ids=(),
    pad_id: int,
    seed: int,
    slots: int | None = None,
    continuous: bool = True,
    paged_cache: bool = True,
    page_size: int | None = None,
    pool_pages: int | None = None,
    **sampler_kwargs,
):
    """:func:`jaxrlvr.sampling.generate` with the placement's mesh: the same arguments and outputs (the
    rows are bit-for-bit the single-device ones up to floating-point reduction order).

    Weights are converted to the sampler's layout on the mesh (:meth:`Placement.sampler_params`);
    prompts, the loop state and the KV cache are sharded over rows (and the cache over K/V heads); the
    decode loop runs on the devices with the cache donated; the outputs come back replicated.

    Paths (docs/sampler.md): with ``paged_cache`` (the default) the rows decode through the paged sampler
    (``sampling.paged``, as ``sampling.generate``), on one device or, on a mesh of any shape, through one
    page pool per ``data x fsdp`` shard (:func:`paged_fns`: with ``tensor`` > 1 a tensor group shares it,
    the weights split over ``tensor`` and the pool's K/V heads too where they divide; ``pool_pages`` per
    shard, default from each device's free memory at its share of a page, :func:`paged_pool_share`;
    ``slots`` over all shards). ``paged_cache=False``: ``slots`` contiguous continuous-batching slots
    (sharded over the batch axes, K/V heads over ``tensor``; default :func:`default_slots`).
    ``continuous=False``: the static loop."""
    from jaxrlvr.sampling import InferenceParams
    from jaxrlvr.sampling import sampler as sampler_mod

    if config != pl.model_cfg:
        pl = pl.for_model(config)
    call = dict(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        greedy=greedy,
        num_samples=num_samples,
        eos_ids=eos_ids,
        pad_id=pad_id,
        seed=seed,
        **sampler_kwargs,  # e.g. attn_block (default: the sampler's)
    )
    if (
        pl.mesh.size == 1
        and pl.mesh.devices.flat[0] == jax.devices()[0]
        and not isinstance(params, InferenceParams)
        and sampler_mod.cpu_kernels_usable(config)
    ):  # one CPU device: the single-device sampler with the CPU decode kernel (docs/sampler.md)
        from jaxrlvr.sampling import generate as generate_one

        extra = {} if page_size is None else {"page_size": page_size}
        return generate_one(
            config, params, prompts, slots=slots, continuous=continuous, paged_cache=paged_cache,
            pool_pages=pool_pages, **extra, **call,
        )  # fmt: skip
    sampler, ids, lengths, key, eos_arr = sampler_mod.setup_call(config, prompts, **call)
    rows = len(prompts) * sampler.num_samples
    ip = pl.sampler_params(params)
    if continuous and paged_cache:
        from jaxrlvr.sampling import paged

        page = paged.PAGE_SIZE if page_size is None else page_size
        kw = dict(num_slots=slots, pool_pages=pool_pages, page_size=page)
        if pl.mesh.size == 1:
            with pl.context():
                out, _ = paged.run(sampler, ip, ids, lengths, key, eos_arr, **kw)
        else:  # one pool per data x fsdp shard (docs/sampler.md, "On a mesh")
            key, eos_arr = put((key, eos_arr), pl.replicated)
            out, _ = paged.run(sampler, ip, ids, lengths, key, eos_arr, mesh_fns=paged_fns(pl, sampler), **kw)
        return sampler_mod.real_rows(out, rows)
    if continuous:
        from jaxrlvr.sampling import continuous as cb

        if slots is None:
            slots = default_slots(pl, config, rows, ids.shape[1], sampler.max_new_tokens)
        fns = _continuous_fns(pl, sampler)
        least = max(cb.MIN_SLOTS, batch_divisor(pl.mesh))  # compacted slot counts stay splittable
        with pl.context():
            out, _ = cb.run(sampler, ip, ids, lengths, key, eos_arr, num_slots=slots, min_slots=least, fns=fns)
        return sampler_mod.real_rows(out, rows)
    prefill, decode = _sampler_jits(pl, sampler, ids.shape[0], ids.shape[1], eos_arr.shape[0])
    rows_sh = NamedSharding(pl.mesh, P(_rows_spec(pl.mesh, ids.shape[0])))
    ids, lengths = put((ids, lengths), rows_sh)
    key, eos_arr = put((key, eos_arr), pl.replicated)
    with pl.context():
        cache, state = prefill(ip, ids, lengths, key, eos_arr)
        out, cache = decode(ip, cache, state)
    del cache
    return sampler_mod.real_rows(out, rows)
