"""GPU-kit part ``async`` (issue 29): the step time of training at ``rollout.max_staleness`` 0 and 1, and the
overlap fraction, through ``scripts/bench_async.py`` (two ``scripts/train.py`` runs, one after the other).

GPU: a random bf16 model shaped like Qwen2.5-0.5B (``dapo_baseline.py:smoke,model=qwen2.5-0.5b``: the char
tokenizer, so the output layer is small), 16 prompts x 8 samples per step, 2 mini-batches, up to 1,024 new
tokens, 8 RL steps per run (the first 3, compiling, are left out of the median). A random model rarely
emits EOS, so its rows run to the cap: the length profile is a fixed 1,024 tokens, not the papers' long
tail (mean ~1/7 of the cap), which makes the sampler's drain, and so the gain, smaller than at the papers'
setting; the part says so in its result. ``--dry-run``: the demo's smoke preset on the CPU, 4 steps.
"""

from __future__ import annotations

import json
import sys
import tempfile

GPU_ARGS = dict(
    config="configs/dapo_baseline.py:smoke,model=qwen2.5-0.5b",
    sets=(
        "model.dtype=bfloat16",
        "train.num_steps=8",
        "sft.steps=0",
        "data.heldout=0",
        "rollout.prompts_per_step=16",
        "rollout.group_size=8",
        "train.mini_batch_prompts=8",
        "rollout.max_new_tokens=1024",
        "rollout.max_prompt_len=128",
        "log.plots=false",
    ),
)
DRY_ARGS = dict(config="configs/demo.py:smoke", sets=("train.num_steps=4", "data.heldout=0", "log.plots=false"))


def part_async(s, out: dict, dry_run: bool, cap_s: float) -> None:
    from gpu_check_parts import _require_gpu, _run_cli

    out["backend"] = _require_gpu(dry_run)
    z = DRY_ARGS if dry_run else GPU_ARGS
    with tempfile.TemporaryDirectory() as wd:
        args = ["scripts/bench_async.py", f"--config={z['config']}", f"--workdir={wd}", "--staleness=0,1", "--json"]
        args += [f"--set={x}" for x in z["sets"]]
        out["command"] = " ".join(["python", *args]).replace(wd, "DIR")
        rc, stdout, stderr, wall = _run_cli(args, timeout=max(cap_s - 10, 5))
    out.update(rc=rc, wall_s=wall)
    try:
        res = json.loads(stdout.strip().splitlines()[-1])["results"]
    except (ValueError, IndexError, KeyError):
        out["stderr_tail"] = stderr[-3000:]
        res = {}
    out["runs"] = res
    out["lengths"] = "random model: rows run to rollout.max_new_tokens, not the papers' long-tailed lengths"
    k1 = res.get("1", {})
    out["speedup_k1_vs_k0"] = k1.get("speedup_vs_k0")
    out["overlap_fraction_k1"] = k1.get("overlap_fraction_mean")
    out["checks"] = {"exit_0": rc == 0, "both_ran": {"0", "1"} <= set(res), "overlap_logged": bool(k1)}


if __name__ == "__main__":  # python scripts/gpu_check_async.py --dry-run: this part alone
    sys.path.insert(0, "scripts")
    out: dict = {}
    part_async(None, out, "--dry-run" in sys.argv, 600)
    print(json.dumps(out, indent=1, default=str))
