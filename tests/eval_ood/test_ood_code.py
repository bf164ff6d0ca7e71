"""HumanEval: canonical solutions pass, bad programs fail within the timeout, code extraction, Pass@k."""

import hashlib
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time

import pytest

from jaxrlvr.data.tokenizer import CharTokenizer
from jaxrlvr.eval import code

PROBLEMS = code.load_humaneval()
BY_ID = {p["task_id"]: p for p in PROBLEMS}
P0 = BY_ID["HumanEval/0"]  # has_close_elements(numbers, threshold)
GOOD = P0["canonical_solution"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_shipped_humaneval_is_the_documented_file(shared_data):
    assert len(PROBLEMS) == 164
    assert len(BY_ID) == 164
    shipped = code.HUMANEVAL_PATH.read_bytes()
    assert (
        hashlib.sha256(shipped).hexdigest()
        == hashlib.sha256((shared_data / "humaneval.jsonl").read_bytes()).hexdigest()
    )


def test_all_canonical_solutions_pass():
    start = time.monotonic()
    results = code.check_programs_detailed(PROBLEMS, [p["canonical_solution"] for p in PROBLEMS], workers=2)
    failed = [(p["task_id"], r.status, r.stderr[-300:]) for p, r in zip(PROBLEMS, results, strict=True) if not r.passed]
    assert not failed
    assert time.monotonic() - start < 90


BAD = {
    "wrong": "    return False\n",
    "exception": "    raise ValueError('no')\n",
    "syntax_error": "    return (\n",
    "hang": "    while True:\n        pass\n",
    "sleep_ignoring_sigterm": (
        "    import signal, time\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    time.sleep(60)\n"
    ),
    "memory_bomb": "    x = bytearray(16 * 1024 ** 3)\n    return True\n",
    "memory_growth": "    chunks = []\n    while True:\n        chunks.append(b' ' * 10 ** 7)\n",
    "sys_exit_0": "    import sys\n    sys.exit(0)\n",
    "os_exit_0": "    import os\n    os._exit(0)\n",
    "prints_success_then_exits": "    print('passed')\n    print('ok')\n    import os\n    os._exit(0)\n",
    "subprocess": "    import subprocess\n    subprocess.run(['true'])\n" + GOOD,
    "os_system": "    import os\n    os.system('true')\n" + GOOD,
    "os_fork": "    import os\n    os.fork()\n" + GOOD,
    "multiprocessing": ("    import multiprocessing\n    multiprocessing.Process(target=print).start()\n" + GOOD),
    "kill_parent": "    import os, signal\n    os.kill(os.getppid(), signal.SIGTERM)\n" + GOOD,
    "ctypes": "    import ctypes\n" + GOOD,
    "rmtree": "    import shutil\n    shutil.rmtree('/nonexistent-jaxrlvr-dir')\n" + GOOD,
}


def test_bad_programs_fail_within_timeout_and_evaluation_continues():
    names = list(BAD)
    # good programs interleaved with the bad ones: each bad one must not affect its neighbours
    problems = [P0] * (2 * len(names))
    completions = [c for n in names for c in (BAD[n], GOOD)]
    timeout_s = 1.5
    start = time.monotonic()
    results = code.check_programs_detailed(problems, completions, timeout_s=timeout_s, workers=2)
    elapsed = time.monotonic() - start
    for i, name in enumerate(names):
        bad, good = results[2 * i], results[2 * i + 1]
        assert not bad.passed, (name, bad)
        assert bad.wall_s < timeout_s + 1.0, (name, bad.wall_s)
        assert good.passed, (name, good)
    status = {n: results[2 * i].status for i, n in enumerate(names)}
    assert status["hang"] == status["sleep_ignoring_sigterm"] == "timeout"
    assert status["wrong"] == status["sys_exit_0"] == status["os_exit_0"] == "failed"
    assert "MemoryError" in results[2 * names.index("memory_bomb")].stderr
    assert "PermissionError" in results[2 * names.index("os_system")].stderr
    assert elapsed < 20
    assert code.check_programs([P0], [GOOD]) == [True]  # the evaluator is still fine


def test_files_outside_the_workdir_are_protected_by_the_guard(tmp_path):
    # the fallback path: no namespaces, the in-process guard only
    keep = tmp_path / "keep.txt"
    keep.write_text("keep")
    attempts = [
        f"    import os\n    os.remove({str(keep)!r})\n",
        f"    import os\n    os.rename({str(keep)!r}, {str(tmp_path / 'moved.txt')!r})\n",
        f"    open({str(keep)!r}, 'w').write('gone')\n",
        f"    import pathlib\n    pathlib.Path({str(keep)!r}).unlink()\n",
        f"    import pathlib\n    pathlib.Path({str(tmp_path / 'new.txt')!r}).write_text('x')\n",
        f"    import io\n    io.FileIO({str(keep)!r}, 'w').write(b'gone')\n",
        f"    import os\n    os.link({str(keep)!r}, 'link.txt')\n    open('link.txt', 'w').write('gone')\n",
        f"    import os\n    os.mkdir({str(tmp_path / 'made')!r})\n",
    ]
    results = code.check_programs_detailed([P0] * len(attempts), [a + GOOD for a in attempts], isolation="guard")
    assert not any(r.passed for r in results)
    assert all(r.isolation == "guard" for r in results)
    assert all("PermissionError" in r.stderr for r in results), [r.stderr[-200:] for r in results]
    assert keep.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
    # inside its own temporary directory a program may create and delete files
    local = "    open('scratch.txt', 'w').write('x')\n    import os\n    os.remove('scratch.txt')\n" + GOOD
    assert code.check_programs([P0, P0], [local, local], isolation="guard") == [True, True]
    assert code.check_programs([P0], [local]) == [True]  # and in the default mode


def test_environment_is_minimal_and_output_is_truncated(monkeypatch):
    monkeypatch.setenv("JAXRLVR_TEST_SECRET", "hunter2")
    env_probe = (
        "    import os\n    assert 'JAXRLVR_TEST_SECRET' not in os.environ, sorted(os.environ)\n"
        "    assert not any('hunter2' in v for v in os.environ.values())\n" + GOOD
    )
    chatty = "    print('x' * 100000)\n" + GOOD
    env_result, chatty_result = code.check_programs_detailed([P0, P0], [env_probe, chatty])
    assert env_result.passed, env_result
    assert chatty_result.passed
    assert len(chatty_result.stdout) < 2100 and "truncated" in chatty_result.stdout


# ---------------------------------------------------------------------------------------------------------
# Forged passes: the verdict comes from a checker process the program cannot reach; only plain values cross.

_FORGERIES = {
    # walks back to the harness frame, looks for anything like a pass token, prints it and exits 0
    "frame_walk_exit_0": (
        "    import sys, os\n"
        "    f = sys._getframe()\n"
        "    while f is not None:\n"
        "        for v in list(f.f_locals.values()) + list(f.f_globals.values()):\n"
        "            if isinstance(v, str) and len(v) == 32:\n"
        "                print(v)\n"
        "                print('\\n' + v + '\\n')\n"
        "        f = f.f_back\n"
        "    sys.stdout.flush()\n"
        "    os._exit(0)\n"
    ),
    "always_equal": (
        "    class Yes:\n"
        "        def __eq__(self, other):\n"
        "            return True\n"
        "        def __ne__(self, other):\n"
        "            return False\n"
        "        def __bool__(self):\n"
        "            return True\n"
        "    return Yes()\n"
    ),
    "bool_subclass": "    class B(int):\n        def __eq__(self, o):\n            return True\n    return B(1)\n",
    "exit_0_at_import": "    pass\nimport os\nos._exit(0)\n",
    "raise_systemexit": "    raise SystemExit(0)\n",
    "generator": "    return (x for x in [])\n",
    # a hand-made pickle that would run os.system in an unrestricted unpickler
    "pickle_payload": (
        "    import pickle, sys\n"
        "    class Evil:\n"
        "        def __reduce__(self):\n"
        "            import os\n"
        "            return (os.system, ('touch /tmp/jaxrlvr-forged',))\n"
        "    return Evil()\n"
    ),
    # finds the server's send() by walking frames and answers with a pickle that names a global
    "raw_frame": (
        "    import sys\n"
        "    f = sys._getframe()\n"
        "    while f is not None and 'send' not in f.f_locals:\n"
        "        f = f.f_back\n"
        "    f.f_locals['send'](b'R', b\"cbuiltins\\neval\\n(S'True'\\ntR.\")\n"
        "    return True\n"
    ),
    "patch_the_server": (
        "    pass\nimport gc, pickle\npickle.dumps = lambda *a, **k: pickle._dumps(True, protocol=4)\n"
    ),
}


def test_forged_passes_fail_in_both_modes():
    names = list(_FORGERIES)
    completions = [_FORGERIES[n] for n in names] + [GOOD]
    for isolation in ("auto", "guard"):
        results = code.check_programs_detailed([P0] * len(completions), completions, isolation=isolation, workers=2)
        forged = {n: r.status for n, r in zip(names, results, strict=False) if r.passed}
        assert not forged, (isolation, forged)
        assert results[-1].passed, results[-1]
    assert not os.path.exists("/tmp/jaxrlvr-forged")
    r = code.check_programs_detailed([P0], [_FORGERIES["raw_frame"]])[0]
    assert r.status == "failed" and "not a plain value" in r.detail


def test_answer_key_and_killing_the_evaluator_fail_in_both_modes():
    # issue 26: a wrong completion that runs the benchmark's own canonical solution, found through sys.path or
    # the checkout; one that re-imports posix (past the guard) and kills the evaluating process
    data_dirs = [str(pathlib.Path(code.__file__).parent / "data")] + [
        os.path.join(p, "jaxrlvr", "eval", "data") for p in sys.path if p
    ]
    answer_key = (
        "    import json, os\n"
        f"    for base in {data_dirs!r}:\n"
        "        try:\n"
        "            rows = [json.loads(x) for x in open(os.path.join(base, 'humaneval.jsonl'))]\n"
        "        except OSError:\n"
        "            continue\n"
        "        ns = {}\n"
        "        row = [r for r in rows if r['entry_point'] == 'has_close_elements'][0]\n"
        "        exec(row['prompt'] + row['canonical_solution'], ns)\n"
        "        return ns['has_close_elements'](numbers, threshold)\n"
        "    return None\n"
    )
    kill = f"    import sys\n    del sys.modules['posix']\n    import posix\n    posix.kill({os.getpid()}, 9)\n"
    sources = f"    return open({str(pathlib.Path(code.__file__))!r}).read() + open('/etc/passwd').read()\n"
    modes = ["guard"] + (["namespace"] if code.isolation_mode() == "namespace" else [])
    if code.sandbox.landlock_abi() < 6 and os.geteuid() != 0:
        pytest.skip("guard mode without Landlock >= 6 as a non-root user cannot stop these (docs/ood_eval.md)")
    for isolation in modes:
        results = code.check_programs_detailed([P0] * 3, [answer_key, kill, sources], isolation=isolation)
        assert [r.status for r in results] == ["failed"] * 3, (isolation, [r.stderr[-300:] for r in results])
    assert code.check_programs([P0], [GOOD]) == [True]  # this process was not killed


def test_results_are_compared_by_value():
    # what compared equal in the original harness still does: numpy values, subclasses of builtin types
    pytest.importorskip("numpy")
    body = "any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])"
    honest = [
        f"    import numpy as np\n    return np.bool_({body})\n",
        f"    import numpy as np\n    return np.array({body})\n",
        f"    class B(int):\n        pass\n    return B({body})\n",
    ]
    assert code.check_programs([P0] * len(honest), honest) == [True] * len(honest)


# ---------------------------------------------------------------------------------------------------------
# Isolation


def _pids_with_cmdline(marker: bytes) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if marker in f.read():
                        out.append(int(d))
            except OSError:
                pass
    return out


def _daemon(marker: str) -> str:
    # at import time, after the function: the guard is not a boundary, re-importing posix restores fork,
    # setsid and exec
    return GOOD + (
        "import sys, time\n"
        "del sys.modules['posix']\n"
        "import posix\n"
        "try:\n"
        "    if posix.fork() == 0:\n"
        "        posix.setsid()\n"
        "        if posix.fork() == 0:\n"
        "            try:\n"
        f"                posix.execv('/bin/sleep', ['sleep', {marker!r}])\n"
        "            finally:\n"
        "                posix._exit(0)\n"
        "        posix._exit(0)\n"
        "except OSError as e:\n"
        "    print('NOFORK', e)\n"
        "time.sleep(0.3)\n"
    )


@pytest.mark.skipif(not os.path.isdir("/proc") or not os.path.exists("/bin/sleep"), reason="needs /proc, /bin/sleep")
def test_no_process_outlives_a_run():
    modes = ["guard"] + (["namespace"] if code.isolation_mode() == "namespace" else [])
    for isolation in modes:
        marker = f"{time.time() % 1000:.6f}9"
        result = code.check_programs_detailed([P0], [_daemon(marker)], isolation=isolation)[0]
        assert result.passed, result
        # RLIMIT_NPROC does not bind root: the daemon started (Landlock denies running /bin/sleep)
        if isolation == "guard" and os.geteuid() == 0 and not code.sandbox.landlock_abi():
            assert "NOFORK" not in result.stdout
        time.sleep(0.2)
        assert _pids_with_cmdline(b"sleep\0" + marker.encode()) == [], isolation


NAMESPACES = code.isolation_mode() == "namespace"


@pytest.mark.skipif(
    not NAMESPACES,
    reason="`unshare` namespaces are not usable on this machine: "
    + str(code.sandbox._MODE_CACHE.get(sys.executable, ("", (), ""))[2]),
)
def test_namespace_isolation_stops_escapes(tmp_path):
    import socket

    outside = pathlib.Path(tempfile.mkdtemp(dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    try:
        targets = []
        for d in (tmp_path, outside):
            (d / "keep.txt").write_text("keep")
            targets.append(d)
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.setblocking(False)
        port = server.getsockname()[1]
        attacks = []
        posix = "    import sys\n    del sys.modules['posix']\n    import posix\n"
        for d in targets:
            keep = str(d / "keep.txt")
            attacks += [
                f"    import _io\n    _io.open({keep!r}, 'w').write('gone')\n",
                f"    import io\n    io.FileIO({keep!r}, 'w').write(b'gone')\n",
                posix + f"    posix.unlink({keep!r})\n",
                posix + f"    posix.link({keep!r}, 'l')\n    open('l', 'w').write('gone')\n",
                posix + f"    posix.mkdir({str(d / 'made')!r})\n",
            ]
        attacks.append(
            "    import sys\n    del sys.modules['_socket']\n    del sys.modules['socket']\n    import _socket\n"
            f"    s = _socket.socket()\n    s.connect(('127.0.0.1', {port}))\n    s.send(b'x')\n"
        )
        results = code.check_programs_detailed([P0] * len(attacks), [a + GOOD for a in attacks], workers=2)
        assert all(r.isolation == "namespace" for r in results)
        assert not any(r.passed for r in results), [r.stderr[-200:] for r in results if r.passed]
        for d in targets:
            assert (d / "keep.txt").read_text() == "keep"
            assert sorted(os.listdir(d)) == ["keep.txt"]
        with pytest.raises(BlockingIOError):
            server.accept()
        server.close()
    finally:
        shutil.rmtree(outside)


@pytest.mark.skipif(not NAMESPACES, reason="`unshare` namespaces are not usable on this machine")
def test_namespace_isolation_without_mount_setattr():
    # kernels before 5.12 remount every mount point read-only one by one: the probe must still pass
    prefix = code.sandbox._MODE_CACHE[sys.executable][1]
    assert code.sandbox._probe(prefix, sys.executable, remount_each=True) == ""


def test_isolation_choice_and_root_warning(caplog, monkeypatch):
    assert code.isolation_mode() in ("namespace", "guard")
    # a machine without unshare: detection falls back to the guard, and says why when namespaces are asked for
    monkeypatch.setattr(code.sandbox, "_NAMESPACE_PREFIXES", (("jaxrlvr-no-such-unshare", "--"),))
    monkeypatch.setattr(code.sandbox, "_MODE_CACHE", {})
    assert code.isolation_mode() == "guard"
    with pytest.raises(RuntimeError, match="not available here: jaxrlvr-no-such-unshare: .*not found"):
        code.check_programs([P0], [GOOD], isolation="namespace")
    assert code.check_programs_detailed([P0], [GOOD])[0].isolation == "guard"
    monkeypatch.undo()
    with pytest.raises(ValueError, match="isolation"):
        code.check_programs([P0], [GOOD], isolation="docker")
    if not NAMESPACES:
        with pytest.raises(RuntimeError, match="not available"):
            code.check_programs([P0], [GOOD], isolation="namespace")
    if os.geteuid() == 0 and code.sandbox.landlock_abi() < 6:  # with Landlock the kernel guards files and signals
        code.sandbox._WARNED_ROOT = False
        with caplog.at_level("WARNING", logger="jaxrlvr.eval.sandbox"):
            assert code.check_programs([P0], [GOOD], isolation="guard") == [True]
        assert "as root without operating-system isolation" in caplog.text


def test_stop_sequences_and_completion_style():
    assert code.STOP_SEQUENCES == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    body = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    for tail in (
        "\ndef main():\n    pass\n",
        "\nif __name__ == '__main__':\n    main()\n",
        "\nprint(has_close_elements([1.0], 0.5))\n",
        "\n# tests\nassert False\n",
        "\nclass Foo:\n    pass\n",
        "\n```\nThat is the code.\n",
    ):
        assert code.extract_completion(P0, body + tail, style="completion").rstrip("\n") == body.rstrip("\n")
    assert code.truncate_at_stop("abc\nprint(1)\ndef f(): pass") == "abc"


CHAT_FULL = """Here is the solution:

```python
from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for b in numbers[i + 1:]:
            if abs(a - b) < threshold:
                return True
    return False


print(has_close_elements([1.0, 2.0], 0.5))
assert has_close_elements([1.0, 1.1], 0.5) is False  # a wrong example of the model's own

if __name__ == "__main__":
    import doctest
    doctest.testmod()
```

Example usage:

```python
print(has_close_elements([1.0, 2.8, 3.0], 0.3))
```
"""


def test_chat_style_extraction_and_scoring():
    problems = [P0] * 6
    responses = [
        CHAT_FULL,
        "```python\n" + P0["canonical_solution"] + "```",  # only the body, indented
        "```\nreturn any(abs(a - b) < threshold\n"
        "           for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```",
        "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold "
        "for i, a in enumerate(numbers) for b in numbers[i + 1:])\n\nThat's it.",  # no fence, whole function
        "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```",  # wrong
        "I cannot solve this.",  # nothing to run
    ]
    completion = code.extract_completion(P0, CHAT_FULL, style="chat")
    assert "print(" not in completion and "__main__" not in completion and "assert" not in completion
    assert code.score_code_batch(problems, responses, style="chat") == [True, True, True, True, False, False]
    assert code.score_code(P0, CHAT_FULL, style="chat")
    # the helper functions of a multi-function prompt stay available
    p38 = BY_ID["HumanEval/38"]
    reply = "```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```"
    assert code.score_code(p38, reply, style="chat")


def test_build_prompt_styles():
    assert code.build_prompt(P0) == P0["prompt"]
    chat = code.build_prompt(P0, style="chat", tokenizer=CharTokenizer())
    assert chat.startswith("<|im_start|>user\n") and chat.endswith("<|im_start|>assistant\n")
    assert P0["prompt"].rstrip() in chat
    with pytest.raises(ValueError, match="tokenizer"):
        code.build_prompt(P0, style="chat")
    with pytest.raises(ValueError, match="style"):
        code.build_prompt(P0, style="fim")


def test_pass_at_k_from_sampled_completions():
    # four "samples" per problem on three problems, with 4, 1 and 0 correct
    wrong = "    return None\n"
    samples = {
        "HumanEval/0": [GOOD] * 4,
        "HumanEval/2": [BY_ID["HumanEval/2"]["canonical_solution"], wrong, wrong, "    while True: pass\n"],
        "HumanEval/4": [wrong, "    raise RuntimeError\n", "    import sys\n    sys.exit(0)\n", wrong],
    }
    problems = [BY_ID[t] for t, comps in samples.items() for _ in comps]
    completions = [c for comps in samples.values() for c in comps]
    passed = code.check_programs(problems, completions, timeout_s=1.0, workers=2)
    counts = [sum(passed[4 * i : 4 * i + 4]) for i in range(3)]
    assert counts == [4, 1, 0]
    pass1 = sum(pass_at_k(4, c, 1) for c in counts) / 3
    pass2 = sum(pass_at_k(4, c, 2) for c in counts) / 3
    assert pass1 == pytest.approx(sum(passed) / len(passed))  # pass@1 is the mean accuracy
    assert pass2 == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # 1 - C(3,2)/C(4,2) = 0.5 for c = 1


def test_input_validation():
    with pytest.raises(ValueError, match="completions"):
        code.check_programs([P0, P0], [GOOD])
    with pytest.raises(ValueError, match="entry_point"):
        code.check_programs([{"prompt": "", "test": ""}], [""])
    with pytest.raises(ValueError, match="workers"):
        code.execute_programs(["pass"], workers=0)
