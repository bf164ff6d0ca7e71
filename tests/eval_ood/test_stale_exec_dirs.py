"""A killed evaluation leaves its ``jaxrlvr-exec-*`` folder behind; the next evaluation that runs a program
removes it (its owner process is gone) and leaves alone the folders of running evaluations and folders it
cannot attribute (jaxrlvr/eval/sandbox.py, ``_clean_stale_workdirs``)."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

_SCRIPT = """
import pathlib, tempfile
from jaxrlvr.eval import code
result = code.run_program("print(6 * 7)", isolation="guard")
assert result.passed and "42" in result.stdout, result
print(sorted(p.name for p in pathlib.Path(tempfile.gettempdir()).glob("jaxrlvr-exec-*")))
"""


def test_next_evaluation_removes_the_folders_of_killed_ones(tmp_path):
    from jaxrlvr.runs_lock import _proc_start

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a finished process: what a SIGKILLed evaluation is to the next one
    owners = {
        "jaxrlvr-exec-killed": f"{gone.pid} 1\n",
        "jaxrlvr-exec-running": f"{os.getpid()} {_proc_start(os.getpid())}\n",  # this process: alive
        "jaxrlvr-exec-unowned": None,  # no .owner (being created, or an older version's): left alone
    }
    for name, owner in owners.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "stdout.txt").write_text("left over")
        if owner is not None:
            (tmp_path / name / ".owner").write_text(owner)
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the killed one is gone, the others stay, and the run's own folder was removed when it finished
    assert proc.stdout.strip().splitlines()[-1] == str(["jaxrlvr-exec-running", "jaxrlvr-exec-unowned"])
