"""Fixtures for the command-line tests: a tiny Hugging Face checkpoint (random Qwen2 + a byte-level
tokenizer built in code; nothing is downloaded), a small math data file, and ``run_cli`` (a subprocess of a
script with one persistent compilation cache for the whole session, so later subprocesses reuse the
compilations of earlier ones)."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _byte_tokenizer(path: pathlib.Path) -> int:
    """A byte-level BPE tokenizer without merges (one token per byte) + Qwen's special tokens, saved as a
    ``transformers`` fast tokenizer; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(str(path))
    return len(fast)


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> pathlib.Path:
    """A local Hugging Face folder: config.json + model.safetensors of a random 2-layer Qwen2 (hidden 64)
    and tokenizer files, as a user's downloaded checkpoint would be."""
    from jaxrlvr.models import ModelConfig, init_params, save_hf_checkpoint

    path = tmp_path_factory.mktemp("tiny_hf")
    vocab = _byte_tokenizer(path)
    cfg = ModelConfig.preset("nano", vocab_size=vocab + (-vocab % 8), max_position_embeddings=1024)
    save_hf_checkpoint(cfg, init_params(cfg, jax.random.key(0)), path)
    hf_cfg = json.loads((path / "config.json").read_text())  # special ids, as a real Qwen folder has them
    hf_cfg.update(bos_token_id=vocab - 3, eos_token_id=vocab - 3)  # <|endoftext|>
    (path / "config.json").write_text(json.dumps(hf_cfg, indent=2))
    return path


@pytest.fixture(scope="session")
def math_file(tmp_path_factory) -> tuple[pathlib.Path, int]:
    """(a jsonl file of 12 short problems and 2 over-long ones, the number of over-long ones)."""
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows = [{"problem": f"What is {a} + {a + 3}?", "answer": str(2 * a + 3), "id": f"p{a}"} for a in range(12)]
    rows += [{"problem": "Add these: " + " + ".join(["1"] * 60), "answer": "60", "id": f"long{i}"} for i in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, 2


@pytest.fixture(scope="session")
def jit_cache(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("jit_cache")


@pytest.fixture(scope="session")
def cli_env(jit_cache) -> dict[str, str]:
    """The environment of every command-line subprocess: CPU, this checkout on ``PYTHONPATH``, and the
    session's persistent compilation cache (every compilation stored, so later subprocesses reuse it).
    ``run_cli`` uses it; a test that must hold a process (``subprocess.Popen``: signals) passes it as ``env``."""
    return dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(jit_cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        PYTHONPATH=str(ROOT),
    )


@pytest.fixture(scope="session")
def run_cli(cli_env):
    """``run_cli(*args, cwd=ROOT, extra_env=None)``: CompletedProcess of ``python ARGS`` (``cli_env``)."""

    def run(*args, cwd=ROOT, timeout=600, extra_env=None):
        return subprocess.run(
            [sys.executable, *map(str, args)],
            cwd=cwd,
            env=dict(cli_env, **(extra_env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
