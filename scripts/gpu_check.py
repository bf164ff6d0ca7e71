"""GPU readiness check: one command, one JSON report (docs/gpu.md).

    python scripts/gpu_check.py OUT_DIR [--dry-run] [--parts env,parity,sampler,update,memory,train]

Parts (each in its own subprocess and process group, under its own time cap; one that fails, crashes or
runs out of time is recorded and the others still run; the report is rewritten after every part):
  env      JAX / torch / driver versions, the devices, the project's packages
  parity   a random small Qwen2 against transformers on the same GPU: logits in float32 (<= 1e-4, at
           matmul precision "highest"; the default precision is reported too) and bfloat16 (reported),
           greedy generation identical in float32
  sampler  bf16 decode step of 0.5B- and 7B-shaped random models at 64 slots against the HBM-bandwidth
           bound (weights + KV bytes read per step / copy bandwidth measured in the same process)
  update   bf16 train step (f32 master params, full remat) of 0.5B- and 1.5B-shaped models: tokens/s and
           MFU against the bf16 FLOP/s of a large matmul measured in the same process
  memory   scripts/memory_plan.py of the 0.5B update compiled for the GPU against the same plan on CPU
  train    a 3-step scripts/train.py run of the dapo_baseline smoke config: exit status and wall time

Writes OUT_DIR/gpu_check.json (everything), OUT_DIR/gpu_check.md (the headline numbers, as table rows for
BENCHMARKS.md) and OUT_DIR/gpu_check.log (every part's output). Exit status 0 iff every part passed.
``--dry-run`` runs the same code on the CPU with tiny shapes (CI runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from gpu_check_parts import DRY, GPU, PARTS  # noqa: E402

# Time caps in seconds (our choice: the whole check fits 8 minutes on one H100/H200 with typical part
# times well under the caps; see docs/gpu.md). A part never gets more than the run's remaining budget
# minus RESERVE_S for each part still to run.
CAPS = {
    "env": 45,
    "parity": 75,
    "sampler": 150,
    "update": 150,
    "attention": 60,
    "packed": 150,
    "paged": 180,  # three paths (Pallas kernel, XLA, contiguous), two compilations each
    "async": 150,
    "memory": 180,  # the trainer plan, then the paged sampler's round and prefill compiled beside it (colocated)
    "train": 100,
}
BUDGET_S, RESERVE_S = 500, 20
DRY_RUN_CAP_SCALE = 3  # --dry-run: caps and budget x 3 (a loaded 2-core CI machine, not a 16-core GPU host)


def run_part(name, path, dry_run, cap_s):
    """Child process: run one part, writing its results to ``path`` as they come (so a killed part keeps
    what it finished)."""
    out: dict = {}

    def save():
        tmp = pathlib.Path(str(path) + ".tmp")
        tmp.write_text(json.dumps(out, indent=1, default=str))
        tmp.replace(path)

    fn = PARTS[name]
    kw = {"save": save} if name in ("sampler", "update", "paged") else {}
    print(f"start ({'dry run, ' if dry_run else ''}cap {cap_s:.0f} s)", flush=True)
    try:
        fn(DRY if dry_run else GPU, out, dry_run, cap_s, **kw)
    except Exception as e:  # recorded; the parent marks the part "error"
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()[-4000:]
        save()
        print(out["traceback"], flush=True)
        return 1
    save()
    print(f"checks: {json.dumps(out.get('checks'))}", flush=True)
    return 0


# ------------------------------------------------------------------------------------------- orchestration
def _status(rc, result):
    if rc == "timeout":
        return "timeout"
    if rc != 0 or "error" in result:
        return "error"
    checks = result.get("checks", {})
    return "ok" if checks and all(checks.values()) else "failed"


def _git():
    info = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(ROOT)]
        info["commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout
        info["dirty_files"] = len(dirty.splitlines())
    return info


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec) if isinstance(x, float) else str(x)


def summary_markdown(report) -> str:
    """The headline numbers as markdown (what goes into BENCHMARKS.md's GPU section, docs/gpu.md)."""
    parts = report["parts"]
    res = {k: v.get("result", {}) for k, v in parts.items()}
    env = res.get("env", {})
    dev = ", ".join(d["kind"] for d in env.get("devices", [])) or "?"
    lines = [
        f"gpu_check {'--dry-run ' if report['dry_run'] else ''}on {dev}, JAX {env.get('jax', '?')}, "
        f"{report['started_utc']}, commit {report['git'].get('commit', '?')[:10]}, {report['wall_s']:.0f} s",
        "",
        "| part | status | wall s | CPU s | cap s |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {v['status']} | {v['wall_s']:.0f} | {v.get('cpu_s', 0):.0f} | {v['cap_s']:.0f} |"
        for k, v in parts.items()
    ]
    p = res.get("parity", {})
    if "f32_max_abs_err" in p:
        lines += [
            "",
            f"Parity: f32 max |logit err| {_fmt(p['f32_max_abs_err'])} (precision highest; default precision "
            f"{_fmt(p.get('f32_default_precision_max_abs_err'))}), bf16 {_fmt(p.get('bf16_max_abs_err'))} "
            f"(mean {_fmt(p.get('bf16_mean_abs_err'))}, logit std {_fmt(p.get('logit_std'))}); "
            f"greedy f32 identical: {p.get('greedy_identical')}",
        ]
    sm = res.get("sampler", {})
    if sm.get("models"):
        bw = sm["bandwidth"]
        lines += [
            "",
            f"Sampler (bf16, {next(iter(sm['models'].values()))['rows']} slots; copy bw {bw['copy_GBps']:.0f} "
            f"GB/s, read bw {bw['read_GBps']:.0f} GB/s; continuous batching: "
            f"{'yes' if sm['continuous_batching']['available'] else 'not available'})",
            "",
            "| model | decode step | bound (copy bw) | step / bound | tokens/s | prefill |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for k, r in sm["models"].items():
            lines.append(
                f"| {k} | {r['decode_step_ms']:.2f} ms | {r['bound_ms_copy_bw']:.2f} ms | "
                f"{r['step_over_bound']:.2f}x | {r['tokens_per_s']:,.0f} | {r['prefill_s'] * 1e3:.0f} ms |"
            )
    up = res.get("update", {})
    if up.get("models"):
        lines += [
            "",
            f"Update (bf16 compute, f32 params, full remat; peak bf16 matmul measured "
            f"{_fmt(up['peak_bf16_flops_measured'] / 1e12)} TFLOP/s; packed path: "
            f"{'yes' if up['packed_path']['available'] else 'not available'})",
            "",
            "| model | rows x tokens | step | tokens/s | MFU (measured peak) | MFU (spec peak) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for k, r in up["models"].items():
            spec = "-" if r["mfu_spec_peak"] is None else f"{100 * r['mfu_spec_peak']:.1f}%"
            lines.append(
                f"| {k} | {r['rows']} x {r['seq_len']} | {r['step_s'] * 1e3:.0f} ms | {r['tokens_per_s']:,.0f} | "
                f"{100 * r['mfu_measured_peak']:.1f}% | {spec} |"
            )
    att = res.get("attention", {})
    if att.get("impls"):
        lines += [
            "",
            f"Attention, one packed row of {att['seq_len']} slots ({att['segments']} sequences), heads "
            f"{att['heads']}, {att['dtype']}, forward + backward:",
            "",
            "| implementation | time | vs blockwise | max diff vs blockwise |",
            "|---|---:|---:|---:|",
        ]
        for k, r in att["impls"].items():
            if "error" in r:
                lines.append(f"| {k} | error: {r['error'][:80]} | | |")
                continue
            lines.append(
                f"| {k} | {r['fwd_bwd_s'] * 1e3:.1f} ms | {r.get('speedup_vs_blockwise', 1.0):.2f}x | "
                f"{_fmt(r.get('max_diff_vs_blockwise'))} |"
            )
    pk = res.get("packed", {})
    if "update_speedup_vs_padded" in pk:
        mfu = (
            f"; MFU packed {100 * pk['packed_mfu']:.1f}% vs padded {100 * pk['padded_mfu']:.1f}% (measured peak)"
            if "packed_mfu" in pk
            else ""
        )
        lines += [
            "",
            f"Packed vs padded update ({pk['model']}, {pk['dtype']}, {pk['rows']} rows, mean response "
            f"{pk['response_len_mean']:.0f} of {pk['max_new_tokens']}): {pk['packed_useful_tokens_per_s']:,.0f} vs "
            f"{pk['padded_useful_tokens_per_s']:,.0f} useful tokens/s, {pk['update_speedup_vs_padded']:.2f}x{mfu}; "
            f"slots per useful token {pk['update_slots_per_useful_token']:.3f}; max loss diff "
            f"{_fmt(pk['max_abs_loss_diff'])}",
        ]
    mem = res.get("memory", {})
    if "gpu" in mem and "cpu" in mem:
        g, c = mem["gpu"], mem["cpu"]
        lines += [
            "",
            f"Memory plan ({g['model']}, micro-batch {g['micro_batch']} x {g['seq_len']} tokens): "
            f"{g['backend']} {g['per_device_gib']:.2f} GiB (temporaries {g['breakdown_gib']['temp']:.2f}) vs "
            f"{c['backend']} {c['per_device_gib']:.2f} GiB (temporaries {c['breakdown_gib']['temp']:.2f}): "
            f"{mem['gpu_over_cpu']:.2f}x",
        ]
    tr = res.get("train", {})
    if "rc" in tr:
        steps = ", ".join(f"{t:.2f}" for t in tr.get("time_step_s", []))
        lines += ["", f"End to end: `{tr['command']}`: exit {tr['rc']}, {tr['wall_s']:.0f} s, step times {steps} s"]
    return "\n".join(lines) + "\n"


def _children_cpu_s():
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _tee(stream, name, log, tail):
    for line in stream:
        text = f"[{name}] {line}"
        sys.stdout.write(text)
        sys.stdout.flush()
        log.write(text)
        log.flush()
        tail.append(line)


def orchestrate(out_dir: pathlib.Path, names, dry_run: bool, budget_s: float) -> int:
    import collections

    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "dry_run": dry_run,
        "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "argv": sys.argv[1:],
        "git": _git(),
        "budget_s": budget_s,
        "wall_s": 0.0,
        "parts": {},
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if dry_run:  # the CPU, and XLA's backend optimisations off: half the compile time; nothing is timed here
        env["JAX_PLATFORMS"] = "cpu"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    t_start = time.monotonic()
    json_path = out_dir / "gpu_check.json"
    with open(out_dir / "gpu_check.log", "a") as log, tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            left = budget_s - (time.monotonic() - t_start) - RESERVE_S * (len(names) - i - 1)
            cap = min(CAPS[name] * (DRY_RUN_CAP_SCALE if dry_run else 1), left)
            entry = {"status": "skipped", "cap_s": max(cap, 0.0), "wall_s": 0.0}
            if cap < 5:
                entry["result"] = {"error": f"no time left in the {budget_s:.0f} s budget"}
            else:
                path = pathlib.Path(tmp) / f"{name}.json"
                cmd = [sys.executable, __file__, "--part", name, "--part-out", str(path), "--cap-s", f"{cap:.0f}"]
                penv = {**env, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"} if name == "parity" else env
                t0, cpu0 = time.monotonic(), _children_cpu_s()
                proc = subprocess.Popen(
                    cmd + (["--dry-run"] if dry_run else []),
                    cwd=ROOT,
                    env=penv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,  # its own process group: a timeout ends its children too
                )
                tail = collections.deque(maxlen=40)
                th = threading.Thread(target=_tee, args=(proc.stdout, name, log, tail), daemon=True)
                th.start()
                try:
                    rc = proc.wait(timeout=cap)
                except subprocess.TimeoutExpired:
                    rc = "timeout"
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the part, or what it left behind
                proc.wait()
                th.join(timeout=5)
                result = json.loads(path.read_text()) if path.exists() else {}
                entry.update(wall_s=time.monotonic() - t0, cpu_s=_children_cpu_s() - cpu0, rc=rc, result=result)
                entry["status"] = _status(rc, result)
                if entry["status"] != "ok":
                    entry["output_tail"] = "".join(tail)[-4000:]
            report["parts"][name] = entry
            report["wall_s"] = time.monotonic() - t_start
            msg = f"== {name}: {entry['status']} ({entry['wall_s']:.0f} s of {entry['cap_s']:.0f} s)\n"
            sys.stdout.write(msg)
            log.write(msg)
            json_path.write_text(json.dumps(report, indent=1, default=str))
    md = summary_markdown(report)
    (out_dir / "gpu_check.md").write_text(md)
    print(md, flush=True)
    print(f"report: {json_path}", flush=True)
    return 0 if all(p["status"] == "ok" for p in report["parts"].values()) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?", help="where gpu_check.json / .md / .log go")
    ap.add_argument("--dry-run", action="store_true", help="the same code on the CPU with tiny shapes")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--budget-s", type=float, help=f"the whole run's time budget (default {BUDGET_S} s)")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    ap.add_argument("--part-out", help=argparse.SUPPRESS)
    ap.add_argument("--cap-s", type=float, default=60.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        return run_part(args.part, args.part_out, args.dry_run, args.cap_s)
    if not args.out_dir:
        ap.error("OUT_DIR is required")
    names = [n for n in args.parts.split(",") if n]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        ap.error(f"--parts: unknown part(s) {unknown} (known: {', '.join(PARTS)})")
    budget = args.budget_s or BUDGET_S * (DRY_RUN_CAP_SCALE if args.dry_run else 1)
    return orchestrate(pathlib.Path(args.out_dir), names, args.dry_run, budget)


if __name__ == "__main__":
    sys.exit(main())
