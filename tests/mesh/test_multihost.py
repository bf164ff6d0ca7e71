"""Two processes on localhost (CPU, gloo collectives) train like one process: the real ``scripts/train.py``.

Process 0 takes ``jax.distributed`` from the config, process 1 from the ``JAX_*`` environment variables;
each has 4 CPU devices and the run uses a (2, 2, 2) mesh over the 8 global devices. Each process reads its
own shard of every prompt batch (``PromptStream``; the sharding itself is unit-tested in
tests/train/test_loop.py) and verifies its share of the responses. The 2 RL steps (with the SFT warm start
and held-out evaluation of the smoke preset) must match a single-process, single-device run of the same
config, and the 2-process checkpoint must load in one process with the reference's parameters.

Bounded: every process has a timeout and is killed with the test; the coordinator listens on a free
127.0.0.1 port.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
from mesh_env import host_device_flags

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIMEOUT_S = 420
COMMON = [
    "--config",
    "configs/demo.py:smoke",
    "--config.log.tensorboard=False",
    "--config.log.plots=False",
    "--config.eval.every=2",  # periodic evaluation at the last step: 2 MATH500 problems x 2 samples
    "--config.eval.max_problems=2",
    "--config.eval.num_samples=2",
]
COMPARED = ("loss", "grad_norm", "clipfrac", "entropy", "log_ppl", "reward", "accuracy", "response_length_mean")
EVAL_KEYS = ("eval/math500/acc_at_n", "eval/math500/mean_length")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp):
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    base["JAX_PLATFORMS"] = "cpu"
    multi = [*COMMON, "--config.mesh.shape=(2,2,2)", f"--workdir={tmp / 'multi'}"]
    jobs = {
        "p0": (
            [
                *multi,
                f"--config.mesh.distributed.coordinator_address=127.0.0.1:{port}",
                "--config.mesh.distributed.num_processes=2",
                "--config.mesh.distributed.process_id=0",
            ],
            {
                "XLA_FLAGS": host_device_flags(4),
                "JAX_COORDINATOR_BIND_ADDRESS": f"127.0.0.1:{port}",
            },
        ),
        "p1": (
            multi,
            {
                "XLA_FLAGS": host_device_flags(4),
                "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": "1",
            },
        ),
        "ref": ([*COMMON, "--config.mesh.shape=(1,1,1)", f"--workdir={tmp / 'ref'}"], {}),
    }
    procs = {}
    for name, (args, env) in jobs.items():
        log = open(tmp / f"{name}.log", "w")  # closed in the finally block
        cmd = [sys.executable, str(HERE / "train_localhost.py"), *args]
        procs[name] = (subprocess.Popen(cmd, env={**base, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log)
    try:
        for p, _ in procs.values():
            p.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"multi-process run did not finish in {TIMEOUT_S} s")
    finally:
        for p, log in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    for name, (p, _) in procs.items():
        if p.returncode:
            pytest.fail(f"{name} exited with {p.returncode}:\n{(tmp / f'{name}.log').read_text()[-4000:]}")

    import jax

    from jaxrlvr.train.checkpoint import load_params

    _, params_multi = load_params(tmp / "multi")  # the 2-process checkpoint, restored in this one process
    _, params_ref = load_params(tmp / "ref")
    pairs = zip(jax.tree.leaves(params_multi), jax.tree.leaves(params_ref), strict=True)
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs]
    read = lambda name, f: (tmp / name / f).read_text()  # noqa: E731
    result = {
        "metrics": {w: [json.loads(x) for x in read(w, "metrics.jsonl").splitlines()] for w in ("multi", "ref")},
        "summary": {w: json.loads(read(w, "summary.json")) for w in ("multi", "ref")},
        "logs": {name: (tmp / f"{name}.log").read_text()[-20000:] for name in procs},
        "eval_files": sorted(p.name for p in (tmp / "multi" / "eval" / "step_000002").iterdir()),
        "param_max_diff": max(diffs),
        "param_leaves": len(diffs),
    }
    (tmp / "result.json").write_text(json.dumps(result))


@pytest.fixture(scope="session")
def runs(run_once):
    return run_once("multihost_train", _run)


def test_two_processes_form_one_runtime(runs):
    assert "jax.distributed: process 0 of 2, 4 local / 8 global devices" in runs["logs"]["p0"]
    assert runs["summary"]["multi"]["processes"] == 2
    assert "held-out accuracy" not in runs["logs"]["p1"]  # only process 0 logs (and writes files)


def test_metrics_written_once_per_step(runs):
    assert [r["step"] for r in runs["metrics"]["multi"]] == [1, 2]


def test_two_steps_match_the_single_process_run(runs):
    multi, ref = runs["metrics"]["multi"], runs["metrics"]["ref"]
    assert len(multi) == len(ref) == 2
    for m, r in zip(multi, ref, strict=True):
        for k in COMPARED:
            assert m[k] == pytest.approx(r[k], abs=1e-5, rel=1e-5), (m["step"], k, m[k], r[k])
    assert min(r["grad_norm"] for r in ref) > 1e-3  # the comparison is not vacuous
    for k in ("heldout_accuracy_before", "heldout_accuracy_after"):
        assert runs["summary"]["multi"][k] == runs["summary"]["ref"][k]


def test_periodic_evaluation_runs_on_the_mesh(runs):
    multi, ref = runs["metrics"]["multi"][-1], runs["metrics"]["ref"][-1]
    for k in EVAL_KEYS:
        assert multi[k] == ref[k], (k, multi[k], ref[k])
    assert runs["eval_files"] == ["math500.samples.jsonl", "summary.json", "summary.md"]


def test_two_process_checkpoint_loads_in_one_process(runs):
    assert runs["param_leaves"] > 5
    assert runs["param_max_diff"] <= 1e-5
