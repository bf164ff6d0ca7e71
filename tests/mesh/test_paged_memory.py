"""The paged sampler's memory plan (``sharding.memory``): XLA's compiled analysis of a real decode round and
prefill on abstract shapes holds the page pool and the weights; the pool's sizing rule is the sampler's; the
budgets of named cards."""

import dataclasses

import jax
import pytest

from jaxrlvr import sharding
from jaxrlvr.models import ModelConfig
from jaxrlvr.sampling import paged_sizing
from jaxrlvr.sharding import memory as sm

CFG = ModelConfig(
    num_layers=2, hidden_size=32, intermediate_size=64, num_heads=4, num_kv_heads=2, head_dim=8,
    vocab_size=96, max_position_embeddings=128, rope_theta=1e4, name="t",
)  # fmt: skip


def test_paged_sampler_memory_counts_the_pool():
    m = sharding.paged_sampler_memory(
        CFG, pool_pages=100, page_size=16, slots=8, rows=16, prompt_len=16, max_new_tokens=32, group_size=2,
        open_prompts=4,
    )  # fmt: skip
    assert m["pool"] == 2 * 2 * 2 * 100 * 16 * 8 * 4  # layers x (k, v) x KV heads x pages x page x Hd x f32
    assert m["arguments"] >= m["pool"] + m["weights"] and m["aliased"] >= m["pool"]  # the pool is donated
    assert m["peak"] == m["arguments"] + m["outputs"] - m["aliased"] + m["temp"] > m["pool"]
    assert m["prefill_peak"] > m["pool"] and m["sampler_peak"] == max(m["peak"], m["prefill_peak"])
    assert m["pairs"] == 112  # paged.pair_bucket(100) (sizes 64, 80, 96, 112, 128): a full pool's pair list


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a property of XLA:CPU")
def test_xla_cpu_holds_a_float32_copy_of_a_bf16_pool():
    """Why memory_plan reports ``xla_cpu_bf16_upcast_gib``: compiled by XLA:CPU, a bf16 sampler's round and
    prefill hold a float32 copy of the whole pool (2x its bytes) as temporaries; a float32 one does not."""
    kw = dict(pool_pages=2000, page_size=16, slots=8, rows=16, prompt_len=16, max_new_tokens=32, open_prompts=4)
    f32 = sharding.paged_sampler_memory(CFG, **kw)
    bf16 = sharding.paged_sampler_memory(dataclasses.replace(CFG, dtype="bfloat16"), **kw)
    assert f32["temp"] < f32["pool"] and f32["prefill_temp"] < f32["pool"]
    assert bf16["temp"] >= 2 * bf16["pool"] and bf16["prefill_temp"] >= 2 * bf16["pool"]


def test_pool_sizing_shared_by_sampler_and_plan():
    pb = paged_sizing.page_bytes(CFG, 16)
    assert pb == 2 * 2 * 2 * 8 * 16 * 4
    assert paged_sizing.pool_pages_from_free(CFG, 16, 10 * pb + 1) == 5  # POOL_FRACTION = 0.5 of the free bytes
    assert paged_sizing.pool_pages_from_free(CFG, 16, -pb) == 0
    # two prompts of 20 and 0 (padding) tokens, G = 3, 10 new tokens, pages of 8: 3 prompt pages + 3 rows x 3
    assert paged_sizing.pages_for_every_row([20, 0], 3, 10, 8) == 3 + 3 * 3  # 3 rows of one prompt


def test_card_budgets_and_memory_fraction():
    assert sm.mem_fraction_from_env({}) == (0.75, "JAX's default")
    assert sm.mem_fraction_from_env({"XLA_PYTHON_CLIENT_MEM_FRACTION": ".9"}) == (0.9, "XLA_PYTHON_CLIENT_MEM_FRACTION")
    assert sm.card_budget_bytes("h100-80gb", 0.75) == int(81559 * 2**20 * 0.75)
    assert sm.card_budget_bytes("tpu-v5e-16gb", 0.75) == 16 * 10**9  # no allocator fraction on a TPU
    with pytest.raises(KeyError, match="known: h100-80gb"):
        sm.card_budget_bytes("h100", 0.75)
