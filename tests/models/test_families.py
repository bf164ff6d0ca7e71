"""Llama 3 and Qwen3 against transformers: random tiny models of each family (2 layers, GQA 4 / 2 heads),
logits on a left-padded ragged batch, greedy sampling against ``generate``, bit-identical HF -> Flax -> HF
round trips through the conversion CLIs with sharded safetensors, and config reading / presets.

One model per family (module-scoped), so each compiled function is built once."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_reference import hf_greedy, left_padded, max_logit_error  # noqa: E402  (tests/models/hf_reference.py)
from safetensors.numpy import load_file  # noqa: E402

from conversion import flax_to_hf, hf_to_flax  # noqa: E402
from jaxrlvr.models import (  # noqa: E402
    ModelConfig,
    RopeScaling,
    abstract_params,
    forward,
    load_hf_checkpoint,
    param_logical_axes,
)
from jaxrlvr.sampling import generate  # noqa: E402

VOCAB, N_NEW, PAD = 96, 8, 0
# Llama 3.1's rope scaling shrunk to a tiny context: with head_dim 16 and theta 1e4 the wavelengths (6.3 to
# ~19000) fall in all three bands (kept < 8 <= interpolated <= 32 < divided by the factor).
LLAMA_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}


def _hf_config(family):
    common = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
    )
    if family == "llama":  # untied like Llama-3.1-8B; head_dim 16 given explicitly (hidden / heads = 8)
        return transformers.LlamaConfig(
            **common, head_dim=16, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=LLAMA_ROPE
        )
    # Qwen3: tied like 0.6B-4B, explicit head_dim != hidden / heads (q projects 32 -> 4 x 16)
    return transformers.Qwen3Config(**common, head_dim=16, tie_word_embeddings=True, rope_theta=10000.0)


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def family(request, tmp_path_factory):
    """(name, torch model, HF folder with 2 safetensors shards, ModelConfig, params)."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(_hf_config(request.param)).eval()
    with torch.no_grad():  # non-trivial norms (q/k norms included); sharper logits than the default init
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
        model.get_output_embeddings().weight.mul_(4.0)
    path = tmp_path_factory.mktemp(f"hf_{request.param}")
    model.save_pretrained(path, safe_serialization=True, max_shard_size="20KB")
    assert (path / "model.safetensors.index.json").is_file()
    config, params = load_hf_checkpoint(path)
    return request.param, model, path, config, params


def test_config_read_from_the_hf_folder(family):
    name, model, _, cfg, params = family
    assert cfg.model_type == name and cfg.head_dim == 16 and cfg.num_kv_heads == 2
    if name == "llama":
        assert cfg.rope_scaling == RopeScaling(8.0, 1.0, 4.0, 32) and not cfg.qk_norm
        assert not cfg.attention_bias and not cfg.tie_word_embeddings
    else:
        assert cfg.qk_norm and cfg.rope_scaling is None and not cfg.attention_bias and cfg.tie_word_embeddings
        # the q/k norm scales are replicated by the sharding rules' catch-all, like every other norm
        assert param_logical_axes(cfg)["layers"]["attn"]["q_norm"]["scale"] == ("layers", "norm")
    assert cfg.num_params() == model.num_parameters()


def test_logits_match_transformers(family):
    _, model, _, cfg, params = family
    rng = np.random.default_rng(1)
    ids, mask = left_padded([rng.integers(1, VOCAB, n) for n in (40, 7, 23, 1)], 40)
    got = forward(cfg, params, jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32))
    err = max_logit_error(model, got, ids, mask)
    assert err <= 1e-5, f"max |flax - torch| logit error {err:.2e} on non-padded positions"


def test_greedy_sampling_matches_generate(family):
    _, model, _, cfg, params = family
    rng = np.random.default_rng(2)
    prompts = [rng.integers(1, VOCAB, n).tolist() for n in (5, 12, 1, 8)]
    out = generate(cfg, params, prompts, max_new_tokens=N_NEW, greedy=True, eos_ids=(), pad_id=PAD, seed=0)
    np.testing.assert_array_equal(np.asarray(out.tokens), hf_greedy(model, prompts, N_NEW, pad=PAD))


def test_cli_round_trip_is_bit_identical(family, tmp_path):
    """HF (sharded) -> jaxrlvr checkpoint -> HF (sharded again): every tensor identical, same config."""
    name, model, path, cfg, _ = family
    assert hf_to_flax.main(["--hf-dir", str(path), "--out", str(tmp_path / "flax")]) == 0
    args = ["--ckpt", str(tmp_path / "flax"), "--out", str(tmp_path / "hf"), "--max-shard-gib", str(20_000 / 2**30)]
    assert flax_to_hf.main(args) == 0
    index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())

    def tensors(folder, files):
        out = {}
        for f in sorted(set(files)):
            out.update(load_file(str(folder / f)))
        return out

    src_index = json.loads((path / "model.safetensors.index.json").read_text())
    a = tensors(path, src_index["weight_map"].values())
    b = tensors(tmp_path / "hf", index["weight_map"].values())
    a.pop("lm_head.weight", None) if cfg.tie_word_embeddings else None  # a tied head is not a tensor of ours
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert type(back) is type(model)
    assert back.config.rope_parameters == model.config.rope_parameters
    assert ModelConfig.from_hf_config(back.config.to_dict()) == cfg


# ---------------------------------------------------------------------------------------------- configs
def _llama_hf_json(**changes):
    hf = ModelConfig.preset("llama-3.1-8b").to_hf_config()
    hf.update(changes)
    return hf


def test_from_hf_config_reads_both_rope_formats():
    """transformers 5.x (rope_parameters) and 4.x (top-level rope_theta + rope_scaling) files agree."""
    want = dataclasses.replace(ModelConfig.preset("llama-3.1-8b"), name="custom")
    v5 = _llama_hf_json()
    v4 = {k: v for k, v in v5.items() if k != "rope_parameters"}
    v4["rope_scaling"] = {k: v for k, v in v5["rope_parameters"].items() if k != "rope_theta"}
    assert ModelConfig.from_hf_config(v5) == want == ModelConfig.from_hf_config(v4)
    qwen3 = dataclasses.replace(ModelConfig.preset("qwen3-4b"), name="custom")
    assert ModelConfig.from_hf_config(qwen3.to_hf_config()) == qwen3


def test_unsupported_families_and_rope_scalings_are_errors():
    with pytest.raises(ValueError, match=r"unsupported architecture: model_type='gemma'.*LlamaForCausalLM"):
        ModelConfig.from_hf_config(_llama_hf_json(model_type="gemma", architectures=["GemmaForCausalLM"]))
    with pytest.raises(ValueError, match=r"unsupported architecture.*Qwen3MoeForCausalLM"):
        ModelConfig.from_hf_config(_llama_hf_json(model_type="qwen3", architectures=["Qwen3MoeForCausalLM"]))
    yarn = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6, "original_max_position_embeddings": 32768}
    with pytest.raises(ValueError, match=r"unsupported rope type 'yarn'"):
        ModelConfig.from_hf_config(_llama_hf_json(rope_parameters=yarn))
    with pytest.raises(ValueError, match=r"mlp_bias=true"):
        ModelConfig.from_hf_config(_llama_hf_json(mlp_bias=True))
    with pytest.raises(ValueError, match=r"qwen3.*cannot be exported"):
        ModelConfig.preset("qwen3-0.6b", qk_norm=False).to_hf_config()


# transformers' own counts: ``num_parameters()`` of each preset's ``to_hf_config()`` built on the meta device.
COUNTS = {
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.1-8b-instruct": 8_030_261_248,
    "qwen3-0.6b": 596_049_920,
    "qwen3-1.7b": 1_720_574_976,
    "qwen3-4b": 4_022_468_096,
    "qwen3-8b": 8_190_735_360,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_match_transformers(name):
    cfg = ModelConfig.preset(name)
    shapes = abstract_params(cfg)  # abstract: allocates nothing
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == COUNTS[name] == cfg.num_params()
