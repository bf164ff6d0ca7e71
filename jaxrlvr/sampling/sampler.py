"""The rollout sampler: bucketed left-padded prompts -> one jitted prefill -> a jitted decode loop.

``sampling.generate(config, params, prompts, ...)`` (``api.py``) is the entry point (see docs/sampler.md);
its default path is paged continuous batching (``paged.py``), built on this module's :class:`Sampler`:

* :class:`Sampler`, a frozen hashable object holding everything static (model config, strategy, response
  length, pad id, samples per prompt, cache chunking); its ``prefill`` and ``decode`` methods are jitted
  with ``self`` static (the gemma habit), so equal settings share compiled code across calls. EOS ids and
  the seed are traced arguments.
* ``prefill`` runs each distinct prompt once, samples the first token of each of its ``G`` rows, and
  returns the KV cache for ``P * G`` rows (prompt ``p`` copied to rows ``p*G .. p*G+G-1``) and the loop
  state. ``decode`` takes that cache donated and runs ``lax.while_loop`` steps until every row has emitted
  an EOS or ``max_new_tokens`` tokens exist. Nothing leaves the device inside the loop, and params and
  cache are plain arguments, so a mesh placement only needs shardings on them.
* The cache is split into a few chunks (separate arrays) and the loop into one ``while_loop`` per chunk
  (a *segment*), whose steps attend only the chunks filled so far: attention reads the filled part of
  the cache, not all of it, without slicing it.

Randomness: the uniforms of row ``r`` at step ``i`` are Threefry hashes of (seed, r, i) (``prng.py``), so a
call is reproducible, rows are independent, and row ``r`` draws the same numbers whatever the batch.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr.models.config import ModelConfig
from jaxrlvr.models.paged_attention_kernels import decode_kernel_error
from jaxrlvr.sampling import inference
from jaxrlvr.sampling.buckets import bucket_prompt_count, bucket_prompt_length, decode_segments, eos_slots  # noqa: F401
from jaxrlvr.sampling.inference import InferenceParams
from jaxrlvr.sampling.prng import seed_key
from jaxrlvr.sampling.strategies import SamplingParams, sample_tokens

Array = jax.Array

# XLA:CPU compiler options (only passed to CPU compilations):
# - default copy insertion copies loop-carried buffers (the KV cache) that the loop body both reads and
#   updates in place; region analysis proves the in-place update safe;
# - for large models, the YNNPACK library handles only the matmuls: its reduction fusions, run between
#   bandwidth-bound matmuls, made a 0.5B decode step ~1.8x slower (measured); small models are faster
#   with them.
_CPU_COMPILER_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}
_CPU_LARGE_MODEL_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
_LARGE_MODEL_MIN_MLP = 1 << 21  # hidden_size * intermediate_size
_OPTIONS_REJECTED = False


def compiler_options(config: ModelConfig, platform: str) -> dict | None:
    """XLA compiler options of the sampler's jitted functions for a model on a platform."""
    if platform != "cpu":
        return None
    opts = dict(_CPU_COMPILER_OPTIONS)
    if config.hidden_size * config.intermediate_size >= _LARGE_MODEL_MIN_MLP:
        opts.update(_CPU_LARGE_MODEL_OPTIONS)
    return opts


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SampleOutput:
    """What :func:`generate` returns (device arrays; ``np.asarray`` them for host use).

    Attributes:
      tokens: int32 [B, N] sampled tokens, ``pad_id`` after a row's end.
      mask: int32 [B, N] 1 up to and including the first EOS (all N when truncated), else 0.
      lengths: int32 [B] ``mask.sum(-1)``.
      logprobs: float32 [B, N] log-prob of each sampled token under ``softmax(logits / temperature)``
        over the full vocabulary (no top-k / top-p renormalisation); 0 where ``mask`` is 0.
      truncated: bool [B] no EOS within ``max_new_tokens``.
    Rows are ``p * num_samples + g`` for prompt ``p`` and sample ``g``.
    """

    tokens: Array
    mask: Array
    lengths: Array
    logprobs: Array
    truncated: Array


# ------------------------------------------------------------------------------------------------- sampler
@dataclasses.dataclass(frozen=True)
class Sampler:
    """Everything static about a sampling call; hashable, so it is the ``static`` ``self`` of its jits.

    Attributes:
      config: the model.
      sampling: the strategy (temperature, top-p, top-k, greedy).
      max_new_tokens: N, the response length limit.
      pad_id: written after a row's end.
      num_samples: G rows per prompt.
      attn_block: cache chunk size in slots (the first chunk also holds the prompt); a decode step attends
        only the chunks up to the one it writes. None: one chunk (attend the whole cache every step).
      max_segments: at most this many chunks (each compiles one copy of the decode step); the chunk size
        doubles until it fits.
      cpu_kernels: large float32 matmuls of the decode step through ``jaxrlvr.kernels`` (CPU only; needs
        params prepared with ``layout="out_in"`` to apply to every weight). :func:`generate` sets it when
        :func:`cpu_kernels_usable`.
      logits_processor: optional hashable pure function ``(logits_BV, rows_B, steps_B) -> logits_BV``
        applied to the float32 logits before sampling (row ids and the index of the token being sampled;
        both int32 [B]); the returned log-probs are those of the processed logits. A hook for tests and
        benchmarks (e.g. ``scripts/bench_scale.py``'s length oracle), None in production.
      decode_kernel: the paged decode's attention (``paged_attention_kernels.DECODE_KERNELS``): ``"auto"``
        (the GPU Pallas kernel on a GPU where it compiles, else XLA), ``"xla"``, ``"pallas_gpu"``,
        ``"pallas_tpu"``, or a kernel in interpret mode (``"pallas_gpu_interpret"``: tests). A kernel that
        cannot run here is a ValueError. Only the paged path (``paged.py``) reads it.
    """

    config: ModelConfig
    sampling: SamplingParams
    max_new_tokens: int
    pad_id: int
    num_samples: int = 1
    attn_block: int | None = 64
    max_segments: int = 4
    cpu_kernels: bool = False
    logits_processor: Callable | None = None
    decode_kernel: str = "auto"

    def __post_init__(self):
        if self.decode_kernel != "auto" and (err := decode_kernel_error(self.decode_kernel)) is not None:
            raise ValueError(f"decode_kernel={self.decode_kernel!r}: {err}")

    # ------------------------------------------------------------------------------------------------
    @staticmethod
    def _is_eos(tok: Array, eos_E: Array) -> Array:
        return jnp.any(tok[..., None] == eos_E.reshape((1,) * tok.ndim + (-1,)), axis=-1)

    def sample(self, logits_BV: Array, key: Array, rows_B: Array, step) -> tuple[Array, Array]:
        """(tokens, log-probs) of rows ``rows_B`` at token index ``step`` (scalar or [B]): the strategy's
        draw from the counter-based uniforms of (seed, row, step), after the logits processor if any."""
        if self.logits_processor is not None:
            steps_B = jnp.broadcast_to(jnp.asarray(step, jnp.int32), rows_B.shape)
            logits_BV = self.logits_processor(logits_BV.astype(jnp.float32), rows_B, steps_B)
        return sample_tokens(logits_BV, key, self.sampling, step=step, rows_B=rows_B)

    def prefill_impl(self, ip: InferenceParams, ids_PT: Array, lengths_P: Array, key: Array, eos_E: Array, row0=0):
        """Prefill + first token. ``lengths_P`` = 0 marks a padding prompt (its rows start done).

        ``key``: ``prng.seed_key(seed)``; ``eos_E``: int32 EOS ids (-1 entries never match); ``row0``
        (traced): the id of the first row, so that a batch can be decoded in waves with each row drawing
        the numbers of its id in the whole batch (the benchmark's equal-memory static baseline).
        """
        p, t = ids_PT.shape
        g, n = self.num_samples, self.max_new_tokens
        b = p * g
        start_P = t - jnp.maximum(lengths_P, 1)
        logits_PV, cache = inference.prefill(self.config, ip, ids_PT, start_P, num_samples=g, chunks=self.chunks(t))
        rows_B = jnp.arange(b, dtype=jnp.int32) + jnp.asarray(row0, jnp.int32)
        tok_B, logp_B = self.sample(jnp.repeat(logits_PV, g, axis=0), key, rows_B, 0)
        real_B = jnp.repeat(lengths_P > 0, g)
        tok_B = jnp.where(real_B, tok_B, self.pad_id)
        logp_B = jnp.where(real_B, logp_B, 0.0)
        state = {
            "step": jnp.int32(1),
            "last": tok_B,
            "done": self._is_eos(tok_B, eos_E) | ~real_B,
            "eos": eos_E,
            "length": real_B.astype(jnp.int32),
            "start": jnp.repeat(start_P, g),
            "plen": jnp.repeat(lengths_P, g),
            "key": key,
            "rows": rows_B,
            "tokens": jnp.full((b, n), self.pad_id, jnp.int32).at[:, 0].set(tok_B),
            "logp": jnp.zeros((b, n), jnp.float32).at[:, 0].set(logp_B),
        }
        return cache, state

    def chunks(self, prompt_len: int) -> tuple[int, ...]:
        """The cache's chunk lengths for a prompt bucket (see ``inference.cache_chunks``)."""
        return inference.cache_chunks(prompt_len, self.max_new_tokens, self.attn_block, self.max_segments)

    def _step(self, ip: InferenceParams, carry, *, prompt_len: int, chunk: int):
        cache, st = carry
        i = st["step"]
        logits_BV, cache = inference.decode_step(
            self.config,
            ip,
            cache,
            st["last"],
            prompt_len + i - 1,
            st["plen"] + i - 1,
            st["start"],
            chunk=chunk,
            cpu_kernel=self.cpu_kernels,
        )
        tok_B, logp_B = self.sample(logits_BV, st["key"], st["rows"], i)
        done = st["done"]
        tok_B = jnp.where(done, self.pad_id, tok_B)
        logp_B = jnp.where(done, 0.0, logp_B)
        st = dict(st)
        st["tokens"] = jax.lax.dynamic_update_slice(st["tokens"], tok_B[:, None], (0, i))
        st["logp"] = jax.lax.dynamic_update_slice(st["logp"], logp_B[:, None], (0, i))
        st["length"] = st["length"] + (~done).astype(jnp.int32)
        st["done"] = done | self._is_eos(tok_B, st["eos"])
        st["last"] = tok_B
        st["step"] = i + 1
        return cache, st

    def decode_impl(self, ip: InferenceParams, cache, state):
        """The decode loop -> (:class:`SampleOutput` for all (padded) rows, the final cache).

        The cache is returned only so that the donated input buffer can be aliased to an output (which is
        what lets XLA update it in place); callers drop it.
        """
        n = self.max_new_tokens
        chunks = tuple(kc.shape[-1] for kc in cache[0][0])
        prompt_len = sum(chunks) - max(n - 1, 0)
        carry = (cache, state)
        for _, end, chunk in decode_segments(prompt_len, n, chunks):
            carry = jax.lax.while_loop(
                lambda c, end=end: (c[1]["step"] < end) & ~jnp.all(c[1]["done"]),
                functools.partial(self._step, ip, prompt_len=prompt_len, chunk=chunk),
                carry,
            )
        st = carry[1]
        return self.output(st["tokens"], st["logp"], st["length"], st["eos"]), carry[0]

    def output(self, tokens_BN: Array, logp_BN: Array, length_B: Array, eos_E: Array) -> SampleOutput:
        """The :class:`SampleOutput` of finished rows (tokens ``pad_id`` after each row's length)."""
        n = tokens_BN.shape[1]
        mask = (jnp.arange(n, dtype=jnp.int32)[None, :] < length_B[:, None]).astype(jnp.int32)
        eos_seen = jnp.any(self._is_eos(tokens_BN, eos_E) & (mask > 0), axis=-1)
        return SampleOutput(
            tokens=tokens_BN,
            mask=mask,
            lengths=length_B,
            logprobs=jnp.where(mask > 0, logp_BN, 0.0),
            truncated=~eos_seen,
        )

    # ------------------------------------------------------------------------------------------------
    def _jit(self, name: str, ip: InferenceParams):
        opts = None if _OPTIONS_REJECTED else compiler_options(self.config, _platform(ip))
        return _jitted(name, None if opts is None else tuple(sorted(opts.items())))

    def run_jitted(self, name: str, ip: InferenceParams, *args, **static):
        """Calls the jitted function registered as ``name`` (``JIT_SPECS``) as ``fn(self, *args,
        **static)``, compiled with the sampler's XLA options for ``ip``'s platform."""
        try:
            return self._jit(name, ip)(self, *args, **static)
        except Exception as e:  # an XLA build that does not know one of our compiler options
            global _OPTIONS_REJECTED
            if _OPTIONS_REJECTED or "xla_cpu_" not in str(e):
                raise
            _OPTIONS_REJECTED = True
            warnings.warn(f"sampler: XLA rejected a compiler option, compiling without them ({e})", stacklevel=3)
            return self._jit(name, ip)(self, *args, **static)

    def _run(self, name: str, ip: InferenceParams, *args):
        return self.run_jitted(name, ip, ip, *args)

    def prefill(self, ip: InferenceParams, ids_PT, lengths_P, key, eos_E):
        """Jitted :meth:`prefill_impl`."""
        return self._run("prefill", ip, ids_PT, lengths_P, key, eos_E)

    def decode(self, ip: InferenceParams, cache, state) -> tuple[SampleOutput, tuple]:
        """Jitted :meth:`decode_impl`; ``cache`` is donated."""
        return self._run("decode", ip, cache, state)

    def __call__(self, ip: InferenceParams, ids_PT, lengths_P, key, eos_E) -> SampleOutput:
        cache, state = self.prefill(ip, ids_PT, lengths_P, key, eos_E)
        out, cache = self.decode(ip, cache, state)
        del cache
        return out


def _platform(tree) -> str:
    leaf = jax.tree.leaves(tree)[0]
    try:
        return next(iter(leaf.devices())).platform
    except AttributeError:  # not a committed jax.Array
        return jax.default_backend()


# name -> (function of a Sampler first, jax.jit keyword arguments); continuous.py adds its functions
JIT_SPECS: dict[str, tuple[Callable, dict]] = {
    "prefill": (Sampler.prefill_impl, {}),
    "decode": (Sampler.decode_impl, {"donate_argnums": 2}),
}


@functools.cache
def _jitted(name: str, options: tuple | None):
    fn, kwargs = JIT_SPECS[name]
    opts = None if options is None else dict(options)
    return jax.jit(fn, compiler_options=opts, **{"static_argnums": 0, **kwargs})


@functools.cache
def _prepare_jit():
    return jax.jit(inference.prepare_params, static_argnums=(0, 2))


def cpu_kernels_usable(config: ModelConfig) -> bool:
    """Whether :func:`generate` runs the decode step's matmuls through ``jaxrlvr.kernels``: a float32
    model large enough for its weights to dominate a step (hidden x intermediate >= 2**21, as for the
    large-model XLA options; small models are faster with XLA's fused matmuls), JAX's default backend is
    the CPU, and the kernels built (see ``jaxrlvr.kernels``)."""
    from jaxrlvr import kernels

    big = config.hidden_size * config.intermediate_size >= _LARGE_MODEL_MIN_MLP
    return big and config.jnp_dtype == jnp.float32 and kernels.available()


def prepare_params(config: ModelConfig, params, layout: str | None = None) -> InferenceParams:
    """The sampler's parameter layout (one copy of the layer weights); pass it to :func:`generate` to
    reuse it across calls with the same weights. ``layout`` (``inference.prepare_params``): None picks
    ``"out_in"`` when :func:`cpu_kernels_usable`, else ``"auto"``."""
    if isinstance(params, InferenceParams):
        return params
    if layout is None:
        layout = "out_in" if cpu_kernels_usable(config) else "auto"
    return _prepare_jit()(config, params, layout)


# ------------------------------------------------------------------------------------------------ generate
def _as_int(name: str, v, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool):
        raise ValueError(f"{name} must be an int, got {v!r}")
    try:
        v = operator.index(v)
    except TypeError:
        raise ValueError(f"{name} must be an int, got {v!r}") from None
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v >= hi:
        raise ValueError(f"{name} must be < {hi}, got {v}")
    return v


def pad_prompts(
    config: ModelConfig, prompts: Sequence[Sequence[int]], max_new_tokens: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validates ragged prompts and left-pads them to the buckets: (ids [P', T] int32, lengths [P'] int32).

    Padding prompts (to reach the bucketed count P') have length 0.
    """
    if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise ValueError("prompts must be a non-empty list of token-id lists")
    v = config.vocab_size
    rows = []
    for i, p in enumerate(prompts):
        arr = np.asarray(p)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"prompts[{i}] must be a non-empty 1-D list of token ids, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"prompts[{i}] must hold integer token ids, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= v:
            raise ValueError(
                f"prompts[{i}] has token id {int(arr.max() if arr.max() >= v else arr.min())} "
                f"outside the vocabulary [0, {v})"
            )
        rows.append(arr)
    longest = max(len(r) for r in rows)
    ctx = config.max_position_embeddings
    if longest + max_new_tokens > ctx:
        i = max(range(len(rows)), key=lambda j: len(rows[j]))
        raise ValueError(
            f"prompts[{i}] has {longest} tokens; with max_new_tokens={max_new_tokens} that is "
            f"{longest + max_new_tokens} positions, beyond the model's context "
            f"(max_position_embeddings={ctx})"
        )
    t = bucket_prompt_length(longest)
    n = bucket_prompt_count(len(rows))
    ids = np.full((n, t), pad_id, np.int32)
    lengths = np.zeros((n,), np.int32)
    for i, r in enumerate(rows):
        ids[i, t - len(r) :] = r
        lengths[i] = len(r)
    return ids, lengths


def setup_call(
    config: ModelConfig,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens,
    temperature,
    top_p,
    top_k,
    greedy,
    num_samples,
    eos_ids,
    pad_id,
    seed,
    attn_block=64,
    **sampler_fields,
) -> tuple[Sampler, np.ndarray, np.ndarray, Array, np.ndarray]:
    """A :func:`generate` call's arguments, validated (errors name the argument), as the :class:`Sampler`,
    the bucketed prompts (ids [P', T], lengths [P']), the key and the EOS array. Shared by the mesh
    placement's ``generate``; ``sampler_fields`` are further :class:`Sampler` fields."""
    n = _as_int("max_new_tokens", max_new_tokens, lo=1)
    g = _as_int("num_samples", num_samples, lo=1)
    v = config.vocab_size
    pad = _as_int("pad_id", pad_id, lo=0, hi=v)
    if isinstance(eos_ids, int | np.integer):
        eos_ids = (eos_ids,)
    eos = sorted({_as_int("eos_ids[]", e, lo=0, hi=v) for e in eos_ids})
    seed = _as_int("seed", seed)
    if attn_block is not None:
        attn_block = _as_int("attn_block", attn_block, lo=1)
    strategy = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, greedy=bool(greedy))
    ids, lengths = pad_prompts(config, prompts, n, pad)
    sampler = Sampler(
        config=config,
        sampling=strategy,
        max_new_tokens=n,
        pad_id=pad,
        num_samples=g,
        attn_block=attn_block,
        **sampler_fields,
    )
    eos_arr = np.full((eos_slots(len(eos)),), -1, np.int32)
    eos_arr[: len(eos)] = eos
    return sampler, ids, lengths, seed_key(seed), eos_arr


def real_rows(out: SampleOutput, rows: int) -> SampleOutput:
    """``out`` without the rows of the padding prompts (the prompt count is bucketed)."""
    return out if out.tokens.shape[0] == rows else jax.tree.map(lambda x: x[:rows], out)


__all__ = [
    "SampleOutput",
    "Sampler",
    "bucket_prompt_count",
    "cpu_kernels_usable",
    "bucket_prompt_length",
    "decode_segments",
    "pad_prompts",
    "prepare_params",
]
