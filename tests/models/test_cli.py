"""Packaging of the command lines: console scripts in pyproject point at jaxrlvr.cli; conversion/ is CLI
wrappers only (not installed, no import cycle with jaxrlvr.models); jaxrlvr-convert dispatches."""

import importlib
import os
import pathlib
import subprocess
import sys
import tomllib

from jaxrlvr import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pyproject_scripts_and_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = project["project"]["scripts"]
    assert set(scripts) == {"jaxrlvr-train", "jaxrlvr-eval", "jaxrlvr-convert"}
    for target in scripts.values():
        module, attr = target.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), target
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == ["jaxrlvr*"]  # conversion/ stays a checkout's command-line folder


def test_no_import_cycle_and_module_cli_from_a_checkout():
    code = "import sys, jaxrlvr.models; assert not [m for m in sys.modules if m.split('.')[0] == 'conversion']"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    out = subprocess.run(
        [sys.executable, "-m", "conversion.hf_to_flax", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--hf-dir" in out.stdout


def test_convert_dispatch(tmp_path, capsys):
    assert cli.convert([]) == 2 and "hf-to-flax | flax-to-hf" in capsys.readouterr().err
    assert cli.convert(["hf-to-flax", "--hf-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint folder not found" in capsys.readouterr().err
    assert cli.convert(["flax-to-hf", "--ckpt", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no step folders in" in capsys.readouterr().err  # neither a model checkpoint nor a run


def test_train_entry_point_finds_the_configs_folder_from_anywhere(tmp_path):
    """``jaxrlvr-train`` run outside the checkout: the config file's ``from configs import ...`` resolves (the
    run then stops at the unknown override, before any compilation)."""
    site = tmp_path / "site"  # the package alone on the path, as after `pip install` (configs/ is not on it)
    site.mkdir()
    (site / "jaxrlvr").symlink_to(ROOT / "jaxrlvr")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
    config = ROOT / "configs" / "llama_revisiting.py"
    code = "import sys; from jaxrlvr.cli import train; train(['jaxrlvr-train'] + sys.argv[1:])"
    args = ["--config", f"{config}:smoke", "--config.no_such_key=1", "--workdir", str(tmp_path / "w")]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "no_such_key" in out.stderr and "ModuleNotFoundError" not in out.stderr
