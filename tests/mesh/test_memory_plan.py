"""scripts/memory_plan.py end to end on a tiny config: the real sharded train step lowered on abstract
shapes and compiled for fake CPU devices, the micro-batch search (padded rows), the packed plan by tokens per
device, the JSON report and the sampler cache."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _plan(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    cmd = [sys.executable, "scripts/memory_plan.py", "--config", "configs/dapo_baseline.py:smoke", "--json", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plan_reports_memory_micro_batch_and_fit():
    r = _plan("--mesh", "1,2,1", "--layout", "padded")
    assert r["mesh"] == {"data": 1, "fsdp": 2, "tensor": 1}
    # the model the trainer builds from the smoke preset (2 layers, hidden 64, char vocabulary), not the bare preset
    assert r["num_params"] == 80768
    assert r["micro_batch"] == r["mini_batch"] == 8 and r["fits_80gib"]  # the whole mini-batch fits
    assert 0 < r["per_device_gib"] < 1
    s = r["sampler"]  # 512 rows x 40 slots of K and V: 2 layers x 2 K/V heads x 16 dims, float32
    assert s["batch"] == 512 and s["tokens"] == r["seq_len"] == 40
    assert abs(s["kv_cache_total_gib"] - 512 * 40 * 2 * 2 * 2 * 16 * 4 / 2**30) < 1e-3
    assert s["kv_cache_per_device_gib"] == round(s["kv_cache_total_gib"] / 2, 3)  # rows over fsdp = 2


def test_search_goes_down_to_one_row_per_device_when_nothing_fits():
    r = _plan("--mesh", "1,2,1", "--layout", "padded", "--budget_gib", "0")
    assert [t["micro_batch"] for t in r["tried"]] == [8, 4, 2]  # largest first, multiples of data x fsdp
    assert r["micro_batch"] == 2  # nothing fit: the smallest tried is reported
    gib = [t["per_device_gib"] for t in r["tried"]]
    assert gib == sorted(gib, reverse=True)  # smaller micro-batches need no more memory


def test_packed_plan_by_tokens_per_device():
    r = _plan("--mesh", "1,2,1", "--tokens", "256")  # the config packs (train.packing): one row per device
    assert r["layout"] == "packed" and r["tokens_per_device"] == 256 and r["micro_batch"] == 2
    assert [t["tokens"] for t in r["tried"]] == [256] and 0 < r["per_device_gib"] < 1
