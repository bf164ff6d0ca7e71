"""Shared pytest configuration and fixtures.

Every test runs with ``jax_numpy_rank_promotion='raise'`` so an accidental broadcast between arrays of
different ranks is an error rather than a silent bug.
"""

import os
import pathlib

# CI has no accelerator; must happen before jax is imported.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA's CPU backend optimisations off for the tests (ours, measured): the suite is tiny configs whose time goes
# to compiling, and level 0 halves the compile time (tests/sampling/test_sampler.py 199 -> 127 s, a smoke
# preset's RL step 36 -> 17 s of compiles; loaded 2-core machine); the code XLA emits is slower, which these
# tiny programs do not notice. Inherited by the command-line subprocesses (tests/cli/conftest.py ``cli_env``);
# scripts/gpu_check.py's dry run does the same.
# Set XLA_FLAGS=--xla_backend_optimization_level=2 to test at the default level.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The folder of real data files (dapo_math_17k.jsonl, benchmarks, qwen2.5/ tokenizer): $JAXRLVR_DATA, else
# ../shared/data beside the checkout (the dev workspace).
SHARED_DATA = pathlib.Path(os.environ.get("JAXRLVR_DATA") or REPO_ROOT.parent / "shared" / "data").expanduser()


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The real-data folder (``$JAXRLVR_DATA`` or ``../shared/data``); tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real-data folder not found at {SHARED_DATA}: set JAXRLVR_DATA=/path/to/data (dapo_math_17k.jsonl, "
            "math500.jsonl, qwen2.5/ tokenizer files) to run these tests"
        )
    return SHARED_DATA
