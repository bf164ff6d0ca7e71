"""Continuous batching (``sampling.continuous``) on the random Hugging Face Qwen2 of conftest.py: the rows
equal the static loop's whatever the slot count, the scheduling order or the cache chunking; finished rows
leave the batch; the logits-processor hook; per-row PRNG steps. Tiny shapes, compilations shared."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr.sampling import continuous, generate, paged, prepare_params, prng
from jaxrlvr.sampling.sampler import setup_call

N = 10
PAD = 0


def _np(out):
    return jax.tree.map(np.asarray, out)


EOS = 5
END = (0, 3, 9, 1, 4, 2, N + 1, 5)  # token index at which each row is forced to end (N + 1: never)


@dataclasses.dataclass(frozen=True)
class _EndAt:
    """Logits processor: row r emits EOS at token index ``end[r]`` and never before (an index beyond the
    budget: the row is truncated)."""

    end: tuple

    def __call__(self, logits, rows, steps):
        end = jnp.asarray(self.end, jnp.int32)[rows]
        is_eos = jnp.arange(logits.shape[-1])[None, :] == EOS
        logits = jnp.where(is_eos, -1e9, logits)
        return jnp.where((steps == end)[:, None], jnp.where(is_eos, 0.0, -1e9), logits)


def _assert_same(a, b, rows):
    for name in ("tokens", "mask", "lengths", "truncated"):
        np.testing.assert_array_equal(getattr(a, name)[:rows], getattr(b, name)[:rows], err_msg=name)
    np.testing.assert_allclose(a.logprobs[:rows], b.logprobs[:rows], atol=1e-5)


@pytest.fixture(scope="module")
def sampled(hf_model, prompts):
    """(params, sampler inputs, static-loop output): temperature 0.8, 2 samples per prompt, rows ending at
    ``END`` through the logits-processor hook, a KV cache of 2 chunks (rounds attend 1 or 2 of them)."""
    _, config, params = hf_model
    ip = prepare_params(config, params)
    call = dict(max_new_tokens=N, temperature=0.8, top_p=1.0, top_k=0, greedy=False, num_samples=2)
    call.update(eos_ids=(EOS,), pad_id=PAD, seed=7, attn_block=5, logits_processor=_EndAt(END))
    sampler, ids, lengths, key, eos = setup_call(config, prompts, **call)
    assert len(sampler.chunks(ids.shape[1])) == 2
    return ip, (sampler, ids, lengths, key, eos), _np(sampler(ip, ids, lengths, key, eos))


def test_logits_processor_hook(sampled, prompts):
    static = sampled[2]
    rows = len(prompts) * 2
    forced = np.asarray(END) < N
    np.testing.assert_array_equal(static.lengths[:rows][forced], np.asarray(END)[forced] + 1)
    assert all(static.tokens[r, END[r]] == EOS for r in range(rows) if forced[r])
    np.testing.assert_array_equal(static.truncated[:rows], ~forced)


@pytest.mark.parametrize(
    "slots, min_slots, permute",
    [
        (3, 8, True),  # refills while rows wait; rows scheduled in a shuffled order
        (4, 1, False),  # refills, then the draining slots compact 4 -> 2 -> 1
    ],
)
def test_rows_independent_of_slots_and_order(sampled, prompts, slots, min_slots, permute):
    ip, (sampler, ids, lengths, key, eos), static = sampled
    rows = len(prompts) * 2
    order = np.random.default_rng(0).permutation(rows).tolist() if permute else None
    out, stats = continuous.run(sampler, ip, ids, lengths, key, eos, num_slots=slots, min_slots=min_slots, order=order)
    _assert_same(_np(out), static, rows)
    assert stats.slots == slots and stats.rounds > 1
    assert stats.compactions == (2 if min_slots == 1 else 0)
    # finished rows leave: fewer slot-steps than the static loop's rows x (longest row - 1)
    assert stats.slot_steps < rows * (static.lengths[:rows].max() - 1)


def test_generate_greedy_equals_static(hf_model, prompts):
    """``generate``'s default (continuous) and ``continuous=False`` give the same greedy rows."""
    _, config, params = hf_model
    kw = dict(max_new_tokens=N, pad_id=PAD, seed=7, greedy=True, attn_block=None)
    free = _np(generate(config, params, prompts, eos_ids=(), continuous=False, **kw))
    kw["eos_ids"] = (int(free.tokens[0, 2]), int(free.tokens[3, 5]))  # rows end at varied lengths
    a = _np(generate(config, params, prompts, slots=3, **kw))
    b = _np(generate(config, params, prompts, continuous=False, **kw))
    _assert_same(a, b, len(prompts))
    assert a.tokens.shape == (len(prompts), N) and len(set(a.lengths.tolist())) > 1
    with pytest.raises(ValueError, match="slots must be >= 1, got 0"):
        generate(config, params, prompts, slots=0, **kw)


def test_order_must_be_a_permutation(sampled):
    ip, (sampler, ids, lengths, key, eos), _ = sampled
    with pytest.raises(ValueError, match="permutation of the 8 real rows"):
        continuous.run(sampler, ip, ids, lengths, key, eos, num_slots=2, order=[0, 1, 2])


def test_per_row_steps_draw_the_same_uniforms():
    key = prng.seed_key(3)
    rows = jnp.arange(5, dtype=jnp.int32)
    per_row = prng.step_uniforms(key, rows, jnp.full((5,), 4, jnp.int32), 3)
    np.testing.assert_array_equal(per_row, prng.step_uniforms(key, rows, 4, 3))
    mixed = prng.step_uniforms(key, rows, jnp.asarray([0, 1, 2, 3, 4], jnp.int32), 3)
    for r in range(5):
        np.testing.assert_array_equal(mixed[r], prng.step_uniforms(key, rows, r, 3)[r])


def test_default_slots_fit_memory(hf_model):
    _, config, _ = hf_model
    per_slot = continuous.kv_bytes_per_slot(config, 16, N)
    assert per_slot == 2 * config.num_layers * config.num_kv_heads * config.head_dim * (16 + N) * 4
    assert continuous.default_num_slots(config, 12, 16, N) == 12  # a tiny cache: every row fits
    assert continuous.default_num_slots(config, 1 << 40, 16, N) < 1 << 40


@pytest.mark.slow
def test_sharded_slots_match_one_device(tmp_path):
    """``continuous.sharded_fns`` on a (data=2, tensor=2) mesh of 4 CPU devices (slots and rows over data,
    K/V heads over tensor; refills and a compaction) gives the single-device rows (subprocess:
    tests/sampling/sharded_check.py)."""
    import json
    import os
    import pathlib
    import subprocess
    import sys

    here = pathlib.Path(__file__).resolve().parent
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(here / "sharded_check.py"), str(out)],
        env=env,
        cwd=here.parents[1],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["tokens_equal"] and res["lengths_equal"] and res["truncated_equal"], res
    assert res["logprob_max_diff"] < 1e-4
    assert res["compactions"] >= 1 and res["rounds"] > 2 and res["distinct_lengths"] > 2


@pytest.mark.parametrize(
    "kw",
    [
        # one page above the smallest pool (13): rows wait for pages and are preempted; before the oldest
        # row was protected from preemption, rows took each other's pages in turn and this run raised
        dict(pool_pages=14, page_size=2, num_slots=3, permute=True),
        dict(pool_pages=64, page_size=2, num_slots=8, min_slots=1, permute=True),  # compactions, shuffled
    ],
)
def test_paged_rows_equal_static(sampled, prompts, kw):
    """The paged sampler's rows are the static loop's whatever the pool, page size, slots or order (a row's
    tokens depend on (seed, row, position) only: not on its slot, its pages or a restart)."""
    ip, (sampler, ids, lengths, key, eos), static = sampled
    rows = len(prompts) * 2
    kw = dict(kw)
    if kw.pop("permute", False):
        kw["order"] = np.random.default_rng(1).permutation(rows).tolist()
    out, stats = paged.run(sampler, ip, ids, lengths, key, eos, **kw)
    _assert_same(_np(out), static, rows)
    assert stats.peak_pages <= kw["pool_pages"] and stats.live_slot_steps < rows * (N - 1)
    if kw["pool_pages"] == 14:
        assert stats.preemptions > 0 and stats.peak_pages == 14
    else:
        assert stats.compactions > 0 and stats.preemptions == 0
        assert stats.kv_read >= stats.kv_needed > 0


def test_paged_pool_too_small(sampled):
    ip, (sampler, ids, lengths, key, eos), _ = sampled
    with pytest.raises(ValueError, match="give it at least 7 pages"):
        paged.run(sampler, ip, ids, lengths, key, eos, pool_pages=6, page_size=4)


def test_paged_attention_matches_dense():
    """The ragged pair list reads only live pages and gives the dense formula's output."""
    from jaxrlvr.models import paged_attention as pa

    rng = np.random.default_rng(0)
    s, kv, g, hd, page = 3, 2, 2, 8, 4
    q = jnp.asarray(rng.standard_normal((s, kv, g, hd)), jnp.float32)
    k_pool, v_pool = (jnp.asarray(rng.standard_normal((kv, 12, page, hd)), jnp.float32) for _ in range(2))
    table = jnp.asarray([[0, 1, 5, 6, 7], [0, 1, 8, 9, 3], [2, 10, 11, 4, 4]], jnp.int32)  # rows 0, 1 share 0, 1
    length = jnp.asarray([18, 9, 0], jnp.int32)  # row 2 is finished (no pairs)
    count = (length + page - 1) // page
    slot, col, valid = pa.ragged_pairs(count, 10)
    np.testing.assert_array_equal(slot, [0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(col, [0, 1, 2, 3, 4, 0, 1, 2, 0, 0])
    assert int(valid.sum()) == 8
    keep = pa.pair_keep(col, valid, slot, length, page)
    assert int(keep.sum()) == 18 + 9  # each row's keys, nothing else
    got = pa.paged_attention(q, k_pool, v_pool, table[slot, col], slot, keep)
    want = pa.reference_paged_attention(q, k_pool, v_pool, table, length)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [paged.pair_bucket(x) for x in (1, 9, 17, 100, 1000)] == [8, 10, 20, 112, 1024]
