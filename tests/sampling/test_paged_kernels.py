"""The paged decode's attention kernels (``rollout.decode_kernel``, ``models.paged_attention_kernels``): a whole
paged decode through the GPU (Triton) kernel in Pallas interpret mode on the CPU gives the XLA path's rows
token for token; the setting's choice and its errors (library and command line). Random Hugging Face Qwen2
of conftest.py; interpret mode is slow, so few rows and a short cap."""

import dataclasses
import os
import pathlib
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr.models import paged_attention as pa
from jaxrlvr.models import paged_attention_kernels as pk
from jaxrlvr.sampling import generate, paged, prepare_params
from jaxrlvr.sampling.sampler import setup_call

ROOT = pathlib.Path(__file__).resolve().parents[2]
N = 10


@pytest.fixture(scope="module")
def xla_run(hf_model, prompts):
    """(ip, sampler inputs, the XLA path's paged output): 8 rows through 4 slots, pages of 8 positions (a
    16-token prompt bucket: 2 prompt pages shared by 2 samples, own pages taken as rows grow)."""
    _, config, params = hf_model
    ip = prepare_params(config, params)
    call = dict(max_new_tokens=N, temperature=0.8, top_p=1.0, top_k=0, greedy=False, num_samples=2)
    call.update(eos_ids=(5,), pad_id=0, seed=7, decode_kernel="xla")
    inputs = setup_call(config, prompts, **call)
    out, stats = paged.run(*inputs[:1], ip, *inputs[1:], page_size=8, num_slots=4)
    assert stats.compactions + stats.rounds > 1
    return ip, inputs, jax.tree.map(np.asarray, out)


@pytest.mark.parametrize("kernel", ["pallas_gpu_interpret", "pallas_tpu_interpret"])
def test_paged_decode_through_a_kernel_equals_xla(xla_run, kernel):
    """The whole paged decode (prefill, rounds, admissions, compaction) with the kernel in interpret mode:
    the same tokens, lengths and log-probs (float32 rounding) as the XLA path."""
    base = kernel.removesuffix("_interpret")
    if not pk.available(base):
        pytest.skip(f"this JAX has no {base} paged-attention kernel")
    if (err := pk.interpret_error(base)) is not None:
        pytest.skip(f"this JAX's Pallas interpret mode cannot run the {base} kernel on a CPU: {err}")
    ip, (sampler, ids, lengths, key, eos), want = xla_run
    out, _ = paged.run(
        dataclasses.replace(sampler, decode_kernel=kernel), ip, ids, lengths, key, eos, page_size=8, num_slots=4
    )
    got = jax.tree.map(np.asarray, out)
    for name in ("tokens", "mask", "lengths", "truncated"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-5)
    assert want.lengths.min() < N <= want.lengths.max()  # rows of different lengths, some truncated


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_xla_forms_and_chunks_agree(dtype):
    """The XLA path's two forms (batched dots; the CPU's elementwise sums) against the dense formula, on a
    shared prompt page, a finished row and a padding pair; the end-marker row index equals a search."""
    rng = np.random.default_rng(3)
    s, kv, g, hd, page = 4, 2, 2, 8, 4
    dt = jnp.dtype(dtype)
    q = jnp.asarray(rng.standard_normal((s, kv, g, hd)), dt)
    k_pool, v_pool = (jnp.asarray(rng.standard_normal((kv, 14, page, hd)), dt) for _ in range(2))
    table = jnp.asarray([[0, 1, 5, 6], [0, 1, 8, 9], [2, 10, 11, 4], [3, 12, 13, 7]], jnp.int32)
    length = jnp.asarray([15, 6, 0, 13], jnp.int32)
    count = (length + page - 1) // page
    slot, col, valid = pa.ragged_pairs(count, 11)  # 10 live pairs, 1 padding
    cum = np.cumsum(np.asarray(count))
    np.testing.assert_array_equal(slot[:10], np.searchsorted(cum, np.arange(10), side="right"))
    keep = pa.pair_keep(col, valid, slot, length, page)
    args = (q, k_pool, v_pool, table[slot, col], slot, keep)
    want = pa.reference_paged_attention(q, k_pool, v_pool, table, length)
    dot = pa.paged_attention(*args, form="dot")
    tol = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(np.asarray(dot, np.float32), np.asarray(want, np.float32), atol=tol)
    got = pa.paged_attention(*args, form="elementwise")
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(dot, np.float32), atol=tol / 10)
    assert not np.asarray(dot)[2].any()  # the finished row: zeros
    with pytest.raises(ValueError, match="form must be"):
        pa.paged_attention(*args, form="fused")


def test_gpu_blocks_and_kernel_at_a_ragged_table():
    """Power-of-two compute blocks, the table padded to whole blocks per split (hand values), and the kernel
    at a width it does not divide (7 columns: padded to 8) against the dense formula, on the sampler's pool
    layout (prompt pages 3, 1 shared by two rows; a finished row of length 0)."""
    assert pk.gpu_blocks(520, 16) == (8, 16, 640)  # 8192-token responses: 65 blocks of 8 pages, 16 splits
    assert pk.gpu_blocks(7, 4) == (4, 2, 8) and pk.gpu_blocks(3, 64) == (2, 2, 4) and pk.gpu_blocks(1, 256) == (1, 1, 1)
    if not pk.available("pallas_gpu"):
        pytest.skip("this JAX has no Pallas GPU paged-attention kernel")
    rng = np.random.default_rng(2)
    s, kv, g, hd, page = 3, 2, 3, 8, 4
    q = jnp.asarray(rng.standard_normal((s, kv, g, hd)), jnp.float32)
    k_pool, v_pool = (jnp.asarray(rng.standard_normal((kv, 16, page, hd)), jnp.float32) for _ in range(2))
    table = jnp.asarray([[3, 1, 7, 9, 12, 15, 2], [3, 1, 4, 0, 0, 0, 0], [5, 6, 8, 10, 11, 13, 14]], jnp.int32)
    length = jnp.asarray([27, 5, 0], jnp.int32)
    want = pa.reference_paged_attention(q, k_pool, v_pool, table, length)
    got = pk.gpu_paged_attention(q, k_pool, v_pool, table, length, interpret=True)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_setting_is_checked(hf_model, monkeypatch):
    """``auto`` on a CPU is the XLA path without a warning; on a GPU where the kernel does not compile (here:
    a CPU posing as one, where Triton cannot lower) the XLA path with one warning naming the error; an
    explicit kernel for another backend, or an unknown value, is a ValueError naming it and the fix."""
    _, config, params = hf_model
    q, pool, table = jnp.zeros((1, 1, 1, 8)), jnp.zeros((1, 2, 4, 8)), jnp.zeros((1, 2), jnp.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pk.resolve("auto", q, pool, table) == ("xla", False)
    assert pk.resolve("pallas_gpu_interpret", q, pool, table) == ("pallas_gpu", True)
    if pk.available("pallas_gpu"):
        pk._warn_once.cache_clear()
        monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
        with pytest.warns(RuntimeWarning, match="pallas_gpu paged-attention kernel does not compile here") as rec:
            assert [pk.resolve("auto", q, pool, table) for _ in range(2)] == [("xla", False)] * 2
        assert sum("does not compile" in str(w.message) for w in rec) == 1  # once, not per call
        monkeypatch.undo()
    kw = dict(max_new_tokens=2, eos_ids=(), pad_id=0, seed=0)
    with pytest.raises(ValueError, match=r"decode_kernel='pallas_gpu': .*JAX's backend here is cpu; use auto"):
        generate(config, params, [[1, 2]], decode_kernel="pallas_gpu", **kw)
    with pytest.raises(ValueError, match=r"decode_kernel='cuda': must be one of auto, xla, pallas_gpu"):
        generate(config, params, [[1, 2]], decode_kernel="cuda", **kw)


def test_command_line_rejects_an_unavailable_kernel(tmp_path):
    """``--config.rollout.decode_kernel=pallas_gpu`` on a CPU: one ``error:`` line, exit status 2, before any
    compilation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "scripts/train.py", "--config", "configs/demo.py:smoke", "--workdir", str(tmp_path / "w")]
    cmd.append("--config.rollout.decode_kernel=pallas_gpu")
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: rollout.decode_kernel='pallas_gpu': ")
        and "use auto" in lines[0]
    )
