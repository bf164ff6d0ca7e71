"""Blockwise (flash-style) attention against the dense formula: values and gradients, f32, GQA, packed
segments, kv padding, cache offsets, fully masked queries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr.models.attention import allowed_mask, attention, reference_attention
from tests.models.attention_cases import KV_MASK, SEG, B, T


def _masks(segments):
    kw = {"kv_mask_BS": jnp.asarray(KV_MASK, jnp.int32)}
    if segments:
        seg = jnp.asarray(SEG, jnp.int32)
        kw.update(q_segment_ids_BT=seg, kv_segment_ids_BS=seg)
    return kw


@pytest.mark.parametrize("segments", [False, True])
def test_blockwise_matches_dense_values_and_gradients(qkv, segments):
    q, k, v, w = qkv
    kw = _masks(segments)
    has_key = allowed_mask(T, T, 0, kw["kv_mask_BS"], kw.get("q_segment_ids_BT"), kw.get("kv_segment_ids_BS"))
    has_key = has_key.any(-1)[..., None, None]  # queries with at least one allowed key
    w = w * has_key

    def loss(impl):
        def f(q, k, v):
            out = attention(q, k, v, impl=impl, block_q=8, block_k=16, **kw)
            return jnp.sum(out * w), out

        return jax.jit(jax.grad(f, argnums=(0, 1, 2), has_aux=True))

    g_blk, out = loss("xla_blockwise")(q, k, v)
    g_ref, ref = loss("dense")(q, k, v)
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(out * has_key, ref * has_key, atol=1e-5)
    for a, r in zip(g_blk, g_ref, strict=True):
        assert bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_allclose(a, r, atol=1e-5)
    if segments:  # the empty tail of row 0 (segment 0, no valid key) is finite and zero
        assert float(jnp.max(jnp.abs(out[0, 35:]))) == 0.0


def test_prefill_with_cache_offset(qkv):
    q, k, _, _ = qkv
    s = k.shape[1]
    offset = 12  # queries at cache slots 12..18; slots beyond are empty cache
    kv_mask = (jnp.arange(s)[None] < offset + 7) & (jnp.arange(s)[None] >= jnp.asarray([[0], [3]]))
    kw = dict(q_offset=offset, kv_mask_BS=kv_mask)
    out = jax.jit(lambda q, k: attention(q, k, k, impl="xla_blockwise", block_q=4, block_k=8, **kw))(q[:, :7], k)
    np.testing.assert_allclose(out, reference_attention(q[:, :7], k, k, **kw), atol=1e-5)


def test_auto_and_errors(qkv):
    q, k, v, _ = qkv
    np.testing.assert_allclose(attention(q, k, v), reference_attention(q, k, v), atol=1e-6)  # one block: dense
    with pytest.raises(ValueError, match="impl"):
        attention(q, k, v, impl="flash")
    with pytest.raises(ValueError, match="cudnn"):
        attention(q, k, v, impl="cudnn", **_masks(True))
    with pytest.raises(ValueError, match="both"):
        attention(q, k, v, q_segment_ids_BT=jnp.zeros((B, T), jnp.int32))
