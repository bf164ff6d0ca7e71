"""The workdir lock (jaxrlvr.runs_lock) on its own: a live holder refuses, a dead one or an expired lease of
another host is taken over with a warning. The command-line behaviour is tests/cli/test_runs_cli.py."""

import json
import time

import pytest

from jaxrlvr.runs_lock import LOCK_NAME, WorkdirLock, WorkdirLocked, read_lock


def _write(folder, **info):
    folder.mkdir(exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps(info))


def test_held_dead_and_expired_locks(tmp_path):
    lines = []
    with WorkdirLock(tmp_path / "a", what="training", log=lines.append):
        assert read_lock(tmp_path / "a")["what"] == "training"
        with pytest.raises(WorkdirLocked, match=r"in use by training on host .* pid \d+"):
            WorkdirLock(tmp_path / "a").acquire()
    assert not (tmp_path / "a" / LOCK_NAME).exists() and lines == []
    # a holder on another host with a live lease: refused; with an expired lease: taken over
    _write(tmp_path / "b", host="elsewhere", pid=1, started=time.time(), lease_until=time.time() + 60)
    with pytest.raises(WorkdirLocked, match="host elsewhere pid 1"):
        WorkdirLock(tmp_path / "b").acquire()
    _write(tmp_path / "b", host="elsewhere", pid=1, started=time.time(), lease_until=time.time() - 1)
    with WorkdirLock(tmp_path / "b", log=lines.append):
        pass
    # a holder on this host that is gone (no flock held, its pid not running): taken over
    import socket

    _write(tmp_path / "c", host=socket.gethostname(), pid=2**22 + 7, proc_start="1", started=time.time())
    with WorkdirLock(tmp_path / "c", log=lines.append):
        pass
    assert len(lines) == 2 and all(x.startswith("warning: taking over the stale lock") for x in lines)


def test_an_unwritable_folder_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cannot write to"):
        WorkdirLock(tmp_path / "file" / "run").acquire()
