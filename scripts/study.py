"""Run a replication study (a grid of named variants x seeds) and write DIR/study.html and DIR/study.json.

    python scripts/study.py --config configs/study.py:decomposing --seeds 3 --workdir runs/study_dec [--jobs N]
        [--steps N] [--variants a,b] [--smoke]

Every run is a subprocess of scripts/train.py in DIR/<variant>/seed_<S>/ (its log in train.log there), at
most --jobs at a time. A run with a summary.json is finished and not redone; an unfinished one resumes from
its checkpoint. The SFT warm start runs once per seed (DIR/_sft/seed_<S>/) and every variant of that seed
starts from its step-0 checkpoint. See docs/study.md.
"""

import argparse
import concurrent.futures
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load_study(spec: str, smoke: bool, steps: int | None):
    path, _, arg = spec.partition(":")
    path = str(pathlib.Path(path).resolve())  # the subprocesses run in the repository root
    arg = ",".join(a for a in [arg, "smoke" if smoke else "", f"steps={steps}" if steps else ""] if a)
    mod_spec = importlib.util.spec_from_file_location("_study_config", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return path, arg, module.get_config(arg)


def _train_cmd(config_path: str, preset: str, seed: int, workdir: pathlib.Path, overrides=()) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        f"--config={config_path}:{preset}",
        f"--config.seed={seed}",
        "--config.log.progress=False",
        "--config.log.tensorboard=False",
        "--config.log.plots=False",  # the study draws its own
        *overrides,
        f"--workdir={workdir}",
    ]


def _run(cmd: list[str], workdir: pathlib.Path) -> tuple[str, int, float]:
    """Runs one training subprocess unless ``workdir`` already has a summary.json: (status, rc, seconds)."""
    if (workdir / "summary.json").is_file():
        return "skipped", 0, 0.0
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(workdir / "train.log", "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    return ("done" if rc == 0 else "failed"), rc, time.time() - t0


def _run_all(jobs: list[tuple], n_parallel: int, log, start: bool = True) -> dict:
    """Runs ``(name, cmd, workdir, after)`` jobs, at most ``n_parallel`` at a time; a job starts once the job
    named ``after`` (or None) has finished well, and is reported "not started" when that one failed."""
    if not start:
        return {name: {"status": "done" if (wd / "summary.json").is_file() else "not run"} for name, _, wd, _ in jobs}
    results, pending = {}, list(jobs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=n_parallel) as pool:
        running = {}
        while pending or running:
            for job in list(pending):
                name, cmd, wd, after = job
                dep = results.get(after, {}).get("status") if after else "done"
                if dep in ("done", "skipped"):
                    running[pool.submit(_run, cmd, wd)] = name
                elif dep is not None:  # the dependency failed or was not started
                    results[name] = {"status": f"not started ({after} {dep})", "rc": None, "seconds": 0.0}
                else:
                    continue
                pending.remove(job)
            if not running:  # only jobs whose dependency is not in the grid are left
                results.update({j[0]: {"status": f"not started ({j[3]} unknown)", "rc": None} for j in pending})
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                status, rc, secs = fut.result()
                results[name] = {"status": status, "rc": rc, "seconds": round(secs, 1)}
                log(f"{name}: {status}" + (f" in {secs:.0f}s" if status != "skipped" else ""))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="configs/study.py:NAME (decomposing or revisiting)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1")
    p.add_argument("--workdir", required=True, help="study directory")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel training processes")
    p.add_argument("--steps", type=int, default=None, help="RL steps per run (default: the demo's)")
    p.add_argument("--variants", default="", help="comma-separated subset of the study's variants")
    p.add_argument("--smoke", action="store_true", help="the demo's smoke sizes (tests, CI)")
    p.add_argument("--report_only", action="store_true", help="start nothing: aggregate the finished runs")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        print(f"error: --seeds={args.seeds} and --jobs={args.jobs} must be >= 1", file=sys.stderr)
        return 2

    try:
        config_path, arg, spec = _load_study(args.config, args.smoke, args.steps)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    variants = list(spec.variants)
    if args.variants:
        chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in variants]
        if unknown:
            print(f"error: --variants {unknown} not in study {spec.name!r} ({', '.join(variants)})", file=sys.stderr)
            return 2
        variants = chosen
    seeds = list(range(args.seeds))
    out = pathlib.Path(args.workdir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    mods = ",".join(a for a in ["smoke" if spec.smoke else "", f"steps={args.steps}" if args.steps else ""] if a)

    def preset(v):
        return ",".join(a for a in [f"variant={v}", mods] if a)

    t0 = time.time()
    log = lambda m: print(f"[{time.time() - t0:6.0f}s] {m}", flush=True)  # noqa: E731
    sft = {s: out / "_sft" / f"seed_{s}" for s in seeds}
    # seed-major order: a seed's variants start as soon as its SFT warm start is done
    jobs = [(f"_sft/seed_{s}", _train_cmd(config_path, preset("sft"), s, sft[s]), sft[s], None) for s in seeds]
    for s in seeds:
        init = ["--config.sft.steps=0", f"--config.model.init_ckpt={sft[s] / 'checkpoints' / '0'}"]
        for v in variants:
            wd = out / v / f"seed_{s}"
            cmd = _train_cmd(config_path, preset(f"{spec.name}/{v}"), s, wd, init)
            jobs.append((f"{v}/seed_{s}", cmd, wd, f"_sft/seed_{s}"))
    status = _run_all(jobs, args.jobs, log, not args.report_only)
    wall = time.time() - t0

    from jaxrlvr.analysis.study import write_study

    extra = {
        "command": " ".join([os.path.basename(sys.executable), "scripts/study.py", *(argv or sys.argv[1:])]),
        "config": f"{config_path}:{arg}",
        "steps": spec.steps,
        "wall_seconds": round(wall, 1),
        "jobs": args.jobs,
        "status": dict(sorted(status.items())),
        "load_average": list(os.getloadavg()),
    }
    path = write_study(out, spec.name, variants, seeds, [dict(c) for c in spec.claims], extra)
    failed = sorted(k for k, v in status.items() if v["status"] not in ("done", "skipped", "not run"))
    summary = json.loads((out / "study.json").read_text())
    for c in summary["claims"]:
        print(f"{c['a']} {c['expect']} {c['b']} on {c['metric']}: observed {c['observed']} -> {c['verdict']}")
    print(f"study: {path} (wall {wall:.0f}s)")
    if failed:
        print(f"error: runs failed (see their train.log): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
