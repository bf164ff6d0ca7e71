"""The CPU decode kernel (``jaxrlvr.kernels.small_matmul``) and the sampler path that uses it."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr import kernels
from jaxrlvr.models import ModelConfig, init_params
from jaxrlvr.sampling import Sampler, SamplingParams, generate, prepare_params
from jaxrlvr.sampling.prng import seed_key
from jaxrlvr.sampling.sampler import cpu_kernels_usable, pad_prompts

needs_kernels = pytest.mark.skipif(not kernels.available(), reason="CPU kernels not built (no C++ compiler?)")

# Big enough for generate() to choose the kernels (hidden x intermediate >= 2**21) and for every weight to
# take them (>= 2**16 elements), small enough to compile in seconds.
CFG = ModelConfig.preset(
    "tiny", hidden_size=256, intermediate_size=8192, num_heads=4, num_kv_heads=2, head_dim=64, vocab_size=2048
)


@needs_kernels
@pytest.mark.parametrize("m,k,n", [(1, 5, 3), (8, 33, 7), (13, 100, 65), (16, 256, 64), (17, 896, 130)])
def test_small_matmul_matches_numpy(m, k, n):
    """Row blocks of 8 and their remainders, the k tail past the 16-lane vectors, odd output counts."""
    rng = np.random.default_rng(m * 1000 + k)
    x = rng.standard_normal((m, k), np.float32)
    w = rng.standard_normal((n, k), np.float32)
    got = np.asarray(jax.jit(kernels.small_matmul)(x, w))
    ref = x.astype(np.float64) @ w.T.astype(np.float64)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.sqrt(k) * np.abs(ref).max() / 10 + 1e-6)


@needs_kernels
def test_small_matmul_rejects_bad_operands():
    x = jnp.ones((2, 4), jnp.float32)
    with pytest.raises(TypeError, match="float32"):
        kernels.small_matmul(x.astype(jnp.bfloat16), jnp.ones((3, 4), jnp.bfloat16))
    with pytest.raises(ValueError, match=r"\(2, 4\) and \(3, 5\)"):
        kernels.small_matmul(x, jnp.ones((3, 5), jnp.float32))


@needs_kernels
def test_sampler_with_kernels_equals_xla_matmuls():
    """Same prepared weights, kernel on and off: identical greedy tokens, log-probs within float32
    rounding; generate() takes the kernel layout on its own on a float32 CPU model."""
    params = init_params(CFG, jax.random.key(0))
    assert cpu_kernels_usable(CFG)
    ip = prepare_params(CFG, params)
    assert ip.layout == "out_in" and ip.lm_head is None  # tied embedding doubles as the [out, in] head
    rng = np.random.default_rng(0)
    prompts = [list(rng.integers(0, 2000, size=int(rng.integers(3, 20)))) for _ in range(5)]
    ids, lengths = pad_prompts(CFG, prompts, 12, 0)
    eos = np.full((4,), -1, np.int32)
    outs = []
    for ck in (False, True):
        s = Sampler(
            config=CFG, sampling=SamplingParams(greedy=True), max_new_tokens=12, pad_id=0, num_samples=2, cpu_kernels=ck
        )
        outs.append(s(ip, ids, lengths, seed_key(0), eos))
    np.testing.assert_array_equal(outs[0].tokens, outs[1].tokens)
    np.testing.assert_allclose(outs[0].logprobs, outs[1].logprobs, atol=1e-5)
    g = generate(CFG, params, prompts, max_new_tokens=12, greedy=True, eos_ids=(), pad_id=0, seed=0, num_samples=2)
    np.testing.assert_array_equal(g.tokens, np.asarray(outs[1].tokens)[: g.tokens.shape[0]])
    # the trainer samples through a placement: on one CPU device it takes the same kernel path
    from jaxrlvr import sharding

    pl = sharding.placement(sharding.single_device_mesh(), CFG)
    gp = pl.generate(CFG, params, prompts, max_new_tokens=12, greedy=True, eos_ids=(), pad_id=0, seed=0, num_samples=2)
    np.testing.assert_array_equal(gp.tokens, g.tokens)


def test_layout_choice_and_mesh_guard():
    """bf16 models keep XLA's layout; a mesh placement refuses kernel-layout weights with a clear error."""
    from jaxrlvr import sharding

    assert not cpu_kernels_usable(ModelConfig.preset("tiny"))  # small: XLA's fused matmuls are faster
    big_bf16 = ModelConfig.preset("qwen2.5-0.5b", dtype="bfloat16", param_dtype="bfloat16")
    assert not cpu_kernels_usable(big_bf16)
    assert cpu_kernels_usable(ModelConfig.preset("qwen2.5-0.5b")) == kernels.available()
    with pytest.raises(ValueError, match="layout must be one of"):
        prepare_params(CFG, init_params(CFG, jax.random.key(0)), layout="in_out")
    tiny = ModelConfig.preset("tiny")
    ip = prepare_params(tiny, init_params(tiny, jax.random.key(0)), layout="out_in")
    pl = sharding.placement(sharding.single_device_mesh(), tiny)
    with pytest.raises(sharding.MeshError, match="layout='out_in'"):
        pl.generate(tiny, ip, [[1, 2]], max_new_tokens=2, eos_ids=(), pad_id=0, seed=0)


def test_kernels_can_be_switched_off():
    code = "from jaxrlvr import kernels; print(kernels.available())"
    env = {**os.environ, "JAXRLVR_CPU_KERNELS": "0", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
