"""The candidate process of :mod:`jaxrlvr.eval.sandbox`: isolates itself, runs the untrusted program, then
serves calls of its entry point. Run as ``python -I -B _sandbox_candidate.py``; standard library only.

Frames (4-byte big-endian length + payload) on stdin (requests) and stdout (replies). The first request is a
JSON header; replies start with a tag byte: K ready, L the program raised while loading, X the harness failed
(isolation), R a result pickle, E an exception (``"Type: message"``). The program's own prints go to the
stdout file whose fd the header names.
"""

from __future__ import annotations

import sys


def _jaxrlvr_remount_each_read_only(libc, check):
    """Kernels before 5.12 (no ``mount_setattr``): remount every mount point read-only, one by one, keeping
    its other per-mount flags (a user namespace may not clear them)."""
    flag_bits = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1 << 10, "nodiratime": 1 << 11, "relatime": 1 << 21}
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    done = set()
    for fields in mounts:
        point = fields[4].encode().decode("unicode_escape").encode("latin-1")  # octal escapes such as \040
        if point in done:
            continue
        done.add(point)
        flags = 32 | 4096 | 1  # MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in fields[5].split(","):
            flags |= flag_bits.get(opt, 0)
        check(libc.mount(None, point, None, flags, None), f"remount {point!r} read-only")


def _jaxrlvr_isolate(remount_each=False, hide=()):
    import ctypes
    import os
    import struct

    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret, what):
        if ret != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    ms_rdonly, ms_nosuid, ms_nodev, ms_noexec, ms_rec, ms_private = 1, 2, 4, 8, 1 << 14, 1 << 18
    check(libc.mount(None, b"/", None, ms_rec | ms_private, None), "mount --make-rprivate /")
    attr = struct.pack("QQQQ", 1, 0, 0, 0)  # struct mount_attr {attr_set = MOUNT_ATTR_RDONLY, ...}
    if remount_each or libc.syscall(442, -100, b"/", 0x8000, attr, len(attr)) != 0:
        if not remount_each and ctypes.get_errno() != 38:  # ENOSYS: an older kernel
            check(-1, "mount_setattr(/, AT_RECURSIVE, RDONLY)")
        _jaxrlvr_remount_each_read_only(libc, check)
    check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", ms_nosuid | ms_nodev, b"size=64m,mode=1777"), "tmpfs /tmp")
    for path in ("/run", "/var/run"):
        if os.path.isdir(path) and not os.path.islink(path):
            flags = ms_rdonly | ms_nosuid | ms_nodev | ms_noexec
            check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, b"size=4k"), f"tmpfs {path}")
    _jaxrlvr_hide(hide)
    os.chdir("/tmp")
    check(libc.prctl(38, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    cap = 0
    while libc.prctl(24, cap, 0, 0, 0) == 0:  # PR_CAPBSET_DROP every capability
        cap += 1
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    check(libc.capset(struct.pack("Ii", 0x20080522, 0), bytes(24)), "capset(0)")
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL: die with unshare


def _jaxrlvr_hide(paths):
    """Namespace mode: an empty read-only tmpfs over each of ``paths`` (the package with the benchmarks' files,
    their data folders) in the candidate's private mount namespace."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    for path in paths:
        if os.path.isdir(path):
            if libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", 1 | 2 | 4 | 8, b"size=4k,mode=555") != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"tmpfs over {path}: {os.strerror(err)}")


def _jaxrlvr_landlock(view):
    """Landlock (Linux >= 5.13; unprivileged): from here on this process (and anything it starts) may read only
    the folders of ``view["read"]`` (the interpreter's standard library and site-packages, system libraries),
    list those of ``view["list"]``, read the files of ``view["files"]`` and write only below ``view["rw"]`` (its
    working directory); TCP bind / connect are refused (ABI >= 4) and so are signals to processes outside
    the sandbox (ABI >= 6). Returns the ABI used (0: Landlock is not available; nothing restricted)."""
    import ctypes
    import os
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return 0
    fs = (1 << 13) - 1  # ABI 1: execute ... make_sym
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    if abi >= 6:
        attr = struct.pack("QQQ", fs, 3, 3)  # net: bind + connect TCP; scoped: abstract sockets + signals
    elif abi >= 4:
        attr = struct.pack("QQ", fs, 3)
    else:
        attr = struct.pack("Q", fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(444, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    read_file, read_dir, execute = 4, 8, 1
    rules = [(p, execute | read_file | read_dir) for p in view["read"]]
    rules += [(p, read_dir) for p in view["list"]] + [(p, read_file) for p in view["files"]]
    rules += [(p, fs) for p in view["rw"]]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not os.path.isdir(path):
                access &= execute | read_file | 2 | (1 << 14 if abi >= 3 else 0)  # file rights only
            rule = ctypes.create_string_buffer(struct.pack("=Qi", access & fs, fd), 12)
            if libc.syscall(445, ctypes.c_int(ruleset), ctypes.c_int(1), rule, ctypes.c_uint32(0)) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
        finally:
            os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS (landlock_restrict_self needs it)
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.syscall(446, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    os.close(ruleset)
    return abi


def _jaxrlvr_drop_user(uid):
    """Guard mode as root: become the unprivileged ``uid`` (no signal reaches root's processes from it)."""
    import os

    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("could not drop to an unprivileged user")


def _jaxrlvr_guard(root):
    import _io
    import builtins
    import io
    import os
    import posix

    root = os.path.realpath(root)

    def deny(name):
        def denied(*args, **kwargs):
            raise PermissionError(f"{name} is disabled by the jaxrlvr code-execution harness")

        return denied

    def inside(path):
        if isinstance(path, int):
            return False
        try:
            p = os.path.realpath(os.fsdecode(os.fspath(path)))
        except Exception:
            return False
        return p == root or p.startswith(root + os.sep)

    def confine(name, fn, npaths):
        def confined(*args, **kwargs):
            if any(k.endswith("dir_fd") and v is not None for k, v in kwargs.items()):
                raise PermissionError(f"{name} with dir_fd is disabled by the jaxrlvr code-execution harness")
            paths = list(args[:npaths]) + [kwargs[k] for k in ("path", "src", "dst", "name") if k in kwargs]
            if not all(inside(p) for p in paths):
                raise PermissionError(f"{name} outside the working directory is disabled by the harness")
            return fn(*args, **kwargs)

        return confined

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def confine_os_open(fn):
        def guarded_open(path, flags, *args, **kwargs):
            if flags & write_flags and not inside(path):
                raise PermissionError("writing outside the working directory is disabled by the harness")
            return fn(path, flags, *args, **kwargs)

        return guarded_open

    def writes(mode):
        return isinstance(mode, str) and any(c in mode for c in "wax+")

    def confine_open(fn):
        def guarded_open(file, mode="r", *args, **kwargs):
            if writes(mode) and not inside(file):
                raise PermissionError("writing outside the working directory is disabled by the harness")
            return fn(file, mode, *args, **kwargs)

        return guarded_open

    class FileIO(_io.FileIO):
        def __init__(self, file, mode="r", *args, **kwargs):
            if writes(mode) and not inside(file):
                raise PermissionError("writing outside the working directory is disabled by the harness")
            super().__init__(file, mode, *args, **kwargs)

    denied_os = (
        "system",
        "popen",
        "fork",
        "forkpty",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "posix_spawn",
        "posix_spawnp",
        "kill",
        "killpg",
        "setsid",
        "setpgid",
        "setpgrp",
        "setuid",
        "setgid",
        "seteuid",
        "setegid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "chroot",
        "chdir",
        "fchdir",
        "chmod",
        "fchmod",
        "lchmod",
        "chown",
        "fchown",
        "lchown",
        "lchflags",
        "chflags",
        "pidfd_open",
    )
    confined_os = {
        "remove": 1,
        "unlink": 1,
        "rmdir": 1,
        "removedirs": 1,
        "rename": 2,
        "renames": 2,
        "replace": 2,
        "truncate": 1,
        "mkdir": 1,
        "makedirs": 1,
        "link": 2,
        "symlink": 2,
        "mkfifo": 1,
        "mknod": 1,
    }
    for module in (os, posix):
        for name in denied_os:
            if hasattr(module, name):
                setattr(module, name, deny(f"os.{name}"))
        for name, npaths in confined_os.items():
            if hasattr(module, name):
                setattr(module, name, confine(f"os.{name}", getattr(module, name), npaths))
        module.open = confine_os_open(module.open)
    builtins.open = io.open = _io.open = confine_open(io.open)
    io.FileIO = _io.FileIO = FileIO
    # subprocess and shutil are not imported yet (-S): subprocess cannot be (no _posixsubprocess below), and
    # shutil's removals go through the os functions confined above
    shutil = sys.modules.get("shutil")
    if shutil is not None:
        for name in ("rmtree", "move", "chown"):
            setattr(shutil, name, deny(f"shutil.{name}"))
    for module, name in (
        (sys.modules.get("_posixsubprocess"), "fork_exec"),
        (sys.modules.get("subprocess"), "_fork_exec"),
    ):
        if module is not None and hasattr(module, name):
            setattr(module, name, deny("fork_exec"))
    builtins.help = deny("help")
    for name in ("ctypes", "_ctypes", "cffi", "_posixsubprocess", "socket", "_socket"):
        sys.modules[name] = None


_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray)
_CONTAINERS = (list, tuple, set, frozenset)


def _jaxrlvr_plain(x):
    """``x`` as plain values, by value: numpy scalars and arrays (``tolist``), other numbers, and subclasses of
    the builtin types (namedtuples, ``Counter``, ...) become the builtin types, as ``==`` in the original
    harness would have compared them. Anything else is returned as is and refused by the checker. (This runs
    in the untrusted process: it only helps honest programs; the checker accepts nothing but plain values.)"""
    t = type(x)
    if t in _PLAIN_SCALARS:
        return x
    if t in _CONTAINERS:
        return t(_jaxrlvr_plain(v) for v in x)
    if t is dict:
        return {_jaxrlvr_plain(k): _jaxrlvr_plain(v) for k, v in x.items()}
    tolist = getattr(x, "tolist", None)
    if callable(tolist) and not isinstance(x, (list, tuple, dict, set, frozenset, str, bytes)):
        return _jaxrlvr_plain(tolist())
    for base in _PLAIN_SCALARS[1:]:
        if isinstance(x, base):
            return base(x)
    for base in _CONTAINERS:
        if isinstance(x, base):
            return base(_jaxrlvr_plain(v) for v in x)
    if isinstance(x, dict):
        return {_jaxrlvr_plain(k): _jaxrlvr_plain(v) for k, v in x.items()}
    import numbers

    for abc, base in ((numbers.Integral, int), (numbers.Real, float), (numbers.Complex, complex)):
        if isinstance(x, abc):
            return base(x)
    return x


def _jaxrlvr_main():
    import _pickle
    import builtins
    import marshal
    import os
    import resource
    import struct

    req, resp = os.dup(0), os.dup(1)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    header_struct = struct.Struct(">I")

    def read_exact(n):
        chunks = []
        while n > 0:
            b = os.read(req, n)
            if not b:
                return None
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def recv():
        h = read_exact(4)
        return None if h is None else read_exact(header_struct.unpack(h)[0])

    def send(tag, payload=b""):
        view = memoryview(header_struct.pack(len(payload) + 1) + tag + payload)
        while view:
            view = view[os.write(resp, view) :]

    def flush():
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass

    header = marshal.loads(recv())
    os.dup2(header["out_fd"], 1)  # the program's prints go to the stdout file, never to the checker
    os.close(header["out_fd"])
    try:
        if header["isolate"]:
            _jaxrlvr_isolate(header.get("remount_each", False), header.get("hide", ()))
        if header.get("uid") is not None:
            _jaxrlvr_drop_user(header["uid"])
        view = header.get("view")
        if view is not None:
            view = dict(view, rw=[os.getcwd()])
            if not _jaxrlvr_landlock(view) and header.get("require_landlock"):
                raise OSError("Landlock is not available")
    except BaseException as e:
        send(b"X", f"isolation failed: {e}".encode(errors="replace"))
        os._exit(2)

    def limit(res, soft, hard):
        cur_soft, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):
            pass

    if header["mem"] > 0:
        limit(resource.RLIMIT_AS, header["mem"], header["mem"])
    limit(resource.RLIMIT_CPU, header["cpu"], header["cpu"] + 1)
    limit(resource.RLIMIT_FSIZE, header["fsize"], header["fsize"])
    limit(resource.RLIMIT_CORE, 0, 0)
    limit(resource.RLIMIT_NPROC, 0, 0)

    exit_, dumps, loads = os._exit, _pickle.dumps, _pickle.loads
    entry = header["entry_point"]
    sys.path.extend(header["sys_path"])  # started with -S: the interpreter's site-packages, without .pth hooks
    try:
        code = compile(header["source"], "program.py", "exec")
        if header["guard"]:
            _jaxrlvr_guard(os.getcwd())
        namespace = {"__name__": "__humaneval__", "__builtins__": builtins}
        exec(code, namespace)
        fn = namespace[entry] if entry else None
    except BaseException:
        try:
            __import__("traceback").print_exc()
        except BaseException:
            pass
        flush()
        send(b"L")
        exit_(1)
    flush()
    send(b"K")
    while True:
        msg = recv()
        if msg is None:
            exit_(0)
        try:
            args, kwargs = loads(msg)
            payload = dumps(_jaxrlvr_plain(fn(*args, **kwargs)), protocol=4)
        except BaseException as e:
            try:
                __import__("traceback").print_exc()
                text = f"{type(e).__name__}: {e}"[:2000]
            except BaseException:
                text = "an exception"
            flush()
            send(b"E", text.encode("utf-8", errors="replace"))
            continue
        flush()
        send(b"R", payload)


if __name__ == "__main__":
    _jaxrlvr_main()
