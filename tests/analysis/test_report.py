"""Report generation on a synthetic run directory (fast) and through scripts/analyze.py."""

import importlib.util
import json
import pathlib

import numpy as np

from jaxrlvr.analysis import ReportOptions, analyze_run, dump_numbers, write_report

from .synthetic import make_dump, make_run

REPO = pathlib.Path(__file__).resolve().parents[2]
FIGURES = {
    "curves.png",
    "entropy_pos_neg.png",
    "positional_entropy.png",
    "ppl_histograms.png",
    "probability_shift.png",
    "calibration.png",
    "dump_metrics.png",
}


def _analyze_script():
    spec = importlib.util.spec_from_file_location("analyze_script", REPO / "scripts" / "analyze.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dump_numbers_on_synthetic_dump():
    n = dump_numbers(make_dump(5))
    assert n["step"] == 5 and 0 < n["accuracy"] < 1
    assert n["entropy_pos"] < n["entropy_neg"]
    assert n["mean_shift_pos"] > 0 > n["mean_shift_neg"]
    assert 0 < n["small_shift_share"] < 1
    assert (
        n["quality_any"] > 0
        and abs(
            sum(
                n[f"category_{c}"]
                for c in ("formal_reasoning", "logical_structuring", "metacognitive", "semantic_support")
            )
            - 1
        )
        < 1e-9
    )
    assert 0 <= n["auroc"] <= 1 and 0 < n["self_bleu"] <= 1


def test_report_from_synthetic_run(tmp_path):
    wd = make_run(tmp_path / "run", steps=60, dump_every=15, tau=10.0, eval_steps=(15, 30, 45, 60))
    path = write_report(wd)
    out = wd / "analysis"
    assert path == out / "report.html"
    for name in FIGURES:
        assert (out / name).stat().st_size > 5000, name
        assert f"src='{name}'" in path.read_text()
    data = json.loads((out / "analysis.json").read_text())
    s = data["summary"]
    # tau = 10: the plateau starts some 20-30 steps in
    assert 15 <= s["plateau_start_step"] <= 35
    assert [d["step"] for d in data["per_dump"]] == [15, 30, 45, 60]
    assert s["pooled_dumps"] == "15, 30, 45, 60" and 0 <= s["pooled_auroc"] <= 1
    # entropy falls while the benchmark scores rise: negative rank correlation
    assert data["correlations"]["math500"]["rho"] < 0
    assert data["correlations"]["aime24"]["n"] == 4
    html = path.read_text()
    assert "Spearman" in html and "plateau" in html and "Rollout dumps" in html


def test_report_options_and_metrics_only_run(tmp_path):
    wd = make_run(tmp_path / "run", steps=40, dump_every=10)
    a = analyze_run(wd, ReportOptions(max_dumps=2, pool_last=1, num_bins=10))
    assert [int(d["step"]) for d in a.per_dump] == [10, 40] and a.pooled_steps == [40]
    assert a.pool.profile("all")[0].shape == (10,)
    # a run without dumps still gets its curves
    for p in (wd / "rollouts").iterdir():
        p.unlink()
    path = write_report(wd, tmp_path / "elsewhere")
    assert sorted(json.loads((tmp_path / "elsewhere" / "analysis.json").read_text())["figures"]) == [
        "curves.png",
        "entropy_pos_neg.png",
    ]
    assert path.parent == tmp_path / "elsewhere"


def test_analyze_script(tmp_path, capsys):
    wd = make_run(tmp_path / "run", steps=30, dump_every=30)
    mod = _analyze_script()
    assert mod.main(["--workdir", str(wd), "--pool_last", "1", "--diversity_unit", "char"]) == 0
    assert "report:" in capsys.readouterr().out
    assert (wd / "analysis" / "report.html").is_file()
    assert mod.main(["--workdir", str(tmp_path / "missing")]) == 2
    assert np.isfinite(json.loads((wd / "analysis" / "analysis.json").read_text())["per_dump"][0]["distinct_2"])
