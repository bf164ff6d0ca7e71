"""Continuous batching for the jitted sampler: a fixed number of decode *slots*, refilled as rows finish.

The static loop (``Sampler.decode``) decodes all ``B`` rows until the longest one ends; with long-tailed
response lengths most of its row-steps are spent on finished rows. Here ``S <= B`` slots decode, and the
host refills the slots of finished rows with waiting ones between jitted *rounds* (docs/sampler.md):

1. :func:`prefill_prompts`: each distinct prompt once -> a *store* (its K/V over the prompt bucket, its
   last logits, start and length), leaves ``[P, ...]``; the ``G`` rows of a prompt all copy from it.
2. :func:`init_slots`: an empty slot state (cache leaves ``[S, ...]`` as ``inference.init_cache``, loop
   state leaves ``[S, ...]``) and the output buffers (leaves ``[B, ...]``).
3. :func:`refill_and_decode` (one jit, slot state donated): writes finished slots' rows to the outputs
   (*harvest*), inserts waiting rows into the freed slots (prompt K/V copied from the store, first token
   sampled from the store's logits), then a ``lax.while_loop`` of decode steps, every slot at its own step,
   until ``exit_done`` slots are done, a slot's next token would leave the attended cache chunks, or every
   slot is done.
4. :func:`compact`: once nothing waits, the live slots move into a state of half as many slots (or fewer),
   so finished rows are not computed again.
5. :func:`finish`: harvest -> :class:`SampleOutput`.

:func:`run` is the host loop over these; ``fns`` picks how they are jitted (the single-device jits by
default; a mesh placement passes its own, with shardings). Randomness is the static loop's: the token at
index ``i`` of row ``r`` uses the uniforms of (seed, r, i), whatever its slot or round, so results do not
depend on the slot count or the order rows are scheduled in (tests).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import deque
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr.models.config import ModelConfig
from jaxrlvr.sampling import inference
from jaxrlvr.sampling.sampler import JIT_SPECS, SampleOutput, Sampler

Array = jax.Array

# Smallest slot count compaction goes down to by default (our choice: on an accelerator a decode step of
# <= 32 rows costs about the same (weight-bound), and each slot count compiles its own rounds; a CPU with a
# small model gains from going lower, as scripts/bench_scale.py does with min_slots=1).
MIN_SLOTS = 32
# Default share of device memory for the slots' KV cache (our choice: leaves room for the weights, the
# prompt store and the training state that shares the device).
MEMORY_FRACTION = 0.4


# ------------------------------------------------------------------------------------------ pure functions
def prefill_prompts(sampler: Sampler, ip, ids_PT: Array, lengths_P: Array) -> dict:
    """Runs each left-padded prompt once -> the store: ``k``/``v`` (per layer ``[P, KV, Hd, T]`` /
    ``[P, KV, T, Hd]``), ``logits`` [P, V] float32 at the last column, ``start`` [P], ``plen`` [P]."""
    t = ids_PT.shape[1]
    start_P = t - jnp.maximum(lengths_P, 1)
    logits_PV, cache = inference.prefill(sampler.config, ip, ids_PT, start_P, num_samples=1, chunks=(t,))
    return {
        "k": tuple(layer[0][0] for layer in cache),
        "v": tuple(layer[1][0] for layer in cache),
        "logits": logits_PV,
        "start": start_P,
        "plen": lengths_P,
    }


def init_slots(sampler: Sampler, num_slots: int, prompt_len: int, rows: int) -> tuple:
    """(cache, slot state, outputs) for ``num_slots`` empty slots, prompt bucket ``prompt_len`` and ``rows``
    output rows (all static). Slot state leaves are ``[S]`` / ``[S, N]``: ``row`` (``rows`` when empty),
    ``step`` (tokens the row has), ``last`` token, ``done`` (finished or empty), ``start``, ``plen``,
    ``tokens``, ``logp``. Outputs: ``tokens`` / ``logp`` [B, N], ``length`` [B]."""
    s, n, pad = num_slots, sampler.max_new_tokens, sampler.pad_id
    cache = inference.init_cache(sampler.config, s, sampler.chunks(prompt_len))
    zeros = jnp.zeros((s,), jnp.int32)
    slots = {
        "row": jnp.full((s,), rows, jnp.int32),
        "step": zeros,
        "last": jnp.full((s,), pad, jnp.int32),
        "done": jnp.ones((s,), bool),
        "start": zeros,
        "plen": zeros,
        "tokens": jnp.full((s, n), pad, jnp.int32),
        "logp": jnp.zeros((s, n), jnp.float32),
    }
    out = {
        "tokens": jnp.full((rows, n), pad, jnp.int32),
        "logp": jnp.zeros((rows, n), jnp.float32),
        "length": jnp.zeros((rows,), jnp.int32),
    }
    return cache, slots, out


def harvest(out: dict, slots: dict) -> dict:
    """Copies every finished slot's row into the outputs (an empty slot's row is out of range: dropped;
    copying a row twice writes the same values)."""
    b = out["length"].shape[0]
    at = jnp.where(slots["done"], slots["row"], b)
    return {
        "tokens": out["tokens"].at[at].set(slots["tokens"], mode="drop"),
        "logp": out["logp"].at[at].set(slots["logp"], mode="drop"),
        "length": out["length"].at[at].set(slots["step"], mode="drop"),
    }


def insert(sampler: Sampler, cache, slots: dict, store: dict, key: Array, eos_E: Array, slot_R: Array, row_R: Array):
    """Puts rows ``row_R`` into slots ``slot_R`` (entries with ``slot_R >= S`` are ignored): the prompt's
    K/V from the store into the slot's first ``T`` cache positions (later positions are written by the
    row's own steps before it attends them), and the row's first token sampled from the store's logits."""
    n, g = sampler.max_new_tokens, sampler.num_samples
    t = store["k"][0].shape[-1]
    p_R = row_R // g
    take = lambda x: jnp.take(x, p_R, axis=0, mode="clip")  # noqa: E731  (ignored entries: any prompt)
    tok_R, logp_R = sampler.sample(take(store["logits"]), key, row_R, 0)
    new = []
    for (k_cs, v_cs), k_st, v_st in zip(cache, store["k"], store["v"], strict=True):
        k0 = k_cs[0].at[slot_R, :, :, :t].set(take(k_st).astype(k_cs[0].dtype), mode="drop")
        v0 = v_cs[0].at[slot_R, :, :t, :].set(take(v_st).astype(v_cs[0].dtype), mode="drop")
        new.append(((k0, *k_cs[1:]), (v0, *v_cs[1:])))
    r = row_R.shape[0]
    values = {
        "row": row_R,
        "step": jnp.ones((r,), jnp.int32),
        "last": tok_R,
        "done": Sampler._is_eos(tok_R, eos_E) | (n <= 1),
        "start": take(store["start"]),
        "plen": take(store["plen"]),
        "tokens": jnp.full((r, n), sampler.pad_id, jnp.int32).at[:, 0].set(tok_R),
        "logp": jnp.zeros((r, n), jnp.float32).at[:, 0].set(logp_R),
    }
    slots = {name: slots[name].at[slot_R].set(values[name], mode="drop") for name in slots}
    return tuple(new), slots


def _slot_step(sampler: Sampler, ip, key, eos_E, carry, *, prompt_len: int, chunk: int):
    """One decode step of every slot at its own step (finished slots compute but change nothing)."""
    cache, st, (count, live_steps, needed) = carry
    n = sampler.max_new_tokens
    i, live = st["step"], ~st["done"]
    total = sum(kc.shape[-1] for kc in cache[0][0])
    logits_SV, cache = inference.decode_step(
        sampler.config,
        ip,
        cache,
        st["last"],
        jnp.where(live, prompt_len + i - 1, total),  # a finished slot writes nothing
        st["plen"] + i - 1,
        st["start"],
        chunk=chunk,
        cpu_kernel=sampler.cpu_kernels,
    )
    tok, logp = sampler.sample(logits_SV, key, st["row"], i)
    tok = jnp.where(live, tok, sampler.pad_id)
    col = jnp.where(live, i, n)  # out of range: dropped
    slot_ids = jnp.arange(i.shape[0], dtype=jnp.int32)
    st = dict(st)
    st["tokens"] = st["tokens"].at[slot_ids, col].set(tok, mode="drop")
    st["logp"] = st["logp"].at[slot_ids, col].set(jnp.where(live, logp, 0.0), mode="drop")
    st["done"] = st["done"] | (live & (Sampler._is_eos(tok, eos_E) | (i + 1 >= n)))
    st["step"] = i + live.astype(jnp.int32)
    st["last"] = jnp.where(live, tok, st["last"])
    li = live.astype(jnp.int32)
    needed = needed + jnp.sum(li * (st["plen"] + i)).astype(jnp.float32)  # keys the live rows attend
    return cache, st, (count + 1, live_steps + jnp.sum(li), needed)


def decode_segment(sampler: Sampler, ip, cache, slots: dict, key, eos_E, exit_done: Array, *, chunk: int):
    """``lax.while_loop`` of slot steps attending cache chunks ``0 .. chunk`` (static) until ``exit_done``
    slots are done, every slot is done, or a live slot's next position leaves chunk ``chunk``.

    Returns (cache, slots, (steps run, live slot-steps, key positions the live rows attend))."""
    chunks = tuple(kc.shape[-1] for kc in cache[0][0])
    prompt_len = sum(chunks) - max(sampler.max_new_tokens - 1, 0)
    end = sum(chunks[: chunk + 1])

    def cond(c):
        st = c[1]
        live = ~st["done"]
        nxt = jnp.max(jnp.where(live, prompt_len + st["step"] - 1, -1))
        return jnp.any(live) & (jnp.sum(st["done"]) < exit_done) & (nxt < end)

    body = lambda c: _slot_step(sampler, ip, key, eos_E, c, prompt_len=prompt_len, chunk=chunk)  # noqa: E731
    return jax.lax.while_loop(cond, body, (cache, slots, (jnp.int32(0), jnp.int32(0), jnp.float32(0))))


def refill_and_decode(
    sampler: Sampler, ip, cache, slots, out, store, key, eos_E, slot_R, row_R, exit_done, *, chunk: int
):
    """One round: :func:`harvest`, :func:`insert`, :func:`decode_segment`. Donate cache, slots and out.

    Returns (cache, slots, out, info) with ``info = (done [S], step [S], steps run, live slot-steps, key
    positions needed)``, what the host reads to plan the next round (and the statistics)."""
    out = harvest(out, slots)
    cache, slots = insert(sampler, cache, slots, store, key, eos_E, slot_R, row_R)
    cache, slots, counts = decode_segment(sampler, ip, cache, slots, key, eos_E, exit_done, chunk=chunk)
    return cache, slots, out, (slots["done"], slots["step"], *counts)


def compact(sampler: Sampler, cache, slots: dict, out: dict, keep_K: Array):
    """(cache, slots, out) with the outputs harvested and only slots ``keep_K`` kept (in that order)."""
    del sampler
    out = harvest(out, slots)
    pick = lambda x: jnp.take(x, keep_K, axis=0)  # noqa: E731
    return jax.tree.map(pick, cache), jax.tree.map(pick, slots), out


def finish(sampler: Sampler, slots: dict, out: dict, eos_E: Array) -> SampleOutput:
    """The :class:`SampleOutput` of every row (all slots done)."""
    out = harvest(out, slots)
    return sampler.output(out["tokens"], out["logp"], out["length"], eos_E)


JIT_SPECS.update(
    {
        "cb_prefill": (prefill_prompts, {}),
        "cb_init": (init_slots, {"static_argnums": (0, 1, 2, 3)}),
        "cb_round": (refill_and_decode, {"static_argnames": ("chunk",), "donate_argnums": (2, 3, 4)}),
        "cb_compact": (compact, {}),
        "cb_finish": (finish, {}),
    }
)


# --------------------------------------------------------------------------------------------- host loop
@dataclasses.dataclass(frozen=True)
class SlotFns:
    """How :func:`run` calls the pure functions; each takes the arguments of the function named after it
    (without the sampler, which is bound) and returns its result. A mesh placement builds one from jits
    with shardings (slot leaves over the data axes); :func:`single_device_fns` is the default."""

    prefill: Callable  # (ip, ids_PT, lengths_P) -> store
    init: Callable  # (num_slots, prompt_len, rows) -> (cache, slots, out)
    round: Callable  # (ip, cache, slots, out, store, key, eos, slot_R, row_R, exit_done, *, chunk) -> ...
    compact: Callable  # (cache, slots, out, keep_K) -> (cache, slots, out)
    finish: Callable  # (slots, out, eos) -> SampleOutput
    host: Callable = lambda x: x  # places host arrays read by every slot (key, eos, each round's small arrays)
    prompts: Callable = lambda x: x  # places the host prompt arrays (ids_PT, lengths_P)


def single_device_fns(sampler: Sampler, ip) -> SlotFns:
    """The single-device jits (``Sampler.run_jitted``: the sampler's XLA options, compiled once per shape)."""
    call = lambda name: lambda *a, **kw: sampler.run_jitted(name, ip, *a, **kw)  # noqa: E731
    return SlotFns(
        prefill=call("cb_prefill"),
        init=lambda s, t, b: sampler.run_jitted("cb_init", ip, s, t, b),
        round=call("cb_round"),
        compact=call("cb_compact"),
        finish=call("cb_finish"),
    )


def sharded_fns(sampler: Sampler, shardings: Callable, put: Callable, compiler_options: dict | None = None):
    """:class:`SlotFns` jitted with explicit output shardings, for a mesh placement.

    ``shardings(tree, kind)`` maps an abstract tree to its shardings, ``kind`` one of ``"prompts"``
    (``ids_PT``, ``lengths_P``), ``"store"`` (leaves ``[P, ...]``; ``k``/``v`` are ``[P, KV, ...]``),
    ``"cache"`` (``inference`` cache leaves ``[S, KV, ...]``), ``"slots"`` (leaves ``[S, ...]``),
    ``"out"`` (leaves ``[B, ...]``) and ``"replicated"`` (the key, EOS ids and each round's host arrays,
    and what the host reads back: :class:`SampleOutput`, a round's ``info``); slot leaves are typically
    split over the data axes when ``S`` divides. ``put(tree, shardings)`` places host values (multi-process
    safe). ``ip`` must already be placed. Compiled once per shape (and ``chunk``).
    """
    opts = compiler_options
    cache = {}

    def jit(fn, args, out_kinds, static=None, donate=()):
        abstract = jax.eval_shape(functools.partial(fn, sampler, **(static or {})), *args)
        abstract = abstract if len(out_kinds) > 1 else (abstract,)
        outs = tuple(shardings(a, k) for a, k in zip(abstract, out_kinds, strict=True))
        return jax.jit(
            functools.partial(fn, sampler, **(static or {})),
            out_shardings=outs if len(outs) > 1 else outs[0],
            donate_argnums=donate,
            compiler_options=opts,
        )

    def memo(key, make):
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def shapes(*args):
        return tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(args))

    def prefill(ip, ids, lengths):
        f = memo(("prefill", shapes(ids)), lambda: jit(prefill_prompts, (ip, ids, lengths), ("store",)))
        return f(ip, ids, lengths)

    def init(s, t, b):
        fn = lambda smp: init_slots(smp, s, t, b)  # noqa: E731
        f = memo(("init", s, t, b), lambda: jit(fn, (), ("cache", "slots", "out")))
        return f()

    def round_(ip, cache_, slots, out, store, key, eos, slot_r, row_r, exit_done, *, chunk):
        args = (ip, cache_, slots, out, store, key, eos, slot_r, row_r, exit_done)
        kinds = ("cache", "slots", "out", "replicated")
        f = memo(
            ("round", chunk, shapes(cache_, out)),
            lambda: jit(refill_and_decode, args, kinds, {"chunk": chunk}, donate=(1, 2, 3)),
        )
        return f(*args)

    def compact_(cache_, slots, out, keep):
        kinds = ("cache", "slots", "out")
        f = memo(("compact", shapes(cache_, out, keep)), lambda: jit(compact, (cache_, slots, out, keep), kinds))
        return f(cache_, slots, out, keep)

    def finish_(slots, out, eos):
        f = memo(("finish", shapes(slots, out)), lambda: jit(finish, (slots, out, eos), ("replicated",)))
        return f(slots, out, eos)

    return SlotFns(
        prefill=prefill,
        init=init,
        round=round_,
        compact=compact_,
        finish=finish_,
        host=lambda t: put(t, shardings(t, "replicated")),
        prompts=lambda t: put(t, shardings(t, "prompts")),
    )


@dataclasses.dataclass
class RunStats:
    """What :func:`run` did: ``slot_steps`` = sum over decode steps of the slots computed (the first token
    of a row comes from the prefill and is not a decode step), ``live_slot_steps`` (of those, the live
    ones), ``decode_steps``, ``rounds``, ``compactions``, ``slots`` (initial slot count), ``kv_read``
    (cache positions the decode attention read: slots x attended chunks, per step) and ``kv_needed``
    (positions the live rows attend: prompt + generated so far)."""

    slots: int = 0
    slot_steps: int = 0
    live_slot_steps: int = 0
    kv_read: float = 0.0
    kv_needed: float = 0.0
    waiting_live_slot_steps: int = 0  # live slot-steps of the rounds that started with rows waiting
    waiting_decode_steps: int = 0  # (the memory-bound phase: how many rows decode at once in the memory)
    decode_steps: int = 0
    rounds: int = 0
    compactions: int = 0


def kv_bytes_per_slot(config: ModelConfig, prompt_len: int, max_new_tokens: int) -> int:
    """Bytes of one slot's KV cache (all layers, keys and values, compute dtype)."""
    item = jnp.dtype(config.jnp_dtype).itemsize
    return 2 * config.num_layers * config.num_kv_heads * config.head_dim * (prompt_len + max_new_tokens) * item


def default_num_slots(config: ModelConfig, rows: int, prompt_len: int, max_new_tokens: int, device=None) -> int:
    """The rows whose KV cache fits in ``MEMORY_FRACTION`` of the device's memory (``memory_stats``'
    ``bytes_limit``; on a CPU, of the machine's physical memory), at most ``rows``, at least 1."""
    device = device or jax.devices()[0]
    limit = 0
    try:
        limit = int((device.memory_stats() or {}).get("bytes_limit", 0))
    except Exception:  # a backend without memory statistics
        limit = 0
    if not limit:
        try:
            limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            limit = 8 << 30
    fit = int(MEMORY_FRACTION * limit) // kv_bytes_per_slot(config, prompt_len, max_new_tokens)
    return max(1, min(rows, fit))


def _chunk_of(pos: int, chunks: tuple[int, ...]) -> int:
    lo = 0
    for c, n in enumerate(chunks):
        lo += n
        if pos < lo:
            return c
    return len(chunks) - 1


def run(
    sampler: Sampler,
    ip,
    ids_PT,
    lengths_P,
    key,
    eos_E,
    *,
    num_slots: int,
    refill_every: int | None = None,
    min_slots: int = MIN_SLOTS,
    order: Sequence[int] | None = None,
    fns: SlotFns | None = None,
) -> tuple[SampleOutput, RunStats]:
    """Continuous batching over the bucketed prompts ``ids_PT`` / ``lengths_P`` (``pad_prompts``; host
    arrays, as are ``key`` and ``eos_E``: ``fns`` places them): rows ``p * G + g`` of the real prompts
    (length > 0) decode in ``num_slots`` slots.

    Args:
      num_slots: S; capped at the number of real rows.
      refill_every: a round ends once this many slots are done while rows wait (default ``max(1, S // 8)``,
        our choice: a slot idles about half of that many rows' worth of finishing time, ~6% at S // 8,
        against one host round trip per refill).
      min_slots: when nothing waits, the live slots move into half as many slots while that is >= this
        (default ``MIN_SLOTS`` = 32).
      order: the order rows are scheduled in (a permutation of the real rows); results do not depend on it.
      fns: the jitted functions (default :func:`single_device_fns`).

    Returns:
      (:class:`SampleOutput` over all ``P * G`` rows, :class:`RunStats`).
    """
    p, t = ids_PT.shape
    g = sampler.num_samples
    b = p * g
    lengths = np.asarray(lengths_P)
    real = [r for r in range(b) if lengths[r // g] > 0]
    if order is None:
        order = real
    elif sorted(order) != real:
        raise ValueError(f"order must be a permutation of the {len(real)} real rows")
    fns = fns or single_device_fns(sampler, ip)
    s = max(1, min(int(num_slots), len(real)))
    f = refill_every or max(1, s // 8)
    chunks = sampler.chunks(t)
    stats = RunStats(slots=s)

    key, eos_E = fns.host((key, eos_E))
    store = fns.prefill(ip, *fns.prompts((ids_PT, lengths_P)))
    cache, slots, out = fns.init(s, t, b)
    queue = deque(order)
    step = np.zeros(s, np.int64)  # host mirror of each slot's step (its next write is at t + step - 1)
    live = np.zeros(s, bool)
    while True:
        free = np.flatnonzero(~live)
        k = min(len(free), len(queue))
        slot_R = np.full((s,), s, np.int32)
        row_R = np.full((s,), b, np.int32)
        slot_R[:k] = free[:k]
        row_R[:k] = [queue.popleft() for _ in range(k)]
        live[free[:k]] = True
        step[free[:k]] = 1
        waiting = bool(queue)
        if queue:
            exit_done = min(f, len(queue))
        elif s // 2 >= min_slots:
            exit_done = s - s // 2  # drain: stop when half the slots are done, then compact
        else:
            exit_done = s
        pos = int((t + step[live] - 1).max()) if live.any() else t
        slot_R, row_R, exit_done = fns.host((slot_R, row_R, np.int32(exit_done)))
        cache, slots, out, info = fns.round(
            ip, cache, slots, out, store, key, eos_E, slot_R, row_R, exit_done, chunk=_chunk_of(pos, chunks)
        )
        done, step, count, live_steps, needed = jax.device_get(info)
        step = np.asarray(step, np.int64)
        live = ~np.asarray(done)
        stats.rounds += 1
        stats.decode_steps += int(count)
        stats.slot_steps += int(count) * s
        stats.live_slot_steps += int(live_steps)
        if waiting:
            stats.waiting_live_slot_steps += int(live_steps)
            stats.waiting_decode_steps += int(count)
        stats.kv_read += float(count) * s * sum(chunks[: _chunk_of(pos, chunks) + 1])
        stats.kv_needed += float(needed)
        if not queue and not live.any():
            break
        if not queue and s // 2 >= min_slots and live.sum() <= s // 2:
            s2 = s
            while s2 // 2 >= max(min_slots, live.sum(), 1):
                s2 //= 2
            keep = np.concatenate([np.flatnonzero(live), np.flatnonzero(~live)])[:s2].astype(np.int32)
            cache, slots, out = fns.compact(cache, slots, out, fns.host(keep))
            live, step, s = live[keep], step[keep], s2
            stats.compactions += 1
    return fns.finish(slots, out, eos_E), stats
