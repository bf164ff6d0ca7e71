"""The paged sampler's memory plan (``sharding.paged_sampler_memory``): XLA's compiled analysis of a real
decode round on abstract shapes holds the page pool and the weights."""

from jaxrlvr import sharding
from jaxrlvr.models import ModelConfig


def test_paged_sampler_memory_counts_the_pool():
    cfg = ModelConfig(
        num_layers=2, hidden_size=32, intermediate_size=64, num_heads=4, num_kv_heads=2, head_dim=8,
        vocab_size=96, max_position_embeddings=128, rope_theta=1e4, name="t",
    )  # fmt: skip
    m = sharding.paged_sampler_memory(
        cfg, pool_pages=100, page_size=16, slots=8, rows=16, prompt_len=16, max_new_tokens=32
    )
    assert m["pool"] == 2 * 2 * 2 * 100 * 16 * 8 * 4  # layers x (k, v) x KV heads x pages x page x Hd x f32
    assert m["arguments"] >= m["pool"] + m["weights"] and m["aliased"] >= m["pool"]  # the pool is donated
    assert m["peak"] == m["arguments"] + m["outputs"] - m["aliased"] + m["temp"] > m["pool"]
