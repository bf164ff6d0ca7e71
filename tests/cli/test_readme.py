"""README.md's commands run as printed: those that need no external files (no /models, /data, /ckpt paths,
no run that such a command would have made) run in smoke size, each workdir redirected to a temporary
folder; the documented small run on a real checkpoint is tests/cli/test_train_cli.py's ``hf_run``. Its run of
``configs/demo.py:smoke`` is also the one tests/cli/test_presets.py counts for that preset."""

import json
import pathlib

import pytest

from tests.cli.docs_commands import commands, option, replace_option

EXTERNAL = ("/models", "/data", "/ckpt")


def _needs_external_files(argv, made):
    if any(a.split("=", 1)[-1].startswith(EXTERNAL) for a in argv):
        return True
    for name in ("workdir", "config.ckpt", "ckpt"):
        v = option(argv, name)
        if v and argv[0] != "scripts/train.py" and v not in made:
            return True
    return False


def _smoke_size(argv):
    """A training command in smoke size: the ``smoke`` preset (when it has none); rollout dumps every step."""
    spec = option(argv, "config")
    if spec and "smoke" not in spec:
        argv = replace_option(argv, "config", spec + (",smoke" if ":" in spec else ":smoke"))
    if option(argv, "config.train.dump_rollouts_every"):
        argv = replace_option(argv, "config.train.dump_rollouts_every", "1")
    return argv


@pytest.mark.slow
def test_readme_commands_run_as_printed(run_cli, tmp_path):
    made, ran = {}, []
    for argv in commands("README.md"):
        if argv[0] not in ("scripts/train.py", "scripts/analyze.py", "scripts/evaluate.py"):
            continue
        if _needs_external_files(argv, made):
            continue
        workdir = option(argv, "workdir")
        if argv[0] == "scripts/train.py":
            made.setdefault(workdir, tmp_path / pathlib.Path(workdir).name)
            argv = _smoke_size(argv)
        argv = replace_option(argv, "workdir", str(made[workdir]))
        proc = run_cli(*argv)
        assert proc.returncode == 0, (argv, proc.stderr[-3000:])
        ran.append(argv[0])
    assert ran == ["scripts/train.py", "scripts/train.py", "scripts/analyze.py"]
    report = (made["runs/demo10"] / "analysis" / "report.html").read_text()
    # captions state what was measured, then the paper's claim and whether this run agrees
    assert report.count("Paper (") >= 4 and report.count("This run: ") >= 4 and "the U-shape" not in report
    assert "Glossary" in report and "cov(logp,A)" in report
    # the Eq. 4 gradient share and Eq. 6 impact sections, from the dumps (with golds) and the checkpoint
    data = json.loads((made["runs/demo10"] / "analysis" / "analysis.json").read_text())
    model = data["model_sections"]
    assert 0 <= model["grad_share_negative"] <= 1 and model["impact_positions"] > 0, model
    assert "Eq. 4" in report and "Eq. 6" in report


def test_readme_first_config_example_names_its_data():
    first = next(a for a in commands("README.md") if a[0] == "scripts/train.py")
    assert option(first, "config.data.path") and option(first, "config.model.hf_path")


def test_jaxrlvr_data_names_the_real_data_folder(run_cli, tmp_path):
    proc = run_cli("-c", "import tests.conftest as c; print(c.SHARED_DATA)", extra_env={"JAXRLVR_DATA": str(tmp_path)})
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path), proc.stderr


def test_accuracy_figure_marks_heldout_before_and_after_and_explains_the_ema():
    import matplotlib

    matplotlib.use("Agg")
    from jaxrlvr.train.plots import accuracy_figure

    recs = [{"step": s, "accuracy": a} for s, a in ((1, 0.2), (2, 0.4), (3, 0.5))]
    fig = accuracy_figure(recs, {"heldout_accuracy_before": 0.25, "heldout_accuracy_after": 0.5})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "held-out before RL: 0.250" in labels and "held-out after RL: 0.500" in labels
    assert "EMA: s_t = 0.6 s_(t-1) + 0.4 x_t" in ax.get_title()
