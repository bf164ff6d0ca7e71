"""Parity of the Flax Qwen2 against transformers' PyTorch implementation, and HF <-> Flax round trips."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_reference import left_padded, max_logit_error  # noqa: E402  (tests/models/hf_reference.py)

from jaxrlvr.models import ModelConfig, forward, load_hf_checkpoint, save_hf_checkpoint  # noqa: E402

# (heads, kv heads, tied): GQA ratios 1, 2 and 7.
CASES = [(4, 4, True), (4, 2, False), (14, 2, True)]


def make_hf_model(tmp_path, heads, kv_heads, tied, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    hd = 8
    cfg = transformers.Qwen2Config(
        vocab_size=97,
        hidden_size=heads * hd,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=128,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tied,
    )
    model = transformers.Qwen2ForCausalLM(cfg).to(dtype).eval()
    with torch.no_grad():  # random, non-trivial biases and norms (HF init sets them to 0 / 1)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    out = tmp_path / f"hf_{heads}_{kv_heads}_{int(tied)}"
    model.save_pretrained(out, safe_serialization=True)
    return model, out


@pytest.mark.parametrize("heads,kv_heads,tied", CASES)
def test_logits_match_transformers(tmp_path, heads, kv_heads, tied):
    model, path = make_hf_model(tmp_path, heads, kv_heads, tied)
    cfg, params = load_hf_checkpoint(path)
    assert cfg.num_heads == heads and cfg.num_kv_heads == kv_heads and cfg.tie_word_embeddings == tied
    rng = np.random.default_rng(1)
    ids, mask = left_padded([rng.integers(0, cfg.vocab_size, n) for n in (11, 4, 7, 1)], 11)
    got = forward(cfg, params, jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32))
    err = max_logit_error(model, got, ids, mask)
    assert err <= 1e-5, f"max |flax - torch| logit error {err:.2e} on non-padded positions"


def test_round_trip_is_bit_identical(tmp_path):
    _, path = make_hf_model(tmp_path, 4, 2, False, dtype=torch.bfloat16)
    cfg, params = load_hf_checkpoint(path, dtype=None)
    assert cfg.param_dtype == "bfloat16"
    out = save_hf_checkpoint(cfg, params, tmp_path / "back")
    from safetensors.numpy import load_file

    a, b = load_file(str(path / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k].view(np.uint16), b[k].view(np.uint16)), k
    # transformers loads what we wrote
    back = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert back.config.num_key_value_heads == 2


def test_sharded_save_and_load(tmp_path):
    model, path = make_hf_model(tmp_path, 4, 2, True)
    cfg, params = load_hf_checkpoint(path)
    out = save_hf_checkpoint(cfg, params, tmp_path / "sharded", max_shard_bytes=20_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    cfg2, params2 = load_hf_checkpoint(out)
    ids = jnp.arange(12, dtype=jnp.int32).reshape(2, 6)
    np.testing.assert_array_equal(np.asarray(forward(cfg, params, ids)), np.asarray(forward(cfg2, params2, ids)))
    back = transformers.AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        ref = model(input_ids=torch.tensor(np.asarray(ids))).logits.numpy()
        ref2 = back(input_ids=torch.tensor(np.asarray(ids))).logits.numpy()
    np.testing.assert_array_equal(ref, ref2)


def test_from_hf_config_reads_rope_parameters():
    hf = ModelConfig.preset("tiny").to_hf_config()
    theta = hf.pop("rope_theta")
    hf["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    assert ModelConfig.from_hf_config(hf).rope_theta == theta
