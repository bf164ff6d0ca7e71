"""Counter-based random numbers for the sampler: uniform(seed, row, step, j) from Threefry-2x32.

Every uniform the sampler uses is a pure function of (call seed, row, step, index), computed by one
vectorised hash, so a call is reproducible, rows are independent, and a row's numbers do not depend on the
batch it sits in. The hash is the 20-round Threefry-2x32 block cipher (Salmon et al., SC'11), the same
function as ``jax.random``'s default generator (tests check equality with ``jax.extend.random``), written
out unrolled here because XLA:CPU lowers JAX's version as a rolled loop of several small ops, which cost
more than the rest of a small model's sampling step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = 0x1BD11BDA
_SAMPLER_TAG = 0x73616D70  # domain separation from other uses of the same seed


def threefry2x32(k0, k1, c0, c1, xp=jnp):
    """Threefry-2x32 (20 rounds) of the counter words (c0, c1) under the key (k0, k1); uint32, elementwise.

    ``xp``: ``jax.numpy`` (traceable) or ``numpy`` (host; pass arrays, not scalars).
    """
    u = lambda v: xp.asarray(v, xp.uint32)  # noqa: E731
    ks = (u(k0), u(k1), u(k0) ^ u(k1) ^ u(_PARITY))
    x0, x1 = u(c0) + ks[0], u(c1) + ks[1]
    for r in range(20):
        rot = _ROTATIONS[r % 8]
        x0 = x0 + x1
        x1 = ((x1 << u(rot)) | (x1 >> u(32 - rot))) ^ x0
        if r % 4 == 3:
            s = r // 4 + 1
            x0 = x0 + ks[s % 3]
            x1 = x1 + ks[(s + 1) % 3] + u(s)
    return x0, x1


def seed_key(seed: int) -> np.ndarray:
    """The sampler key (numpy uint32[2]) of an integer seed (any size; taken modulo 2**64)."""
    s = int(seed) % (1 << 64)
    w = lambda v: np.asarray([v], np.uint32)  # noqa: E731
    k0, k1 = threefry2x32(w(s >> 32), w(s & 0xFFFFFFFF), w(_SAMPLER_TAG), w(0), xp=np)
    return np.concatenate([k0, k1])


def bits_to_unit(bits: Array) -> Array:
    """uint32 -> float32 uniform in [0, 1) (23 random mantissa bits)."""
    one = jax.lax.bitcast_convert_type((bits >> jnp.uint32(9)) | jnp.uint32(0x3F800000), jnp.float32)
    return one - jnp.float32(1.0)


def step_uniforms(key: Array, rows_B: Array, step: Array, n: int) -> Array:
    """float32 [B, n] uniforms of rows ``rows_B`` at decode ``step`` (independent across rows/steps/n).

    ``step``: one step for every row, or one per row ``[B]`` (continuous batching: each slot's row is at
    its own step); the numbers of (row, step) are the same either way."""
    c0 = rows_B.astype(jnp.uint32)[:, None] * jnp.uint32(n) + jnp.arange(n, dtype=jnp.uint32)[None, :]
    step = jnp.asarray(step).astype(jnp.uint32)
    c1 = jnp.broadcast_to(step[:, None] if step.ndim else step, c0.shape)
    y0, _ = threefry2x32(key[0], key[1], c0, c1)
    return bits_to_unit(y0)
