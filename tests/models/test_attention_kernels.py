"""The Pallas attention kernels (splash for TPU, flash for GPU) against the dense formula, in Pallas
interpret mode on the CPU: values and gradients, f32, GQA, packed segments, left / right padding, a length
that is not a multiple of the kernel block. On a TPU / GPU the same code runs compiled
(``scripts/gpu_check.py`` measures the GPU one)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr.models import attention as attention_mod
from jaxrlvr.models.attention import allowed_mask, attention
from tests.models.attention_cases import KV_MASK, SEG, B, H, N, T


@pytest.mark.parametrize("kind", ["pallas_tpu", "pallas_gpu"])
def test_kernel_matches_dense_values_and_gradients(qkv, kind):
    q, k, v, w = qkv
    seg = jnp.asarray(SEG, jnp.int32)
    kw = dict(kv_mask_BS=jnp.asarray(KV_MASK, jnp.int32), q_segment_ids_BT=seg, kv_segment_ids_BS=seg)
    real = allowed_mask(T, T, 0, kw["kv_mask_BS"], seg, seg).any(-1)[..., None, None]  # queries with a key
    w = w * real  # a loss that reads real queries only, as the model's does

    def grads(impl):
        def f(q, k, v):
            out = attention(q, k, v, impl=impl, **kw)
            return jnp.sum(out * w), out

        return jax.jit(jax.grad(f, argnums=(0, 1, 2), has_aux=True))(q, k, v)

    g_ker, out = grads(kind)
    g_ref, ref = grads("dense")
    assert out.shape == (B, T, N, H) and bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(out * real, ref * real, atol=1e-5)
    for a, r in zip(g_ker, g_ref, strict=True):
        np.testing.assert_allclose(a, r, atol=1e-5)


def test_auto_picks_the_backend_kernel(monkeypatch):
    bf = jnp.zeros((1, 2048, 4, 64), jnp.bfloat16)
    kvb = jnp.zeros((1, 2048, 2, 64), jnp.bfloat16)
    seg = jnp.zeros((1, 2048), jnp.int32)

    def pick(backend, q=bf, k=kvb, t=2048, s=2048, offset=0, segments=seg):
        monkeypatch.setattr(attention_mod.jax, "default_backend", lambda: backend)
        return attention_mod._auto(q, t, s, offset, None, None, segments, 512, 512, 2)

    # the compile check (its own test below) answers "compiles" here: dispatch only
    monkeypatch.setattr(attention_mod.attention_kernels, "compiles", lambda *a, **k: None)

    assert pick("tpu") == "pallas_tpu"
    assert pick("gpu") == "pallas_gpu"  # segment ids: cuDNN cannot take them
    assert pick("gpu", segments=None) == "cudnn"
    assert pick("cpu") == "xla_blockwise"
    assert pick("tpu", offset=512, t=1024) == "xla_blockwise"  # prefill with a cache offset
    assert pick("tpu", q=bf.astype(jnp.float32)) == "xla_blockwise"  # f32: the reference paths
    assert pick("tpu", t=8, s=8) == "dense"


def test_kernel_refuses_cache_offsets(qkv):
    q, k, v, _ = qkv
    with pytest.raises(ValueError, match="T == S"):
        attention(q[:, :5], k, v, impl="pallas_tpu", q_offset=0)


def test_auto_falls_back_when_the_kernel_does_not_compile(monkeypatch):
    """A real failure: on this CPU, claiming to be a GPU makes the Triton kernel compile for real (not in
    interpret mode), which cannot work; auto warns once and takes the blockwise path, with the same numbers."""
    from jaxrlvr.models import attention_kernels

    assert attention_kernels.compiles("pallas_gpu", 40, 4, 2, 8, "float32") is None  # interpret mode: fine
    attention_kernels.compiles.cache_clear()
    monkeypatch.setattr(attention_kernels.jax, "default_backend", lambda: "gpu")
    q = jnp.asarray(np.random.default_rng(0).normal(size=(1, 64, 4, 8)), jnp.bfloat16)
    seg = jnp.asarray([[1] * 30 + [2] * 34], jnp.int32)
    with pytest.warns(RuntimeWarning, match="pallas_gpu kernel does not compile here"):
        picked = attention_mod._auto(q, 64, 64, 0, None, None, seg, 16, 16, 2)
    assert picked == "xla_blockwise"
    attention_kernels.compiles.cache_clear()
