"""Asynchronous rollouts on 8 CPU devices, from the command line: colocated on the training mesh, and on a
sampling mesh of their own (``mesh.rollout_devices``)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from mesh_env import host_device_flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMON = (
    "--config",
    "configs/demo.py:smoke",
    "--config.train.num_steps=3",
    "--config.data.heldout=0",
    "--config.log.progress=False",
    "--config.log.tensorboard=False",
    "--config.log.plots=False",
)


def train(workdir, *extra):
    env = dict(os.environ, XLA_FLAGS=host_device_flags(8), JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, "scripts/train.py", *COMMON, "--workdir", str(workdir), *extra]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def staleness(workdir):
    return [json.loads(line)["staleness"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "extra, says",
    [
        (
            ("--config.rollout.max_staleness=1", "--config.mesh.shape=(-1,1,1)"),
            None,
        ),  # colocated: 8-way data parallel, the sampler on the same mesh
        (
            ("--config.rollout.max_staleness=1", "--config.mesh.rollout_devices=4"),
            "asynchronous rollouts on 4 devices of their own",
        ),
    ],
    ids=["colocated", "split"],
)
def test_stale_rollouts_on_eight_devices(tmp_path, extra, says):
    p = train(tmp_path / "run", *extra)
    assert p.returncode == 0, p.stderr[-3000:]
    assert staleness(tmp_path / "run") == [0.0, 1.0, 1.0]
    if says:
        assert says in p.stdout + p.stderr and "training on 4" in p.stdout + p.stderr


def test_rollout_devices_need_staleness_and_a_device_left(tmp_path):
    p = train(tmp_path / "a", "--config.rollout.max_staleness=1", "--config.mesh.rollout_devices=8")
    assert p.returncode == 2 and "leaves no device to train on" in p.stderr, p.stderr[-2000:]
    p = train(tmp_path / "b", "--config.mesh.rollout_devices=2")
    assert p.returncode == 2 and "give rollout.max_staleness >= 1" in p.stderr, p.stderr[-2000:]
