"""scripts/memory_plan.py end to end on a tiny config: the real sharded train step lowered on abstract
shapes and compiled for fake CPU devices, the micro-batch search (padded rows), the packed plan by tokens per
device, the budget of a named card at JAX's memory fraction, the trainer and the paged sampler together on one
device, the JSON report, the sampler cache and a bad ``--card``. Two plans, each run once for the module."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GIB = 2**30


def _run(*args, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))} | env_extra
    cmd = [sys.executable, "scripts/memory_plan.py", "--config", "configs/dapo_baseline.py:smoke", "--json", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _plan(*args, **env_extra):
    out = _run(*args, **env_extra)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def padded_search():
    """Padded rows on (1, 2, 1) with a budget nothing fits: the whole micro-batch search."""
    return _plan("--mesh", "1,2,1", "--layout", "padded", "--budget_gib", "1e-6")


@pytest.fixture(scope="module")
def colocated():
    """Packed, one device, an H100 at the fraction of the environment: the trainer and the paged sampler."""
    return _plan("--mesh", "1,1,1", "--tokens", "256", "--card", "h100-80gb", XLA_CLIENT_MEM_FRACTION="0.5")


def test_search_goes_down_to_one_row_per_device_when_nothing_fits(padded_search):
    r = padded_search
    assert r["mesh"] == {"data": 1, "fsdp": 2, "tensor": 1}
    # the model the trainer builds from the smoke preset (2 layers, hidden 64, char vocabulary), not the bare preset
    assert r["num_params"] == 80768 and 0 < r["per_device_gib"] < 1
    assert r["budget_source"] == "--budget_gib" and not r["fits"]
    assert [t["micro_batch"] for t in r["tried"]] == [8, 4, 2]  # largest first, multiples of data x fsdp
    assert r["micro_batch"] == 2  # nothing fit: the smallest tried is reported
    gib = [t["per_device_gib"] for t in r["tried"]]
    assert gib == sorted(gib, reverse=True)  # smaller micro-batches need no more memory
    s = r["sampler"]  # 512 rows x 40 slots of K and V: 2 layers x 2 K/V heads x 16 dims, float32
    assert s["batch"] == 512 and s["tokens"] == r["seq_len"] == 40
    assert abs(s["kv_cache_total_gib"] - 512 * 40 * 2 * 2 * 2 * 16 * 4 / GIB) < 1e-3
    assert s["kv_cache_per_device_gib"] == round(s["kv_cache_total_gib"] / 2, 3)  # rows over fsdp = 2
    assert r["colocated"] is None  # the rollout phase (the paged pool) is planned on a one-device mesh only


def test_packed_plan_with_the_paged_sampler_on_one_device(colocated):
    r = colocated
    assert r["layout"] == "packed" and r["tokens_per_device"] == 256 and r["micro_batch"] == 1
    assert [t["tokens"] for t in r["tried"]] == [256] and 0 < r["per_device_gib"] < 1
    # an "80 GB" H100 reports 81,559 MiB; JAX may use the fraction set in the environment
    assert r["mem_fraction"] == 0.5 and r["mem_fraction_source"] == "XLA_CLIENT_MEM_FRACTION"
    assert r["budget_gib"] == round(81559 / 1024 * 0.5, 3) and r["budget_source"].startswith("h100-80gb")
    assert r["fits"]
    o = r["colocated"]
    page, prompt, n, g = o["page_size"], 16, 24, 4  # the smoke preset: 4 prompts of 16 tokens, 24 new, G 4
    assert r["seq_len"] == prompt + n and o["rows"] == 4 * g
    # the pool: the sampler's rule (half the free memory after the train state and the weights copy), never
    # more than every row at the cap needs (each prompt's pages + each row's own), never less than one row's
    every = o["rows"] // g * math.ceil(prompt / page) + o["rows"] * math.ceil((page + n - 1) / page)
    assert o["pool_pages_every_row"] == every and o["pool_pages_min"] == 1 + math.ceil((page - 1 + n - 1) / page)
    assert o["pool_pages"] == max(o["pool_pages_min"], min(o["pool_pages_from_free"], every)) == every
    assert o["pool_capped_by_rows"] and o["page_bytes"] == 2 * 2 * 2 * 16 * page * 4  # L x (K, V) x KV x Hd x f32
    assert abs(o["pool_gib"] - o["pool_pages"] * o["page_bytes"] / GIB) < 1e-3
    assert abs(o["free_for_sampler_gib"] - (r["budget_gib"] - o["train_state_gib"] - o["sampler_weights_gib"])) < 2e-3
    d = o["decode_round_gib"]  # the round's arguments hold the weights and the pool; the pool is donated
    assert d["arguments"] >= o["pool_gib"] + o["sampler_weights_gib"] - 2e-3 and d["aliased"] >= o["pool_gib"] - 1e-3
    assert abs(o["rollout_peak_gib"] - o["train_state_gib"] - max(d["peak"], o["prefill_gib"]["peak"])) < 2e-3
    assert o["peak_gib"] == max(o["rollout_peak_gib"], o["train_peak_gib"]) and o["fits"]


def test_bad_card_is_one_error_line():
    out = _run("--mesh", "1,1,1", "--card", "h100")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --card 'h100'") and "h100-80gb" in lines[0], out.stderr
