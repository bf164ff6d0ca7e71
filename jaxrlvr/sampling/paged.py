"""Continuous batching over a paged KV cache: the sampler's default path (docs/sampler.md).

The KV cache is a *pool* of fixed-size pages per layer (keys and values ``[KV, num_pages, page, Hd]``).
Each decode slot has a row in a page table: its prompt's pages first (written once by the prefill and
shared read-only by the ``G`` samples of the prompt: no copy), then its own pages, taken one at a time as
the row grows and returned when it finishes. Rows are admitted while free pages allow (not by a fixed
per-slot reservation of ``prompt + cap`` positions), so the same memory holds several times the rows of
the contiguous layout (``continuous.py``) when responses are long-tailed; decode attention reads only each
row's live pages (``models.paged_attention``).

Jitted pure functions (the host loop :func:`run` drives them):

1. :func:`init` -> (pool, slot state, outputs, first tokens).
2. :func:`open_prompts`: prefills a few prompts and writes their K/V into their pages; samples the first
   token of each of their ``G`` rows from the prompt's last logits (kept per row, ``[B]``).
3. :func:`round_`: harvests finished slots' lengths, empties preempted slots, inserts admitted rows, then a
   ``lax.while_loop`` of decode steps (every slot at its own step; tokens written straight into the
   ``[B, N]`` outputs) until ``max_steps`` steps, ``exit_done`` slots done, or all done.
4. :func:`compact`: the live slots into fewer slots once nothing waits.

The host owns the page allocator (a free list, ``paged_pool.DevicePool``): before each round it gives
every live slot the pages its next ``max_steps`` (= one page) of tokens need, oldest row first, admits
waiting rows while the free pages cover their prompt (if not yet open) and first page plus one page per
live slot (the next round's growth), and, should the pool still run dry, *preempts* the live row with the
fewest tokens (never the oldest row, so the pool always progresses): its pages go back and it restarts from
its first token later. A row's tokens depend only on (seed, row, position) (``prng.py``), never on its
slot, its pages or a restart, so the rows equal the static loop's (tests).

On a mesh (``sharding.sampler.generate``, :class:`MeshFns`) each ``data x fsdp`` shard (a tensor group
when ``tensor`` > 1) has its own pool and slots and runs these same functions under ``shard_map`` on its
block of prompts; the host keeps one ``DevicePool`` per shard.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr.models.decoder import rope_tables
from jaxrlvr.models.paged_attention import decode_attention, pair_keep, ragged_pairs
from jaxrlvr.sampling import inference
from jaxrlvr.sampling.paged_pool import DevicePool
from jaxrlvr.sampling.paged_sizing import (  # noqa: F401  (re-exported: the sizing is part of this API)
    CPU_MIN_SLOTS,
    MIN_SLOTS,
    PAGE_SIZE,
    POOL_FRACTION,
    default_min_slots,
    default_num_slots,
    default_pool_pages,
    free_device_bytes,
    min_pool_pages,
    page_bytes,
    pages_for_every_row,
)
from jaxrlvr.sampling.sampler import JIT_SPECS, SampleOutput, Sampler, _platform

Array = jax.Array

_PAIR_STEPS_PER_OCTAVE = 4  # pair-list sizes: 4 per doubling (<= 25% padding, few compilations)


# ------------------------------------------------------------------------------------------ pure functions
def init(sampler: Sampler, num_slots: int, num_pages: int, page: int, rows: int):
    """(pool, slots, out, first): a zeroed pool of ``num_pages`` pages of ``page`` positions (per layer
    ``(k, v)``, each ``[KV, num_pages, page, Hd]``), ``num_slots`` empty slots (``row`` = ``rows`` when
    empty, ``step``, ``last``, ``done``, ``plen``), outputs ``tokens`` / ``logp``
    ``[B, N]`` and ``length`` ``[B]``, and each row's first token / log-prob ``[B]``."""
    cfg, s, n, pad = sampler.config, num_slots, sampler.max_new_tokens, sampler.pad_id
    shape = (cfg.num_kv_heads, num_pages, page, cfg.head_dim)
    pool = tuple((jnp.zeros(shape, cfg.jnp_dtype), jnp.zeros(shape, cfg.jnp_dtype)) for _ in range(cfg.num_layers))
    zeros = jnp.zeros((s,), jnp.int32)
    slots = {
        "row": jnp.full((s,), rows, jnp.int32),
        "step": zeros,
        "last": jnp.full((s,), pad, jnp.int32),
        "done": jnp.ones((s,), bool),
        "plen": zeros,
    }
    out = {
        "tokens": jnp.full((rows, n), pad, jnp.int32),
        "logp": jnp.zeros((rows, n), jnp.float32),
        "length": jnp.zeros((rows,), jnp.int32),
    }
    first = {"tok": jnp.full((rows,), pad, jnp.int32), "logp": jnp.zeros((rows,), jnp.float32)}
    return pool, slots, out, first


def open_prompts(sampler: Sampler, ip, pool, first, key, ids_QT, lengths_Q, pages_QM, prompt_Q, row0=0):
    """Prefills prompts ``prompt_Q`` (left-padded ``ids_QT``) into their pages ``pages_QM`` (entries
    ``>= num_pages`` are not written; a dummy entry has all of them so) and samples the first token of each
    of their ``G`` rows. ``row0`` (scalar or ``[1]``): the id of the pool's row 0 in the whole batch (a
    mesh shard's first row; the draws are those of the global row). Donate ``pool`` and ``first``."""
    q, t = ids_QT.shape
    m = pages_QM.shape[1]
    page = pool[0][0].shape[2]
    g, b = sampler.num_samples, first["tok"].shape[0]
    start_Q = t - jnp.maximum(lengths_Q, 1)
    logits_QV, cache = inference.prefill(sampler.config, ip, ids_QT, start_Q, num_samples=1, chunks=(t,))
    pos = jnp.arange(m * page, dtype=jnp.int32)
    col_QX = jnp.minimum(start_Q[:, None] + pos[None, :], t - 1)
    keep_QX = pos[None, :] < lengths_Q[:, None]
    new = []
    for (kp, vp), ((k_c,), (v_c,)) in zip(pool, cache, strict=True):
        k_QTKD = k_c.transpose(0, 3, 1, 2)  # cache k [Q, KV, Hd, T] -> [Q, T, KV, Hd]
        v_QTKD = v_c.transpose(0, 2, 1, 3)  # cache v [Q, KV, T, Hd]
        pick = (
            lambda x: (
                jnp.where(  # noqa: E731
                    keep_QX[..., None, None], jnp.take_along_axis(x, col_QX[..., None, None], axis=1), 0
                )
                .reshape(q, m, page, *x.shape[2:])
                .transpose(3, 0, 1, 2, 4)
            )
        )  # [KV, Q, M, page, Hd]
        kp = kp.at[:, pages_QM].set(pick(k_QTKD).astype(kp.dtype), mode="drop")
        vp = vp.at[:, pages_QM].set(pick(v_QTKD).astype(vp.dtype), mode="drop")
        new.append((kp, vp))
    rows = (prompt_Q[:, None] * g + jnp.arange(g, dtype=jnp.int32)[None, :]).reshape(-1)
    row0 = jnp.asarray(row0, jnp.int32).reshape(())
    tok, logp = sampler.sample(jnp.repeat(logits_QV, g, axis=0), key, jnp.minimum(rows, b - 1) + row0, 0)
    first = {"tok": first["tok"].at[rows].set(tok, mode="drop"), "logp": first["logp"].at[rows].set(logp, mode="drop")}
    return tuple(new), first


def decode_step(sampler: Sampler, ip, pool, st: dict, table_SM: Array, *, pairs: int):
    """One token for every live slot: writes the K/V of its last token into its current page, attends its
    live pages, returns float32 logits ``[S, V]`` and the pool."""
    cfg = sampler.config
    s = st["step"].shape[0]
    nh, kv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    num_pages, page = pool[0][0].shape[1:3]
    live = ~st["done"]
    at = st["plen"] + jnp.maximum(st["step"] - 1, 0)  # the position this step writes (its rotary position)
    cos, sin = rope_tables(at[:, None], hd, cfg.rope_theta, cfg.rope_scaling)
    count = jnp.where(live, at // page + 1, 0)
    slot_L, col_L, valid_L = ragged_pairs(count, pairs)
    page_L = table_SM[slot_L, col_L]
    keep_LP = pair_keep(col_L, valid_L, slot_L, at + 1, page)
    col_S = jnp.minimum(at // page, table_SM.shape[1] - 1)
    w_page = jnp.where(live, jnp.take_along_axis(table_SM, col_S[:, None], axis=1)[:, 0], num_pages)  # dead: drop
    w_off = at % page
    x = ip.embed[st["last"]][:, None, :].astype(cfg.jnp_dtype)
    ck = sampler.cpu_kernels
    new = []
    for lp, (kp, vp) in zip(ip.layers, pool, strict=True):
        h = inference._rms_norm(cfg, x, lp.ln1)
        q, k, v = inference._qkv(cfg, lp, h, cos, sin, ip.layout, ck)
        kp = kp.at[:, w_page, w_off].set(k[:, 0].swapaxes(0, 1).astype(kp.dtype), mode="drop")
        vp = vp.at[:, w_page, w_off].set(v[:, 0].swapaxes(0, 1).astype(vp.dtype), mode="drop")
        new.append((kp, vp))
        o = decode_attention(
            q.reshape(s, kv, nh // kv, hd), kp, vp, table_SM, jnp.where(live, at + 1, 0), (page_L, slot_L, keep_LP),
            kernel=sampler.decode_kernel,
        )  # fmt: skip
        x = x + inference._linear(
            o.reshape(s, 1, nh * hd),
            lp.wo,
            out_in=inference._out_in(nh * hd, cfg.hidden_size, ip.layout),
            cpu_kernel=ck,
        )
        x = inference._mlp_residual(cfg, lp, x, ip.layout, ck)
    h_last = inference._rms_norm(cfg, x[:, 0], ip.final_norm)
    return inference.logits(cfg, ip, h_last, ck), tuple(new)


def _step(sampler: Sampler, ip, key, eos_E, table_SM, row0, carry, *, pairs: int):
    pool, st, out, stats = carry
    n = sampler.max_new_tokens
    i, live = st["step"], ~st["done"]
    logits_SV, pool = decode_step(sampler, ip, pool, st, table_SM, pairs=pairs)
    tok, logp = sampler.sample(logits_SV, key, jnp.where(live, st["row"], 0) + row0, i)
    row = jnp.where(live, st["row"], out["length"].shape[0])  # dead: dropped
    out = dict(out)
    out["tokens"] = out["tokens"].at[row, i].set(tok, mode="drop")
    out["logp"] = out["logp"].at[row, i].set(logp, mode="drop")
    st = dict(st)
    st["done"] = st["done"] | (live & (Sampler._is_eos(tok, eos_E) | (i + 1 >= n)))
    st["step"] = i + live.astype(jnp.int32)
    st["last"] = jnp.where(live, tok, st["last"])
    li = live.astype(jnp.int32)
    needed = jnp.sum(li * (st["plen"] + i))  # keys attended: the prompt and the i generated ones
    stats = (stats[0] + 1, stats[1] + jnp.sum(li), stats[2] + needed.astype(jnp.float32))
    return pool, st, out, stats


def harvest(out: dict, slots: dict) -> dict:
    """Sets the length of every finished slot's row (the tokens are already in place)."""
    b = out["length"].shape[0]
    at = jnp.where(slots["done"], slots["row"], b)
    return {**out, "length": out["length"].at[at].set(slots["step"], mode="drop")}


def round_(
    sampler: Sampler, ip, pool, slots, out, first, key, eos_E, table_SM, reset_S, slot_R, row_R, plen_R, src_R,
    dst_R, exit_done, max_steps, row0=0, *, pairs: int, sync_axes: tuple = (),
):  # fmt: skip
    """Harvest, empty the ``reset_S`` slots (preempted rows), insert rows ``row_R`` into slots ``slot_R``
    (``>= S``: ignored; the partly filled last prompt page ``src_R`` copied into the row's first own page
    ``dst_R``, ``>= num_pages``: none), then decode until ``max_steps`` steps, ``exit_done`` slots done, or
    all done (``exit_done``, ``row0``: scalars or ``[1]``, as a mesh shard gets them; ``row0`` as in
    :func:`open_prompts`). ``sync_axes``: mesh axes (manual under ``shard_map``) whose shards step in
    lockstep (:func:`_lockstep`).
    Donate pool, slots and out. Returns (pool, slots, out, info); ``info`` = (done [S], step [S], steps,
    live slot-steps, key positions needed), the last three ``[1]``."""
    n, b = sampler.max_new_tokens, out["length"].shape[0]
    exit_done = jnp.asarray(exit_done, jnp.int32).reshape(())
    row0 = jnp.asarray(row0, jnp.int32).reshape(())
    out = harvest(out, slots)
    slots = {**slots, "done": slots["done"] | reset_S, "row": jnp.where(reset_S, b, slots["row"])}
    tok_R = jnp.take(first["tok"], row_R, mode="clip")
    r = row_R.shape[0]
    values = {
        "row": row_R,
        "step": jnp.ones((r,), jnp.int32),
        "last": tok_R,
        "done": Sampler._is_eos(tok_R, eos_E) | (n <= 1),
        "plen": plen_R,
    }
    slots = {name: slots[name].at[slot_R].set(values[name], mode="drop") for name in slots}
    src = jnp.minimum(src_R, pool[0][0].shape[1] - 1)
    pool = tuple(
        (kp.at[:, dst_R].set(kp[:, src], mode="drop"), vp.at[:, dst_R].set(vp[:, src], mode="drop")) for kp, vp in pool
    )
    row_in = jnp.where(slot_R < slots["row"].shape[0], row_R, b)
    out = {
        **out,
        "tokens": out["tokens"].at[row_in, 0].set(tok_R, mode="drop"),
        "logp": out["logp"].at[row_in, 0].set(jnp.take(first["logp"], row_R, mode="clip"), mode="drop"),
    }

    def cond(c):
        st, stats = c[1], c[3]
        return jnp.any(~st["done"]) & (jnp.sum(st["done"]) < exit_done) & (stats[0] < max_steps)

    body = lambda c: _step(sampler, ip, key, eos_E, table_SM, row0, c, pairs=pairs)  # noqa: E731
    if sync_axes:
        cond, body = _lockstep(cond, body, sync_axes)
    zero = (jnp.int32(0), jnp.int32(0), jnp.float32(0))
    pool, slots, out, stats = jax.lax.while_loop(cond, body, (pool, slots, out, zero))
    return pool, slots, out, (slots["done"], slots["step"], *(x.reshape(1) for x in stats))


def _lockstep(cond, body, axes):
    """A round's (cond, body) for shards that must run the same number of steps: on a mesh with a
    ``tensor`` axis the step holds the tensor-parallel collectives, which on some backends (XLA:CPU's
    collective-permute) every device must join. The loop runs while any shard over ``axes`` goes on; a
    shard whose own ``cond`` is false takes a parked step (all its slots counted done for the step: no
    page written, no token kept, nothing counted), so its results are those of its own loop."""

    def synced_cond(c):
        return jax.lax.pmax(cond(c).astype(jnp.int32), axes) > 0

    def synced_body(c):
        go = cond(c)
        pool, st, out, stats = c
        pool, new, out, counted = body((pool, {**st, "done": st["done"] | ~go}, out, stats))
        new = {**new, "done": jnp.where(go, new["done"], st["done"])}
        return pool, new, out, (jnp.where(go, counted[0], stats[0]), *counted[1:])

    return synced_cond, synced_body


def compact(sampler: Sampler, slots: dict, out: dict, keep_K: Array):
    """(slots, out) with the outputs harvested and only slots ``keep_K`` kept (in that order)."""
    del sampler
    out = harvest(out, slots)
    return jax.tree.map(lambda x: jnp.take(x, keep_K, axis=0), slots), out


def finish(sampler: Sampler, slots: dict, out: dict, eos_E: Array) -> SampleOutput:
    out = harvest(out, slots)
    return sampler.output(out["tokens"], out["logp"], out["length"], eos_E)


JIT_SPECS.update(
    {
        "pg_init": (init, {"static_argnums": (0, 1, 2, 3, 4)}),
        "pg_open": (open_prompts, {"donate_argnums": (2, 3)}),
        "pg_round": (round_, {"static_argnames": ("pairs", "sync_axes"), "donate_argnums": (2, 3, 4)}),
        "pg_compact": (compact, {}),
        "pg_finish": (finish, {}),
    }
)


# --------------------------------------------------------------------------------------------- host loop
@dataclasses.dataclass
class PagedStats:
    """What :func:`run` did. ``slots``: over all shards; ``pool_pages`` / ``peak_pages``: per shard (most
    pages in use at a round start); ``live_slot_steps``: sum over decode steps of the live rows;
    ``kv_read``: positions the decode attention read (pairs x page x steps); ``kv_needed``: positions the
    live rows attend (prompt + generated so far); ``decode_steps``: the round's longest shard's steps."""

    devices: int = 1
    slots: int = 0
    pool_pages: int = 0
    page: int = 0
    slot_steps: int = 0
    live_slot_steps: int = 0
    decode_steps: int = 0
    rounds: int = 0
    compactions: int = 0
    preemptions: int = 0
    prefills: int = 0
    kv_read: float = 0.0
    kv_needed: float = 0.0
    peak_pages: int = 0
    waiting_live_slot_steps: int = 0  # live slot-steps of the rounds that started with rows waiting
    waiting_decode_steps: int = 0  # (the memory-bound phase: how many rows decode at once in the memory)


def pair_bucket(n: int) -> int:
    """The pair-list size for ``n`` pairs: ``n`` rounded up on a ladder of 4 sizes per doubling (>= 8)."""
    n = max(int(n), 8)
    step = max(1, 1 << max(0, n.bit_length() - 1 - int(math.log2(_PAIR_STEPS_PER_OCTAVE))))
    return -(-n // step) * step


@dataclasses.dataclass(frozen=True)
class MeshFns:
    """How :func:`run` drives ``devices`` data-parallel shards of a mesh (``data x fsdp``; a shard is a
    tensor group when ``tensor`` > 1), each with its own page pool and slots (``sharding.sampler.paged_fns``).
    ``call(name, *args, **static)`` runs ``JIT_SPECS[name]`` per shard (under ``shard_map``: each shard's
    slice of every per-slot / per-row / per-prompt argument, local indices; the arrays the host reads back
    replicated); ``pool_share(page)``: the pages of the memory share of the shard with the least free memory
    (at a device's share of a page)."""

    devices: int
    call: Callable
    pool_share: Callable[[int], int]


def run(
    sampler: Sampler,
    ip,
    ids_PT,
    lengths_P,
    key,
    eos_E,
    *,
    pool_pages: int | None = None,
    page_size: int = PAGE_SIZE,
    num_slots: int | None = None,
    refill_every: int | None = None,
    min_slots: int | None = None,
    order: Sequence[int] | None = None,
    mesh_fns: MeshFns | None = None,
) -> tuple[SampleOutput, PagedStats]:
    """Paged continuous batching over the bucketed prompts ``ids_PT`` / ``lengths_P`` (host arrays, as
    are ``key`` and ``eos_E``); rows ``p * G + g`` of the real prompts (length > 0).

    Args:
      pool_pages: pages in the pool (each shard's, on a mesh; default :func:`default_pool_pages`, capped
        at what every row at the cap needs); at least :func:`min_pool_pages`.
      page_size: positions per page (default ``PAGE_SIZE``).
      num_slots: rows decoded at once at most, over all shards (default :func:`default_num_slots` per shard).
      refill_every: a round ends once this many slots are done while rows wait (default ``max(1, S // 8)``,
        ``S`` a shard's slots); a round also ends after ``page_size`` steps (the pages handed out cover that many).
      min_slots: when nothing waits, live slots move into half as many slots while that is >= this
        (default :func:`default_min_slots`: ``MIN_SLOTS`` on an accelerator, ``CPU_MIN_SLOTS`` on a CPU).
      order: the order rows are admitted in (a permutation of the real rows); results do not depend on it.
      mesh_fns: ``None``: one device. A mesh's :class:`MeshFns`: the prompts are split into ``D`` equal
        blocks (padded), block ``d`` decoded by shard ``d`` through its own pool (its rows, pages and slots;
        a prompt's rows share its pages on its shard); rounds run on all shards at once, each shard's
        decode loop stopping on its own. The rows do not depend on ``D``.
    """
    d = 1 if mesh_fns is None else int(mesh_fns.devices)
    p0, t = ids_PT.shape
    g, n = sampler.num_samples, sampler.max_new_tokens
    p_l = -(-p0 // d)  # prompts per shard
    b_l, p = p_l * g, p_l * d
    lengths = np.zeros(p, np.int64)
    lengths[:p0] = np.asarray(lengths_P)
    ids_np = np.zeros((p, t), np.asarray(ids_PT).dtype)
    ids_np[:p0] = np.asarray(ids_PT)
    real = [r for r in range(p0 * g) if lengths[r // g] > 0]
    if order is None:
        order = real
    elif sorted(order) != real:
        raise ValueError(f"order must be a permutation of the {len(real)} real rows")
    if min_slots is None:
        min_slots = default_min_slots(_platform(ip))
    page = int(page_size)
    if page < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    least = min_pool_pages(t, n, page)
    shard_rows = [[r - i * b_l for r in order if r // b_l == i] for i in range(d)]  # each shard's, local
    if pool_pages is None:  # the memory share, but never more than every row of a shard at the cap needs
        every = max(
            pages_for_every_row(lengths[i * p_l : (i + 1) * p_l], len(rows), n, page)
            for i, rows in enumerate(shard_rows)
        )
        share = default_pool_pages(sampler.config, page) if mesh_fns is None else mesh_fns.pool_share(page)
        pool_pages = max(least, min(share, every))
    pool_pages = int(pool_pages)
    if pool_pages < least:
        raise ValueError(
            f"a page pool of {pool_pages} pages of {page} positions cannot hold one row of a {t}-token prompt "
            f"bucket and {n} new tokens; give it at least {least} pages (more memory or a smaller max_new_tokens)"
        )
    most = max(1, max(len(rows) for rows in shard_rows))
    if num_slots is None:
        num_slots = d * default_num_slots(most, pool_pages, page, t, n, g)
    s = max(1, min(-(-int(num_slots) // d), most))  # slots per shard
    f = refill_every or max(1, s // 8)
    if mesh_fns is None:
        run_jit = lambda name, *a, **kw: sampler.run_jitted(name, ip, *a, **kw)  # noqa: E731
    else:
        run_jit = mesh_fns.call
    stats = PagedStats(slots=s * d, pool_pages=pool_pages, page=page, devices=d)

    m_prompt = -(-t // page)
    m_cols = m_prompt + max(1, -(-(n - 1) // page))
    pool, slots, out, first = run_jit("pg_init", s, pool_pages, page, b_l)
    shards = [
        DevicePool(lengths[i * p_l : (i + 1) * p_l], g, n, page, pool_pages, s, rows, m_cols)
        for i, rows in enumerate(shard_rows)
    ]
    row0 = (np.arange(d) * b_l).astype(np.int32)
    cat = lambda xs: np.concatenate(xs, axis=0)  # noqa: E731  (the shards' blocks, in mesh order)
    while True:
        reset = cat([sh.grow() for sh in shards])  # 1. pages for the live slots (preempting the youngest)
        for sh in shards:  # 2. admission by free pages
            sh.admit()
        opened = [sh.admitted[2] for sh in shards]
        if any(opened):
            q = 1 << (max(len(o) for o in opened) - 1).bit_length()
            pages_QM = np.full((d, q, m_prompt), pool_pages, np.int32)
            prompt_Q = np.full((d, q), p_l, np.int32)
            for i, (sh, o) in enumerate(zip(shards, opened, strict=True)):
                for j, pr in enumerate(o):
                    pages_QM[i, j, : len(sh.prompt_pages[pr])] = sh.prompt_pages[pr]
                    prompt_Q[i, j] = pr
            idx = (np.minimum(prompt_Q, p_l - 1) + np.arange(d)[:, None] * p_l).reshape(-1)
            pool, first = run_jit(
                "pg_open", ip, pool, first, key, ids_np[idx], lengths[idx].astype(np.int32),
                pages_QM.reshape(d * q, m_prompt), prompt_Q.reshape(-1), row0,
            )  # fmt: skip
            stats.prefills += 1
        stats.peak_pages = max(sh.peak_pages for sh in shards)
        # 3. one round on every shard
        pairs = max(pair_bucket(sh.pages_read()) for sh in shards)
        waiting = [bool(sh.queue) for sh in shards]
        args = [sh.round_args(b_l, f, min_slots) for sh in shards]
        slot_R, row_R, plen_R, src_R, dst_R = (cat([a[i] for a in args]) for i in range(5))
        exit_done = np.asarray([a[5] for a in args], np.int32)
        table = cat([sh.table for sh in shards])
        pool, slots, out, info = run_jit(
            "pg_round", ip, pool, slots, out, first, key, eos_E, table, reset, slot_R, row_R, plen_R, src_R,
            dst_R, exit_done, np.int32(page), row0, pairs=pairs,
        )  # fmt: skip
        done, step_d, count, live_steps, needed = (np.asarray(x) for x in jax.device_get(info))
        stats.rounds += 1
        stats.decode_steps += int(count.max())
        stats.slot_steps += int(count.sum()) * s
        stats.live_slot_steps += int(live_steps.sum())
        stats.waiting_live_slot_steps += int(live_steps[np.asarray(waiting)].sum())
        stats.waiting_decode_steps += int(count[np.asarray(waiting)].max(initial=0))
        stats.kv_read += float(count.sum()) * pairs * page
        stats.kv_needed += float(needed.sum())
        for i, sh in enumerate(shards):
            sh.finish_round(done[i * s : (i + 1) * s], step_d[i * s : (i + 1) * s])
        stats.preemptions = sum(sh.preemptions for sh in shards)
        if not any(sh.busy() for sh in shards):
            break
        most_live = max(int(sh.live.sum()) for sh in shards)
        if not any(sh.queue for sh in shards) and s // 2 >= min_slots and most_live <= s // 2:
            s2 = s
            while s2 // 2 >= max(min_slots, most_live, 1):
                s2 //= 2
            keep = cat([sh.keep(s2) for sh in shards]).astype(np.int32)
            slots, out = run_jit("pg_compact", slots, out, keep)
            s = s2
            stats.compactions += 1
    out = run_jit("pg_finish", slots, out, eos_E)
    if p != p0:  # the shards' padding prompts
        out = jax.tree.map(lambda x: x[: p0 * g], out)
    return out, stats
