"""Every smoke preset of every config file runs from the command line as documented (``--config
FILE:smoke,...``; 1 RL step), in one subprocess so that compilations are shared (tests/cli/smoke_presets.py)."""

import json

import pytest

from configs import entropy_study

# every setting of configs/entropy_study.py (a new one is tested without editing this file); values for those
# that take one
VALUES = {"offpolicy": ("1", "2", "4"), "pos_adv": ("stage", "epoch", "entropy", "0.5")}
ENTROPY_SETTINGS = [
    f"{s}={v}" if s in VALUES else s for s in sorted(entropy_study.SETTINGS) for v in VALUES.get(s, ("",))
]
SPECS = (
    ["configs/demo.py:smoke", "configs/dapo_baseline.py:smoke", "configs/ppl_shaping.py:smoke"]
    + ["configs/ppl_shaping.py:smoke,inverse"]
    + [f"configs/position_shaping.py:smoke{p}" for p in ("", ",paper", ",centred", ",reverse,gamma_ablation", ",auto")]
    + [f"configs/entropy_study.py:smoke,{p}" for p in ENTROPY_SETTINGS]
    + [
        "configs/entropy_study.py:smoke,pos_adv=entropy,offpolicy=2",
        "configs/entropy_study.py:smoke,clip_higher,offpolicy=4",
    ]
    + ["configs/llama_revisiting.py:smoke"]  # the tiny Llama architecture (llama3 rope scaling, no biases)
)


@pytest.fixture(scope="module")
def results(run_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("presets")
    proc = run_cli("tests/cli/smoke_presets.py", out, *SPECS, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_smoke_preset_runs_from_the_command_line(results, spec):
    assert results[spec] == "ok"
