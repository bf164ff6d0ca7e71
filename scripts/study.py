"""Run a replication study (variants x seeds on the testbed) and write its results, verdicts and figures.

    python scripts/study.py --config configs/study.py:revisiting+decomposing --seeds 5 --workdir runs/study
        [--results docs/study] [--jobs N] [--steps N] [--variants a,b] [--commit] [--smoke] [--report_only]

Every run is a subprocess of scripts/train.py in WORKDIR/<study>/<variant>/seed_<S>/ (its log in train.log
there), at most --jobs at a time, seed by seed. The SFT warm start runs once per seed (WORKDIR/_sft/seed_<S>/)
and every variant of that seed starts from its step-0 checkpoint. As each run finishes, its runs.csv row and
curves go to RESULTS (default docs/study/); a run whose results are there is never run again: the results,
not the run directories, are the source of truth, and --report_only rebuilds every table, verdict and
figure from them alone. With --commit each finished run's results (and the regenerated report and README
line) are committed to git as the run finishes, so a study cut short keeps every finished run. The first
run records RESULTS/manifest.json (git commit, claims file and its SHA-256, start time): the claims must be
committed before the runs. --smoke is a wiring check at tiny sizes (its numbers mean nothing; results go to
WORKDIR/results). See docs/study.md.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
README_MARK = ("<!-- study-summary -->", "<!-- /study-summary -->")


def _load_studies(spec: str, smoke: bool, steps: int | None):
    """``configs/study.py:a+b`` -> (config path, {study: its ConfigDict})."""
    path, _, arg = spec.partition(":")
    path = str(pathlib.Path(path).resolve())  # the subprocesses run in the repository root
    mod_spec = importlib.util.spec_from_file_location("_study_config", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    mods = [a for a in ["smoke" if smoke else "", f"steps={steps}" if steps else ""] if a]
    names = [n for n in arg.split("+") if n] or [""]
    return path, {n: module.get_config(",".join([n, *mods])) for n in names}


def _train_cmd(config_path: str, preset: str, seed: int, workdir: pathlib.Path, overrides=()) -> list[str]:
    return [
        sys.executable, str(ROOT / "scripts" / "train.py"), f"--config={config_path}:{preset}",
        f"--config.seed={seed}", "--config.log.progress=False", "--config.log.tensorboard=False",
        "--config.log.plots=False", *overrides, f"--workdir={workdir}",
    ]  # fmt: skip


def initial_entropy(sft_dir: pathlib.Path) -> float:
    """The mean token entropy of the SFT run's RL step: the warm-started policy's own rollouts."""
    with open(sft_dir / "metrics.jsonl") as f:
        return float(json.loads(f.readline())["entropy"])


def _with_target(cmd: list[str], field: str, fraction: float, sft_dir: pathlib.Path):
    """A command built at start time with ``--config.<field>=fraction x the seed's initial entropy``."""

    def build():
        target = fraction * initial_entropy(sft_dir)
        return [*cmd[:-1], f"--config.{field}={target:.6g}", cmd[-1]]

    return build


def _run(cmd, workdir: pathlib.Path) -> tuple[str, int, float]:
    """Runs one training subprocess (``cmd`` a list, or a function returning it) unless ``workdir`` already
    has a summary.json: (status, rc, seconds)."""
    if (workdir / "summary.json").is_file():
        return "done", 0, 0.0
    cmd = cmd() if callable(cmd) else cmd
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(workdir / "train.log", "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    return ("done" if rc == 0 else "failed"), rc, time.time() - t0


def _run_all(jobs: list[tuple], n_parallel: int, log, on_done) -> dict:
    """Runs ``(name, cmd, workdir, after)`` jobs, at most ``n_parallel`` at a time, in order; a job starts
    once the job named ``after`` (or None) has finished well, and is reported "not started" when that one
    failed. ``on_done(name)`` runs after each job that finished well."""
    results, pending = {}, list(jobs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=n_parallel) as pool:
        running = {}
        while pending or running:
            for job in list(pending):
                if len(running) >= n_parallel:
                    break
                name, cmd, wd, after = job
                dep = results.get(after, {}).get("status") if after else "done"
                if dep == "done":
                    running[pool.submit(_run, cmd, wd)] = name
                elif dep is not None:
                    results[name] = {"status": f"not started ({after} {dep})", "rc": None, "seconds": 0.0}
                else:
                    continue
                pending.remove(job)
            if not running:
                results.update({j[0]: {"status": f"not started ({j[3]} unknown)", "rc": None} for j in pending})
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                status, rc, secs = fut.result()
                results[name] = {"status": status, "rc": rc, "seconds": round(secs, 1)}
                if status == "done":
                    on_done(name)
                log(f"{name}: {status}" + (f" in {secs:.0f}s" if secs else ""))
    return results


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _register(results: pathlib.Path, claims_file: str) -> dict:
    """RESULTS/manifest.json: written when the first run starts; later invocations check that the claims
    file is the registered one. Raises ValueError when the claims file is not committed or has changed."""
    if _git("status", "--porcelain", "--", claims_file).strip():
        raise ValueError(f"{claims_file} has uncommitted changes: commit the claims before running the study")
    commit = _git("rev-parse", "HEAD").strip()
    sha = hashlib.sha256(_git("show", f"{commit}:{claims_file}").encode()).hexdigest()
    path = results / "manifest.json"
    if path.is_file():
        manifest = json.loads(path.read_text())
        if manifest.get("claims_sha256") != sha:
            raise ValueError(
                f"{claims_file} differs from the registered claims (manifest {manifest.get('claims_sha256')}, "
                f"now {sha}): the claims may not change once the study has started"
            )
        return manifest
    manifest = {
        "git_commit": commit, "claims_file": claims_file, "claims_sha256": sha,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def commit_results(root: pathlib.Path, paths: list[pathlib.Path], message: str) -> bool:
    """``git add`` + ``git commit`` of exactly ``paths`` in the repository at ``root`` (other staged or
    modified files are left alone). Returns False when there was nothing to commit."""
    rel = [str(pathlib.Path(p).absolute().relative_to(root)) for p in paths if pathlib.Path(p).exists()]
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)  # noqa: E731
    added = git("add", "--", *rel)
    if added.returncode:
        raise RuntimeError(f"git add failed: {added.stderr.strip()}")
    if not git("diff", "--cached", "--quiet", "--", *rel).returncode:
        return False
    done = git("commit", "-q", "-m", message, "--", *rel)
    if done.returncode:
        raise RuntimeError(f"git commit failed: {done.stderr.strip() or done.stdout.strip()}")
    return True


def _update_readme(line: str) -> None:
    path = ROOT / "README.md"
    text = path.read_text()
    a, b = README_MARK
    new, n = re.subn(re.escape(a) + ".*?" + re.escape(b), f"{a}{line}{b}", text, flags=re.S)
    if n:
        path.write_text(new)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="configs/study.py:NAME[+NAME] (decomposing, revisiting)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..K-1")
    p.add_argument("--workdir", required=True, help="run directories (WORKDIR/<study>/<variant>/seed_<S>)")
    p.add_argument("--results", default="", help="results (default docs/study; with --smoke WORKDIR/results)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel training processes")
    p.add_argument("--steps", type=int, default=None, help="RL steps per run (default: the testbed's)")
    p.add_argument("--variants", default="", help="comma-separated subset of the variants")
    p.add_argument("--commit", action="store_true", help="git-commit each finished run's results as it finishes")
    p.add_argument("--smoke", action="store_true", help="a wiring check at tiny sizes (tests, CI)")
    p.add_argument("--report_only", action="store_true", help="start nothing: rebuild the report from RESULTS")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        print(f"error: --seeds={args.seeds} and --jobs={args.jobs} must be >= 1", file=sys.stderr)
        return 2
    seeds = list(range(args.seeds))
    out = pathlib.Path(args.workdir).absolute()
    results = pathlib.Path(args.results or (out / "results" if args.smoke else ROOT / "docs" / "study")).absolute()
    if args.commit and (args.smoke or not results.is_relative_to(ROOT)):
        print(f"error: --commit needs the results inside this repository ({ROOT}), not {results}"
              + (" (--smoke writes them under WORKDIR)" if args.smoke else ""), file=sys.stderr)  # fmt: skip
        return 2
    try:
        config_path, specs = _load_studies(args.config, args.smoke, args.steps)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    grids = {name: list(s.variants) for name, s in specs.items()}
    if args.variants:
        chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
        known = {v for vs in grids.values() for v in vs}
        unknown = [v for v in chosen if v not in known]
        if unknown:
            print(f"error: --variants {unknown} not in the studies' variants ({', '.join(sorted(known))})",
                  file=sys.stderr)  # fmt: skip
            return 2
        grids = {n: [v for v in vs if v in chosen] for n, vs in grids.items()}
    mods = ",".join(a for a in ["smoke" if args.smoke else "", f"steps={args.steps}" if args.steps else ""] if a)
    t0 = time.time()
    log = lambda m: print(f"[{time.time() - t0:6.0f}s] {m}", flush=True)  # noqa: E731
    if args.smoke:
        log("wiring check (--smoke): tiny sizes and steps; the numbers below test the plumbing, not the papers")

    from jaxrlvr.analysis.study import has_result, record_run, write_report

    sft = {s: out / "_sft" / f"seed_{s}" for s in seeds}
    per_seed, where = [], {}
    for s in seeds:  # seed by seed: a seed's variants start as soon as its SFT warm start is done
        init = ["--config.sft.steps=0", f"--config.model.init_ckpt={sft[s] / 'checkpoints' / '0'}"]
        todo = [(n, v) for n, vs in grids.items() for v in vs if not has_result(results, n, v, s)]
        if not todo:
            continue
        preset = ",".join(a for a in ["variant=sft", mods] if a)
        runs = []
        for n, v in todo:
            wd = out / n / v / f"seed_{s}"
            vp = ",".join(a for a in [f"variant={n}/{v}", mods] if a)
            cmd = _train_cmd(config_path, vp, s, wd, init)
            if v in specs[n].scaled_targets:  # built when the run starts: the seed's SFT entropy is known then
                field, frac = specs[n].scaled_targets[v], specs[n].entropy_fraction
                cmd = _with_target(cmd, field, frac, sft[s])
            runs.append((f"{n}/{v}/seed_{s}", cmd, wd, f"_sft/seed_{s}"))
            where[f"{n}/{v}/seed_{s}"] = (n, v, s, wd)
        per_seed.append(((f"_sft/seed_{s}", _train_cmd(config_path, preset, s, sft[s]), sft[s], None), runs))
    # order: SFT 0, SFT 1, seed 0's runs, SFT 2, seed 1's runs, ...: no job slot waits for a warm start
    jobs = [per_seed[0][0]] if per_seed else []
    for i, (_, runs) in enumerate(per_seed):
        if i + 1 < len(per_seed):
            jobs.append(per_seed[i + 1][0])
        jobs.extend(runs)
    claims = [dict(c, study=n) for n, s in specs.items() for c in s.claims]
    extra = {"config": args.config, "seeds": seeds, "smoke": args.smoke}
    status = {}
    if jobs and not args.report_only:
        if not args.smoke:
            claims_files = {s.claims_file for s in specs.values()}
            try:
                manifest = _register(results, claims_files.pop())
            except (ValueError, subprocess.CalledProcessError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            log(f"registered: {json.dumps(manifest)}")
        log(f"{len(where)} runs to do ({sum(1 for j in jobs if j[0].startswith('_sft'))} SFT warm starts first)")

        finished = []

        def on_done(name):
            if name in where:
                n, v, s, wd = where[name]
                record_run(results, n, v, s, wd)
                try:  # the report is rebuilt after every run, so that the committed results stay consistent
                    line = write_report(results, grids, claims, extra)["summary"]
                    if not args.smoke and results == (ROOT / "docs" / "study").absolute():
                        _update_readme(line)
                except Exception as e:  # noqa: BLE001 (a report error must not stop the grid)
                    log(f"warning: report not rebuilt after {name}: {e!r}")
                if args.commit:
                    try:
                        finished.append(name)  # ``where`` holds only this invocation's runs to do
                        msg = f"study: {name} ({len(finished)}/{len(where)})"
                        commit_results(ROOT, [results, ROOT / "README.md"], msg)
                    except RuntimeError as e:  # the results are on disk; the next commit takes them along
                        log(f"warning: results of {name} not committed: {e}")

        status = _run_all(jobs, args.jobs, log, on_done)
    wall = time.time() - t0
    report = write_report(results, grids, claims, extra)
    for c in report["claims"]:
        metric = c["metric"] + (f"/{c['metric_b']}" if c.get("metric_b") else "")
        head = f"{c['study']}: {c['a']} vs {c['b']} on {metric}, expect {c['expect']}"
        print(f"{head}: a - b = {c['estimate']:.4g} over {c['n']} seeds (p Holm {c['p_holm']:.3g}) -> {c['verdict']}")
    print(report["summary"])
    if not args.smoke and results == (ROOT / "docs" / "study").absolute():
        _update_readme(report["summary"])
    print(f"results: {results} ({report['rows']} runs; wall {wall:.0f}s)")
    if args.smoke:
        print("wiring check done: every file was written; the verdicts above are not evidence")
    failed = sorted(k for k, v in status.items() if v["status"] != "done")
    if failed:
        print(f"error: runs failed or not started (see their train.log): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
