"""``generate``: the sampler's entry point on one device (docs/sampler.md). It picks the path: paged
continuous batching (``paged.py``, the default), contiguous continuous batching (``continuous.py``,
``paged=False``) or the static loop (``sampler.py``, ``continuous=False``); the rows are the same on all
three. Kept apart from those modules so that none of them imports another's caller."""

from __future__ import annotations

from collections.abc import Sequence

from jaxrlvr.models.config import ModelConfig
from jaxrlvr.sampling import continuous as cb
from jaxrlvr.sampling import paged
from jaxrlvr.sampling.sampler import (
    SampleOutput,
    _as_int,
    cpu_kernels_usable,
    prepare_params,
    real_rows,
    setup_call,
)


def generate(
    config: ModelConfig,
    params,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    num_samples: int = 1,
    eos_ids: Sequence[int] | int,
    pad_id: int,
    seed: int,
    attn_block: int | None = 64,
    slots: int | None = None,
    continuous: bool = True,
    paged_cache: bool = True,
    page_size: int = paged.PAGE_SIZE,
    pool_pages: int | None = None,
    decode_kernel: str = "auto",
) -> SampleOutput:
    """Samples ``num_samples`` responses of at most ``max_new_tokens`` tokens for each prompt.

    Args:
      config, params: the model; ``params`` is the ``models.init_params`` tree or (to reuse it across
        calls) :func:`prepare_params`'s result.
      prompts: ragged list of token-id lists (each non-empty).
      max_new_tokens: N, the length of every output row.
      temperature, top_p, top_k, greedy: the strategy (see :class:`SamplingParams`).
      num_samples: G samples per prompt, rows ``p*G .. p*G+G-1``; each prompt is prefilled once.
      eos_ids: token(s) that end a response (included in it); may be empty.
      pad_id: written after a row's end (and used to left-pad prompts; never attended to).
      seed: the call's seed; the same arguments give the same output.
      attn_block: KV-cache chunk size of the contiguous and static paths (see :class:`Sampler`).
      slots: rows decoded at once at most. None: paged, ``paged.default_num_slots``; contiguous, the rows
        whose cache fits ``continuous.MEMORY_FRACTION`` of the device memory. The rows are the same for
        any value.
      continuous: False runs the static loop instead (all rows decode until the longest one ends).
      paged_cache: True (default): continuous batching over a paged KV cache (``paged.run``); False: the
        contiguous per-slot cache (``continuous.run``).
      page_size: positions per KV page (paged; default ``paged.PAGE_SIZE``).
      pool_pages: pages in the pool (paged; default ``paged.POOL_FRACTION`` of the free device memory).
      decode_kernel: the paged decode's attention (see :class:`Sampler`; docs/sampler.md "Decode kernels").

    Returns:
      :class:`SampleOutput` with ``len(prompts) * num_samples`` rows.

    Raises:
      ValueError: bad arguments, a token id outside the vocabulary, or a prompt whose length plus
        ``max_new_tokens`` exceeds ``config.max_position_embeddings``.
    """
    ip = prepare_params(config, params)
    sampler, ids, lengths, key, eos_arr = setup_call(
        config,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        greedy=greedy,
        num_samples=num_samples,
        eos_ids=eos_ids,
        pad_id=pad_id,
        seed=seed,
        attn_block=attn_block,
        cpu_kernels=ip.layout == "out_in" and cpu_kernels_usable(config),
        decode_kernel=decode_kernel,
    )
    rows = len(prompts) * sampler.num_samples
    if slots is not None:
        slots = _as_int("slots", slots, lo=1)
    if not continuous:
        return real_rows(sampler(ip, ids, lengths, key, eos_arr), rows)
    if paged_cache:
        page_size = _as_int("page_size", page_size, lo=1)
        if pool_pages is not None:
            pool_pages = _as_int("pool_pages", pool_pages, lo=1)
        out, _ = paged.run(
            sampler, ip, ids, lengths, key, eos_arr, pool_pages=pool_pages, page_size=page_size, num_slots=slots
        )
        return real_rows(out, rows)
    if slots is None:
        slots = cb.default_num_slots(config, rows, ids.shape[1], sampler.max_new_tokens)
    out, _ = cb.run(sampler, ip, ids, lengths, key, eos_arr, num_slots=slots)
    return real_rows(out, rows)
