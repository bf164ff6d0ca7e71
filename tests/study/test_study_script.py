"""scripts/study.py end to end: a 2-variant x 1-seed wiring check (--smoke) through the CLI, run once (module
fixture); then, with the run directories deleted, a re-run that must start nothing and rebuild every table,
verdict and figure from the results alone."""

import csv
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CMD = [sys.executable, "scripts/study.py", "--config", "configs/study.py:decomposing", "--seeds", "1", "--smoke",
       "--variants", "baseline,ppl", "--jobs", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    res = subprocess.run([*CMD, "--workdir", str(out / "runs"), "--results", str(out / "results")], cwd=REPO_ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out, res.stdout


def test_smoke_is_labelled_a_wiring_check_and_writes_every_file(smoke):
    out, stdout = smoke
    assert "wiring check" in stdout and "not evidence" in stdout
    results = out / "results"
    rows = list(csv.DictReader(open(results / "runs.csv")))
    assert [(r["study"], r["variant"], r["seed"]) for r in rows] == [("decomposing", "baseline", "0"),
                                                                     ("decomposing", "ppl", "0")]  # fmt: skip
    for col in ("accuracy_before", "accuracy_after", "entropy_initial", "entropy_final", "entropy_pos_final",
                "entropy_neg_final", "length_initial", "length_final", "clipfrac", "wall_seconds"):  # fmt: skip
        assert col in rows[0]
    assert float(rows[0]["entropy_initial"]) > 0 and float(rows[0]["wall_seconds"]) > 0
    assert all((results / "curves" / "decomposing" / f"{v}__seed_0.json.gz").is_file() for v in ("baseline", "ppl"))
    verdicts = json.loads((results / "verdicts.json").read_text())["claims"]
    assert len(verdicts) == 13 and all(c["study"] == "decomposing" for c in verdicts)
    for c in verdicts:
        assert {"paper", "quote", "section", "a", "b", "metric", "expect", "margin", "n", "estimate", "interval",
                "p", "p_holm", "verdict"} <= set(c)  # fmt: skip
    ppl = next(c for c in verdicts if (c["a"], c["b"], c["metric"]) == ("ppl", "baseline", "accuracy_after"))
    assert ppl["n"] == 1 and ppl["verdict"] == "not separable"  # one seed never decides
    assert next(c for c in verdicts if c["a"] == "ppl_inverse")["verdict"] == "not run"
    assert "ppl vs baseline on accuracy_after, expect greater" in stdout
    assert (results / "decomposing.md").is_file() and (results / "summary.md").is_file()
    assert all((results / f"decomposing_{k}.png").is_file() for k in ("entropy", "heldout_accuracy",
                                                                         "response_length_mean"))  # fmt: skip
    assert not (results / "manifest.json").exists()  # a wiring check registers nothing
    # the pilot table and the grid estimate, from the run directories (docs/study.md, "Pilots")
    runs = out / "runs"
    res = subprocess.run([sys.executable, "scripts/study_pilot.py", str(runs / "decomposing" / "baseline" / "seed_0"),
                          "--sft", str(runs / "_sft" / "seed_0"), "--variants", "2", "--seeds", "1"], cwd=REPO_ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| initial entropy >= 0.3 nats | `entropy_initial` |" in res.stdout and "grid estimate" in res.stdout


def test_results_not_run_directories_are_the_source_of_truth(smoke):
    out, _ = smoke
    results = out / "results"
    before = (results / "verdicts.json").read_text()
    shutil.rmtree(out / "runs")
    (results / "verdicts.json").unlink()
    res = subprocess.run([*CMD, "--workdir", str(out / "runs"), "--results", str(results)], cwd=REPO_ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "runs to do" not in res.stdout and not (out / "runs" / "_sft").exists()  # nothing re-run
    assert (results / "verdicts.json").read_text() == before


def test_commit_results_commits_exactly_the_results(tmp_path):
    """--commit's helper: the results and README land in one commit; another modified file stays uncommitted."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_study_script", REPO_ROOT / "scripts" / "study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, capture_output=True, text=True, check=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    (tmp_path / "other.py").write_text("a\n")
    (tmp_path / "README.md").write_text("r\n")
    git("add", ".")
    git("commit", "-qm", "init")
    res = tmp_path / "docs" / "study"
    res.mkdir(parents=True)
    (res / "runs.csv").write_text("study,variant,seed\n")
    (tmp_path / "README.md").write_text("r2\n")
    (tmp_path / "other.py").write_text("b\n")
    assert study.commit_results(tmp_path, [res, tmp_path / "README.md"], "study: x (1/2)")
    assert git("log", "-1", "--format=%s").stdout.strip() == "study: x (1/2)"
    assert sorted(git("show", "--name-only", "--format=", "HEAD").stdout.split()) == [
        "README.md",
        "docs/study/runs.csv",
    ]
    assert git("status", "--porcelain").stdout.strip() == "M other.py"
    assert not study.commit_results(tmp_path, [res], "nothing new")  # nothing to commit: no empty commit


def test_commit_refuses_results_outside_the_repository(tmp_path):
    res = subprocess.run([*CMD, "--commit", "--workdir", str(tmp_path)], cwd=REPO_ROOT, capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 2 and res.stderr.startswith("error: --commit needs the results inside"), res.stderr
