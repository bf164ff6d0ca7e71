"""scripts/gpu_check.py --dry-run end to end (the CPU version of the GPU readiness check, docs/gpu.md): every
part runs its real code on tiny shapes in its own subprocess and lands in one JSON report."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The in-process parts (~40 CPU-seconds, mostly XLA:CPU compilation) run in the default fixture; the
# command-line parts (scripts/memory_plan.py twice and scripts/train.py as subprocesses, ~30 CPU-seconds;
# the scripts themselves are tested in tests/mesh/test_memory_plan.py and tests/train/) in a test marked slow.
FAST_PARTS = ["env", "parity", "sampler", "update", "attention", "packed", "paged"]
CLI_PARTS = ["memory", "train"]


def _run(out_dir, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    cmd = [sys.executable, "scripts/gpu_check.py", str(out_dir), *args]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = json.loads((out_dir / "gpu_check.json").read_text())
    return p, report


def _check_all_ok(out, p, report, names):
    parts = report["parts"]
    assert list(parts) == names
    bad = {k: (v["status"], v["result"].get("error"), v.get("output_tail", "")[-800:]) for k, v in parts.items()}
    assert p.returncode == 0 and all(v["status"] == "ok" for v in parts.values()), bad
    assert report["dry_run"] and all(0 < v["wall_s"] <= v["cap_s"] for v in parts.values())
    md = (out / "gpu_check.md").read_text()
    assert all(f"| {k} | ok |" in md for k in names)
    log = (out / "gpu_check.log").read_text()  # every part's output, prefixed
    assert all(f"[{k}] checks:" in log for k in names)
    return {k: v["result"] for k, v in parts.items()}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    p, report = _run(out, "--dry-run", "--parts", ",".join(FAST_PARTS))
    return out, p, report


def test_dry_run_reports_every_part(dry_run):
    res = _check_all_ok(*dry_run, FAST_PARTS)
    assert res["env"]["backend"] == "cpu" and "jax" in res["env"]["packages"]
    par = res["parity"]
    assert par["f32_max_abs_err"] <= 1e-4 and par["greedy_identical"] and 0 < par["bf16_max_abs_err"] < 1
    sm = res["sampler"]
    assert sm["bandwidth"]["copy_GBps"] > 0 and isinstance(sm["continuous_batching"]["available"], bool)
    for r in sm["models"].values():
        # a tiny model's step is a difference of two short timings: finite, of either sign under load
        assert math.isfinite(r["decode_step_ms"]) and r["bound_ms_copy_bw"] > 0 and r["weight_bytes"] > 0
    up = res["update"]
    assert up["peak_bf16_flops_measured"] > 0 and "available" in up["packed_path"]
    for r in up["models"].values():
        assert r["tokens_per_s"] > 0 and r["mfu_measured_peak"] > 0 and r["skipped"] == 0
    att = res["attention"]  # the GPU kernel in Pallas interpret mode, against the blockwise path
    assert att["impls"]["pallas_gpu"]["max_diff_vs_blockwise"] <= 1e-4 and att["segments"] > 1
    pk = res["packed"]
    assert (
        pk["max_abs_loss_diff"] <= 1e-5
        and pk["packed_mfu"] > 0
        and pk["update_slots_per_useful_token"] < pk["padded_slots_per_useful_token"]
    )
    pg = res["paged"]  # paged vs contiguous decode: both ran, with a bandwidth-bound fraction
    assert all(pg[k]["tokens_per_s"] > 0 and pg[k]["fraction_of_bandwidth_bound"] > 0 for k in ("paged", "contiguous"))
    # the paged decode through the GPU kernel in interpret mode ran, with (nearly: bf16) the XLA path's tokens
    assert (
        pg["checks"]["kernel_ran"]
        and pg["paged_kernel"]["tokens_per_s"] > 0
        and pg["kernel_tokens_equal_fraction"] >= 0.9
    )


def test_a_failing_part_is_recorded_and_the_rest_still_run(tmp_path):
    # without --dry-run on a machine with no GPU, the sampler refuses to run; env still runs (and flags it)
    p, report = _run(tmp_path, "--parts", "sampler,env")
    parts = report["parts"]
    assert p.returncode == 1
    assert parts["sampler"]["status"] == "error" and "no accelerator" in parts["sampler"]["result"]["error"]
    assert parts["env"]["status"] == "failed" and parts["env"]["result"]["checks"]["accelerator_visible"] is False


def test_parts_past_the_budget_are_skipped(tmp_path):
    p, report = _run(tmp_path, "--dry-run", "--parts", "env,train", "--budget-s", "1")
    assert p.returncode == 1 and [v["status"] for v in report["parts"].values()] == ["skipped", "skipped"]
