"""Conversion CLI round trips, strictness of the key map, bad inputs, parameter counts."""

import json
import math

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conversion import flax_to_hf, hf_to_flax
from jaxrlvr.models import (
    CheckpointError,
    ModelConfig,
    abstract_params,
    init_params,
    load_hf_checkpoint,
    save_hf_checkpoint,
)

NANO = ModelConfig.preset("nano")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    save_hf_checkpoint(NANO, init_params(NANO, jax.random.key(3)), path)
    return path


@pytest.mark.parametrize(
    "name,expected",
    [("qwen2.5-0.5b", 494_032_768), ("qwen2.5-1.5b", 1_543_714_304), ("qwen2.5-7b", 7_615_616_512)],
)
def test_parameter_counts_match_transformers(name, expected):
    cfg = ModelConfig.preset(name)
    shapes = abstract_params(cfg)  # abstract: allocates nothing
    assert sum(math.prod(x.shape) for x in jax.tree.leaves(shapes)) == expected
    assert cfg.num_params() == expected


def test_presets_have_the_real_hyperparameters():
    assert ModelConfig.preset("qwen2.5-7b").vocab_size == 152064
    assert not ModelConfig.preset("qwen2.5-math-7b").tie_word_embeddings
    assert ModelConfig.preset("qwen2.5-math-1.5b").rope_theta == 1e4
    assert ModelConfig.preset("qwen2.5-3b").tie_word_embeddings
    with pytest.raises(ValueError, match="unknown model preset 'qwen3'"):
        ModelConfig.preset("qwen3")


def test_real_config_json_files(shared_data):
    for name, preset in [
        ("Qwen2.5-0.5B", "qwen2.5-0.5b"),
        ("Qwen2.5-7B", "qwen2.5-7b"),
        ("Qwen2.5-Math-1.5B", "qwen2.5-math-1.5b"),
    ]:
        hf = json.loads((shared_data / "qwen2.5" / "configs" / name / "config.json").read_text())
        got = ModelConfig.from_hf_config(hf)
        want = ModelConfig.preset(preset)
        for f in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "rope_theta",
            "tie_word_embeddings",
        ):
            assert getattr(got, f) == getattr(want, f), (name, f)


def test_cli_round_trip_is_bit_identical(hf_dir, tmp_path):
    assert hf_to_flax.main(["--hf-dir", str(hf_dir), "--out", str(tmp_path / "flax")]) == 0
    assert flax_to_hf.main(["--ckpt", str(tmp_path / "flax"), "--out", str(tmp_path / "hf2")]) == 0
    a, b = (
        load_file(str(hf_dir / "model.safetensors")),
        load_file(str(tmp_path / "hf2" / "model.safetensors")),
    )
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def _copy(hf_dir, dst, tensors=None, config=None):
    dst.mkdir()
    (dst / "config.json").write_text(json.dumps(config or json.loads((hf_dir / "config.json").read_text())))
    save_file(
        tensors if tensors is not None else load_file(str(hf_dir / "model.safetensors")),
        str(dst / "model.safetensors"),
        metadata={"format": "pt"},
    )
    return dst


def test_folder_without_config_json(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_hf_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_hf_checkpoint(tmp_path / "nope")


def test_truncated_safetensors(hf_dir, tmp_path):
    d = _copy(hf_dir, tmp_path / "trunc")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_hf_checkpoint(d)


def test_wrong_shape_missing_and_extra_tensors(hf_dir, tmp_path):
    t = load_file(str(hf_dir / "model.safetensors"))
    bad = dict(t)
    bad["model.layers.1.mlp.up_proj.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.mlp\.up_proj\.weight.*shape \(3, 3\)"):
        load_hf_checkpoint(_copy(hf_dir, tmp_path / "shape", bad))
    missing = {k: v for k, v in t.items() if k != "model.layers.0.self_attn.k_proj.bias"}
    with pytest.raises(CheckpointError, match=r"missing tensors.*model\.layers\.0\.self_attn\.k_proj\.bias"):
        load_hf_checkpoint(_copy(hf_dir, tmp_path / "missing", missing))
    extra = dict(t, **{"model.layers.9.extra.weight": np.zeros((2,), np.float32)})
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'model\.layers\.9\.extra\.weight'"):
        load_hf_checkpoint(_copy(hf_dir, tmp_path / "extra", extra))
    ints = dict(t, **{"model.norm.weight": np.zeros((NANO.hidden_size,), np.int32)})
    with pytest.raises(CheckpointError, match=r"'model\.norm\.weight'.*dtype int32"):
        load_hf_checkpoint(_copy(hf_dir, tmp_path / "ints", ints))


def test_unsupported_architecture(hf_dir, tmp_path):
    cfg = json.loads((hf_dir / "config.json").read_text())
    cfg.update(architectures=["MistralForCausalLM"], model_type="mistral")
    with pytest.raises(ValueError, match="unsupported architecture.*mistral"):
        load_hf_checkpoint(_copy(hf_dir, tmp_path / "mistral", config=cfg))


def test_cli_reports_errors(tmp_path, capsys):
    assert hf_to_flax.main(["--hf-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint folder not found" in capsys.readouterr().err


def test_dtype_conversion_and_config(hf_dir):
    cfg, params = load_hf_checkpoint(hf_dir, dtype="bfloat16")
    assert cfg.param_dtype == "bfloat16"
    assert all(x.dtype.name == "bfloat16" for x in jax.tree.leaves(params))
