"""configs/eval.py presets, EvalConfig validation, checkpoint loading errors."""

import importlib.util
import pathlib

import pytest

from jaxrlvr.eval import EvalConfig, load_eval_tokenizer, load_model

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _config_module():
    spec = importlib.util.spec_from_file_location("eval_config", ROOT / "configs" / "eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_presets_and_conversion():
    mod = _config_module()
    c = mod.get_config()
    e = EvalConfig.from_mapping(c)
    assert (e.num_samples, e.temperature, e.top_p) == (8, 0.6, 0.95)
    assert e.benchmarks == ("math500",) and e.template is None and e.max_problems is None and e.data_dir is None
    c64 = EvalConfig.from_mapping(mod.get_config("n64"))
    assert (c64.num_samples, c64.temperature, c64.top_p) == (64, 1.0, 1.0)
    g = EvalConfig.from_mapping(mod.get_config("greedy"))
    assert g.greedy and g.num_samples == 1
    s = EvalConfig.from_mapping(mod.get_config("n64,smoke"))
    assert s.benchmarks == ("aime24",) and s.max_problems == 2 and s.num_samples == 2
    with pytest.raises(ValueError, match="unknown eval preset"):
        mod.get_config("fast")
    c = mod.get_config()
    with pytest.raises(AttributeError):
        c.no_such_key = 1  # locked
    c.benchmarks = "math500, aime24,"
    assert EvalConfig.from_mapping(c).benchmarks == ("math500", "aime24")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"benchmarks": ()}, "empty"),
        ({"num_samples": 0}, "num_samples"),
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": -1.0}, "temperature"),
        ({"max_problems": 0}, "max_problems"),
        ({"verifier_timeout_s": 0}, "verifier_timeout_s"),
    ],
)
def test_eval_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kwargs)


def test_load_model_and_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises((FileNotFoundError, RuntimeError)):
        load_model(empty)  # neither an HF folder nor a run checkpoint
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_eval_tokenizer("", empty)
    assert load_eval_tokenizer("char", None).vocab_size > 10
