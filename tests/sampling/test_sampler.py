"""The sampler end to end on a random Hugging Face Qwen2: transformers parity, cache exactness, log-probs,
prefill sharing, EOS bookkeeping, errors. Shapes are shared so compiled functions are reused."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxrlvr.models import forward  # noqa: E402
from jaxrlvr.sampling import generate, inference, prepare_params  # noqa: E402
from jaxrlvr.sampling.sampler import bucket_prompt_length, decode_segments, pad_prompts  # noqa: E402
from tests.models.hf_reference import hf_greedy  # noqa: E402 (transformers' greedy reference, shared)

N = 10
PAD = 0


def _gen(config, params, prompts, **kw):
    kw = {"max_new_tokens": N, "eos_ids": (), "pad_id": PAD, "seed": 0, **kw}
    return jax.tree.map(np.asarray, generate(config, params, prompts, **kw))


def _full_sequences(prompts, tokens, lengths):
    """Left-padded [prompt + response] ids and mask for a full forward pass."""
    seqs = [list(p) + list(t[:n]) for p, t, n in zip(prompts, tokens, lengths, strict=True)]
    w = max(map(len, seqs))
    ids = np.full((len(seqs), w), PAD, np.int32)
    mask = np.zeros((len(seqs), w), np.int32)
    for i, s in enumerate(seqs):
        ids[i, w - len(s) :] = s
        mask[i, w - len(s) :] = 1
    return ids, mask


@pytest.fixture(scope="module")
def greedy_free(hf_model, prompts):
    """Greedy continuations without EOS (every row runs N tokens)."""
    _, config, params = hf_model
    return _gen(config, params, prompts, greedy=True)


def test_greedy_matches_transformers_with_eos(hf_model, prompts, greedy_free):
    model, config, params = hf_model
    free = greedy_free.tokens
    # EOS = the token row 0 emits last for the first time (at step j >= 1): row 0 stops inside the budget
    j = max(k for k in range(1, N) if free[0, k] not in free[0, :k])
    eos = int(free[0, j])
    out = _gen(config, params, prompts, greedy=True, eos_ids=(eos,))

    ref = hf_greedy(model, prompts, N, eos, PAD)
    np.testing.assert_array_equal(out.tokens, ref)
    assert out.lengths[0] == j + 1 and not out.truncated[0]
    # and without EOS, transformers agrees on the full budget
    ref_free = hf_greedy(model, prompts, N, None, PAD)
    np.testing.assert_array_equal(free, ref_free)


@pytest.mark.parametrize("num_samples", [1, 2])
def test_cached_logits_equal_full_forward_every_step(hf_model, prompts, num_samples):
    """Prefill + every decode step (attending 1, 2, then 3 cache chunks) vs one causal forward over the
    finished sequences, which gives the logits of every prefix at once."""
    _, config, params = hf_model
    ip = prepare_params(config, params)
    ids, lengths = pad_prompts(config, prompts, N, PAD)
    p, t = ids.shape
    g = num_samples
    start = jnp.asarray(t - np.maximum(lengths, 1))
    chunks = inference.cache_chunks(t, N, 3, 8)
    logits, cache = jax.jit(inference.prefill, static_argnums=0, static_argnames=("num_samples", "chunks"))(
        config, ip, jnp.asarray(ids), start, num_samples=g, chunks=chunks
    )
    logits = jnp.repeat(logits, g, axis=0)
    step = jax.jit(inference.decode_step, static_argnums=0, static_argnames="chunk")
    segments = decode_segments(t, N, chunks)
    assert len(segments) == len(chunks) == 3  # attention over 1, 2 and 3 chunks is exercised
    rows_prompts = [pr for pr in prompts for _ in range(g)]
    toks, got = [], [np.asarray(logits)]
    rng = np.random.default_rng(0)
    plen = jnp.repeat(jnp.asarray(lengths), g)
    for i in range(1, N):
        tok = rng.integers(0, config.vocab_size, p * g).astype(np.int32)  # any tokens: teacher forcing
        toks.append(tok)
        chunk = next(c for lo, hi, c in segments if lo <= i < hi)
        logits, cache = step(
            config,
            ip,
            cache,
            jnp.asarray(tok),
            t + i - 1,
            plen + i - 1,
            jnp.repeat(start, g),
            chunk=chunk,
        )
        got.append(np.asarray(logits))
    got = np.stack(got, axis=1)[: len(prompts) * g]  # [B, N, V]; drop the padding prompt rows
    toks = np.stack(toks, axis=1)[: len(prompts) * g]
    full_ids, full_mask = _full_sequences(rows_prompts, toks, [N - 1] * len(rows_prompts))
    ref = np.asarray(forward(config, params, jnp.asarray(full_ids), jnp.asarray(full_mask)))[:, -N:]
    err = np.abs(got - ref).max()
    assert err < 1e-4, f"max |cached - full forward| = {err:.2e}"


@pytest.mark.parametrize("temperature", [0.6, 1.0])
def test_returned_logprobs_equal_full_forward(hf_model, prompts, temperature):
    _, config, params = hf_model
    out = _gen(config, params, prompts, temperature=temperature, top_p=0.9, num_samples=2, eos_ids=(5, 9))
    rows = [pr for pr in prompts for _ in range(2)]
    ids, mask = _full_sequences(rows, out.tokens, out.lengths)
    logits = np.asarray(forward(config, params, jnp.asarray(ids), jnp.asarray(mask)))
    logp = np.asarray(jax.nn.log_softmax(jnp.asarray(logits) / temperature, axis=-1))
    for r in range(len(rows)):
        n = int(out.lengths[r])
        pos = ids.shape[1] - n - 1 + np.arange(n)  # logits at position q predict the token at q + 1
        ref = logp[r, pos, out.tokens[r, :n]]
        np.testing.assert_allclose(out.logprobs[r, :n], ref, atol=1e-4)
        assert np.all(out.logprobs[r, n:] == 0.0)
    assert out.logprobs.dtype == np.float32


def test_num_samples_shares_prefill_like_repeated_prompts(hf_model, prompts):
    _, config, params = hf_model
    kw = dict(temperature=1.0, top_p=0.95, eos_ids=(5,), seed=11)
    shared = _gen(config, params, prompts, num_samples=3, **kw)
    repeated = _gen(config, params, [p for p in prompts for _ in range(3)], num_samples=1, **kw)
    np.testing.assert_array_equal(shared.tokens, repeated.tokens)
    np.testing.assert_array_equal(shared.lengths, repeated.lengths)
    np.testing.assert_allclose(shared.logprobs, repeated.logprobs, atol=1e-5)
    # the G samples of a prompt are different draws, and a call is reproducible
    assert not np.array_equal(shared.tokens[0], shared.tokens[1])
    again = _gen(config, params, prompts, num_samples=3, **kw)
    np.testing.assert_array_equal(shared.tokens, again.tokens)
    other = _gen(config, params, prompts, num_samples=3, **{**kw, "seed": 12})
    assert not np.array_equal(shared.tokens, other.tokens)


def test_eos_mask_lengths_truncated(hf_model, prompts, greedy_free):
    _, config, params = hf_model
    free = greedy_free.tokens
    # row 1 ends on its first token; row 0 at the first occurrence of its 4th token
    eos = {int(free[1, 0]), int(free[0, 3])}
    out = _gen(config, params, prompts, greedy=True, eos_ids=tuple(sorted(eos)))
    for r in range(len(prompts)):
        hits = [j for j in range(N) if free[r, j] in eos]
        n = hits[0] + 1 if hits else N
        assert out.lengths[r] == n
        assert out.truncated[r] == (not hits)
        np.testing.assert_array_equal(out.tokens[r, :n], free[r, :n])
        assert np.all(out.tokens[r, n:] == PAD)
        np.testing.assert_array_equal(out.mask[r], (np.arange(N) < n).astype(np.int32))
        np.testing.assert_allclose(out.logprobs[r, :n], greedy_free.logprobs[r, :n], atol=1e-6)
    assert out.lengths[1] == 1 and out.lengths[0] <= 4
    assert out.tokens.dtype == np.int32 and out.mask.dtype == np.int32 and out.truncated.dtype == bool
    # every row stops at once: the loop exits early and the rest is padding
    first = tuple(sorted({int(x) for x in free[:, 0]}))
    out = _gen(config, params, prompts, greedy=True, eos_ids=first)
    assert np.all(out.lengths == 1) and not out.truncated.any()
    assert np.all(out.tokens[:, 1:] == PAD) and np.all(out.mask[:, 1:] == 0)


def test_max_new_tokens_one(hf_model, prompts, greedy_free):
    _, config, params = hf_model
    out = _gen(config, params, prompts, greedy=True, max_new_tokens=1)
    assert out.tokens.shape == (len(prompts), 1)
    np.testing.assert_array_equal(out.tokens[:, 0], greedy_free.tokens[:, 0])
    assert np.all(out.lengths == 1) and out.truncated.all()


def test_attention_segments_do_not_change_results(hf_model, prompts):
    _, config, params = hf_model
    kw = dict(temperature=1.0, top_p=0.95, num_samples=2, seed=3)
    a = _gen(config, params, prompts, attn_block=None, **kw)
    b = _gen(config, params, prompts, attn_block=3, **kw)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)


def test_end_to_end_first_token_distribution(hf_model):
    """16384 samples of one prompt (one prefill, one decode step): the first token's empirical
    distribution matches softmax(logits / T) restricted to the top-p set."""
    _, config, params = hf_model
    prompt = [3, 17, 42, 8, 60]
    g = 1 << 14
    temperature, top_p = 0.8, 0.9
    out = _gen(config, params, [prompt], num_samples=g, max_new_tokens=2, temperature=temperature, top_p=top_p)
    x = np.asarray(forward(config, params, jnp.asarray([prompt], jnp.int32)))[0, -1].astype(np.float64) / temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    keep = np.zeros_like(p, bool)
    keep[order] = (np.cumsum(p[order]) - p[order]) < top_p
    ref = np.where(keep, p, 0) / p[keep].sum()
    emp = np.bincount(out.tokens[:, 0], minlength=p.size) / g
    assert 0.5 * np.abs(emp - ref).sum() < 0.03
    assert emp[~keep].sum() == 0


def test_errors(hf_model):
    _, config, params = hf_model
    ctx = config.max_position_embeddings
    with pytest.raises(
        ValueError, match=rf"{ctx - 3} tokens.*max_new_tokens=4.*{ctx + 1}.*max_position_embeddings={ctx}"
    ):
        _gen(config, params, [[1, 2], [1] * (ctx - 3)], max_new_tokens=4)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        _gen(config, params, [[1] * (ctx + 1)], max_new_tokens=1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        _gen(config, params, [[1, config.vocab_size]])
    with pytest.raises(ValueError, match="non-empty"):
        _gen(config, params, [[1], []])
    with pytest.raises(ValueError, match="max_new_tokens"):
        _gen(config, params, [[1]], max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        _gen(config, params, [[1]], top_p=0.0)


def test_buckets_chunks_and_segments():
    got = [bucket_prompt_length(n) for n in (1, 16, 17, 25, 48, 49, 200, 257, 600, 1025)]
    assert got == [16, 16, 24, 32, 48, 64, 256, 384, 768, 1536]
    assert inference.cache_chunks(64, 128, 256, 4) == (191,)
    assert inference.cache_chunks(64, 1024, 256, 4) == (320, 256, 256, 255)
    assert inference.cache_chunks(64, 1024, 64, 4) == (320, 256, 256, 255)  # block doubled to fit 4
    assert inference.cache_chunks(16, 1, 4, 4) == (16,)
    # segments cover decode steps 1..N-1 exactly once; each step's slot lies in its segment's chunk
    for p, n, block in [(16, 10, 4), (64, 128, 64), (16, 1, 4), (32, 500, 8), (16, 7, None), (16, 3, 1)]:
        chunks = inference.cache_chunks(p, n, block, 4)
        assert sum(chunks) == p + max(n - 1, 0) and len(chunks) <= 4 and chunks[0] >= p
        segs = decode_segments(p, n, chunks)
        assert [i for lo, hi, _ in segs for i in range(lo, hi)] == list(range(1, n))
        for lo, hi, c in segs:
            start = sum(chunks[:c])
            assert all(start <= p + i - 1 < start + chunks[c] for i in range(lo, hi))


def test_bfloat16_model_samples_and_matches_its_forward(hf_model, prompts):
    """bf16 weights, activations and cache: log-probs match the bf16 training forward to bf16 precision."""
    _, config, params = hf_model
    cfg16 = dataclasses.replace(config, dtype="bfloat16", param_dtype="bfloat16")
    p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    ip = prepare_params(cfg16, p16)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(ip))
    out = _gen(cfg16, ip, prompts, temperature=1.0, num_samples=2, seed=5)
    rows = [pr for pr in prompts for _ in range(2)]
    ids, mask = _full_sequences(rows, out.tokens, out.lengths)
    logits = forward(cfg16, p16, jnp.asarray(ids), jnp.asarray(mask))
    logp = np.asarray(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1))
    ref = np.stack([logp[r, ids.shape[1] - N - 1 + np.arange(N), out.tokens[r]] for r in range(len(rows))])
    assert out.logprobs.dtype == np.float32
    err = np.abs(out.logprobs - ref)
    assert np.median(err) < 0.01 and err.max() < 0.05, (np.median(err), err.max())


def test_wide_mlp_model_takes_the_large_model_path():
    """A model whose MLP crosses the 'large model' size (XLA:CPU options, [out, in] kernels) samples
    exactly: log-probs equal the full forward, greedy tokens are its arg-max."""
    from jaxrlvr.models import ModelConfig, init_params
    from jaxrlvr.sampling.sampler import compiler_options

    cfg = ModelConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=32768,
        num_layers=1,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        rope_theta=1e4,
        max_position_embeddings=64,
        name="wide-mlp",
    )
    assert "xla_cpu_experimental_ynn_fusion_type" in compiler_options(cfg, "cpu")
    assert compiler_options(cfg, "gpu") is None
    params = jax.tree.map(lambda x: x * 4, init_params(cfg, jax.random.key(2)))
    prompts = [[1, 2, 3], [9, 8, 7, 6, 5]]
    out = _gen(cfg, params, prompts, greedy=True, max_new_tokens=6)
    ids, mask = _full_sequences(prompts, out.tokens, out.lengths)
    logits = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))[:, -7:-1]
    np.testing.assert_array_equal(out.tokens, logits.argmax(-1))
    logp = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
    np.testing.assert_allclose(out.logprobs, np.take_along_axis(logp, out.tokens[..., None], -1)[..., 0], atol=1e-4)
