"""A run's life as a user's command line sees it (issue 26): one training per workdir, SIGTERM then resume, SIGKILL
then resume without cleanup, the config history of those resumes, a full disk mid-run, and ``--help`` of every
entry point. Real subprocesses of scripts/train.py on the demo's smoke preset."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRAIN = ["scripts/train.py", "--config", "configs/demo.py:smoke", "--config.log.progress=False", "--config.sft.steps=0"]


def _start(env, *args) -> subprocess.Popen:
    """scripts/train.py on the demo's smoke preset, held as a process (``env``: the ``cli_env`` fixture)."""
    return subprocess.Popen(
        [sys.executable, *TRAIN, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _steps(workdir: pathlib.Path) -> list[int]:
    path = workdir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for_step(proc: subprocess.Popen, workdir: pathlib.Path, step: int, timeout: float = 400) -> None:
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if len(_steps(workdir)) >= step:
            return
        time.sleep(0.3)
    out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
    raise AssertionError(f"no step {step} in {workdir} (rc {proc.returncode}): {err[-2000:]}")


def test_one_writer_sigterm_sigkill_and_resume(cli_env, run_cli, tmp_path):
    wd = tmp_path / "run"
    first = _start(cli_env, f"--workdir={wd}", "--config.train.num_steps=30")  # stopped long before step 30
    try:
        _wait_for_step(first, wd, 1)
        # a second training into the same workdir: refused with one line naming the holder, nothing written
        second = run_cli(*TRAIN, f"--workdir={wd}", "--config.train.num_steps=30")
        assert second.returncode == 2, second.stderr[-2000:]
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith("error: ") and f"pid {first.pid}" in line and "in use by training" in line
        # SIGTERM: the step in progress finishes, is checkpointed, and the process says where to resume
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM, err[-2000:]
    stopped = json.loads(out[out.index("{") :])["stopped_at"]
    assert "SIGTERM received" in err and f"stopped after step {stopped} (SIGTERM)" in out
    assert _steps(wd) == list(range(1, stopped + 1)) and (wd / "checkpoints" / str(stopped)).is_dir()
    assert not (wd / ".jaxrlvr.lock").exists()  # released on the way out

    # a resume with changed keys, SIGKILLed after one more step: its lock stays behind
    last = stopped + 2
    killed = _start(cli_env, f"--workdir={wd}", f"--config.train.num_steps={last}", "--config.log.tensorboard=False")
    try:
        _wait_for_step(killed, wd, stopped + 1)
        time.sleep(1.0)  # let the step's checkpoint land (or not: resume must cope with either)
    finally:
        killed.kill()
        killed.communicate(timeout=60)
    assert (wd / ".jaxrlvr.lock").exists()
    # ... and the next run takes the stale lock over without any cleanup, and finishes: no step lost or repeated
    done = run_cli(*TRAIN, f"--workdir={wd}", f"--config.train.num_steps={last}", "--config.log.tensorboard=False")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "taking over the stale lock" in done.stdout and f"pid {killed.pid}" in done.stdout
    assert _steps(wd) == list(range(1, last + 1))
    assert json.loads((wd / "summary.json").read_text())["steps"] == last

    history = [json.loads(x) for x in (wd / "config_history.jsonl").read_text().splitlines()]
    assert [h["event"] for h in history] == ["start", "resume", "resume"]  # the refused run wrote nothing
    assert history[1]["changed"]["train.num_steps"] == [30, last]
    assert history[1]["changed"]["log.tensorboard"] == [True, False] and history[2]["changed"] == {}
    assert json.loads((wd / "config.json").read_text())["train"]["num_steps"] == last


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounts a small tmpfs (needs root)")
def test_a_full_disk_mid_run_ends_in_one_line(cli_env, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        wd = disk / "run"
        proc = _start(cli_env, f"--workdir={wd}", "--config.train.num_steps=40", "--config.checkpoint.every=1")
        try:
            _wait_for_step(proc, wd, 1)
            with open(disk / "filler", "wb") as f:  # fill the disk while the run goes on
                try:
                    while True:
                        f.write(b"\0" * (1 << 20))
                except OSError:
                    pass
            out, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
        assert proc.returncode == 1, err[-3000:]
        lines = [x for x in err.strip().splitlines() if x.strip()]
        assert lines[-1].startswith("error: ") and "No space left on device" in lines[-1], err[-3000:]
        assert "Traceback" not in err and sum(x.startswith("error:") for x in lines) == 1
        from jaxrlvr.train.checkpoint import SUMS_FILE, verify_step_dir

        complete = [p for p in (wd / "checkpoints").iterdir() if (p / SUMS_FILE).is_file()]
        assert complete and all(verify_step_dir(p) == [] for p in complete)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("entry", ["train", "evaluate", "analyze", "study", "convert", "hf_to_flax", "flax_to_hf"])
def test_every_entry_point_answers_help(entry, cli_env):
    argv = {
        "convert": ["-c", "import sys; from jaxrlvr.cli import convert; sys.exit(convert())"],
        "hf_to_flax": ["-m", "conversion.hf_to_flax"],
        "flax_to_hf": ["-m", "conversion.flax_to_hf"],
    }.get(entry, [f"scripts/{entry}.py"])
    proc = subprocess.run([sys.executable, *argv, "--help"], cwd=ROOT, env=cli_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:300]
    if entry in ("train", "study", "analyze"):
        assert "--workdir" in proc.stdout
    if entry in ("train", "evaluate", "study"):
        assert "--config" in proc.stdout
    if entry == "train":
        assert "demo.py" in proc.stdout and "presets" in proc.stdout
