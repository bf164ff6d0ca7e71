"""scripts/study.py end to end: a 2-variant x 1-seed study at the smoke sizes, run once (module fixture) as a
subprocess of the CLI; then a re-run that must skip every finished run."""

import json
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

CMD = [sys.executable, "scripts/study.py", "--config", "configs/study.py:decomposing", "--seeds", "1", "--smoke"]
CMD += ["--variants", "baseline,ppl", "--jobs", "2"]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    res = subprocess.run([*CMD, "--workdir", str(out)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


def test_study_json_and_html(study_dir):
    s = json.loads((study_dir / "study.json").read_text())
    assert s["study"] == "decomposing" and s["seeds"] == [0] and not s["missing"]
    assert list(s["variants"]) == ["baseline", "ppl"]
    assert {v["status"] for v in s["status"].values()} == {"done"} and "_sft/seed_0" in s["status"]
    for v in s["variants"].values():
        assert v["seeds"] == [0]
        for key in ("accuracy_before", "accuracy_after", "entropy_final", "entropy_mean", "entropy_pos",
                    "entropy_neg", "length_final", "clipfrac", "clipfrac_low", "clipfrac_high"):  # fmt: skip
            assert set(v["metrics"][key]) == {"mean", "lo", "hi", "n"}
        assert v["metrics"]["entropy_final"]["mean"] > 0
    assert s["variants"]["ppl"]["settings"]["ppl_shaping"] and not s["variants"]["baseline"]["settings"]["ppl_shaping"]
    # the variants of a seed start from that seed's SFT checkpoint: the same "before" accuracy (measured at
    # the variants' rollout settings, DAPO's top_p here, so not necessarily the SFT run's own number)
    before = [json.loads((study_dir / v / "seed_0" / "summary.json").read_text()) for v in ("baseline", "ppl")]
    assert before[0]["heldout_accuracy_before"] == before[1]["heldout_accuracy_before"]
    assert before[0]["heldout_pass_at_n_before"] == before[1]["heldout_pass_at_n_before"]
    verdicts = {c["verdict"] for c in s["claims"]}
    assert verdicts <= {"not separable at this scale", "not run"}  # one seed never separates
    html = (study_dir / "study.html").read_text()
    assert "Paper claims" in html and all((study_dir / f).is_file() for f in s["figures"]) and len(s["figures"]) == 3


def test_rerun_skips_finished_runs(study_dir):
    res = subprocess.run([*CMD, "--workdir", str(study_dir)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((study_dir / "study.json").read_text())
    assert {v["status"] for v in s["status"].values()} == {"skipped"}
