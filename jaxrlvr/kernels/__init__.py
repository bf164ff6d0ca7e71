"""CPU kernels outside XLA, called through ``jax.ffi``: built from source at first use, optional.

``small_matmul(x_MK, w_NK)`` is ``x @ w.T`` in float32 for a few rows of ``x`` and a weight stored
``[out, in]`` (the sampler's decode step on CPU). XLA:CPU's matmul libraries stream such weights at 10-17
GB/s on the development machine; this kernel streams 18-32 GB/s in the same run (BENCHMARKS.md, "Sampler").

The source (``small_matmul.cc``) is compiled once per machine with the system C++ compiler (``$CXX`` or
``g++``, ``-O3 -march=native``) into ``$JAXRLVR_CACHE`` (default ``~/.cache/jaxrlvr``), keyed by the source,
the compiler and its flags, the jaxlib version and the CPU model and features. :func:`available` is False,
and callers keep XLA's matmul, when the backend is not CPU, no compiler is found, the build fails (the
reason is logged once) or ``JAXRLVR_CPU_KERNELS=0``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp

_SOURCE = pathlib.Path(__file__).with_name("small_matmul.cc")
_TARGET = "jaxrlvr_small_matmul_f32"
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")
_log = logging.getLogger(__name__)


def _cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("JAXRLVR_CACHE", pathlib.Path.home() / ".cache" / "jaxrlvr")) / "kernels"


def _cpu_signature() -> str:
    """The CPU's model and feature flags: ``-march=native`` builds must not be shared between CPUs (a home
    directory on a cluster's shared filesystem)."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    return "|".join(next((x for x in lines if x.startswith(k)), "") for k in ("model name", "flags"))


def _build(cxx: str) -> pathlib.Path:
    import jaxlib

    src = _SOURCE.read_bytes()
    meta = " ".join((cxx, *_FLAGS, jaxlib.__version__, _cpu_signature()))
    key = hashlib.sha256(src + meta.encode()).hexdigest()[:16]
    out = _cache_dir() / f"small_matmul-{key}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_out = pathlib.Path(tmp) / out.name
        cmd = [cxx, *_FLAGS, f"-I{jax.ffi.include_dir()}", str(_SOURCE), "-o", str(tmp_out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        os.replace(tmp_out, out)  # atomic: concurrent builders (test workers) do not see half a file
    return out


@functools.cache
def _load() -> bool:
    if os.environ.get("JAXRLVR_CPU_KERNELS", "1") == "0":
        return False
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        _log.warning("jaxrlvr.kernels: no C++ compiler found; the sampler uses XLA's matmuls")
        return False
    try:
        lib = ctypes.cdll.LoadLibrary(str(_build(cxx)))
        jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(lib.JaxrlvrSmallMatmulF32), platform="cpu")
    except Exception as e:  # a build or load failure only costs speed
        _log.warning("jaxrlvr.kernels: CPU kernels unavailable (%s); the sampler uses XLA's matmuls", e)
        return False
    return True


def available(platform: str | None = None) -> bool:
    """Whether the CPU kernels can be used on ``platform`` (default: JAX's default backend)."""
    if (platform or jax.default_backend()) != "cpu":
        return False
    return _load()


def small_matmul(x_MK: jax.Array, w_NK: jax.Array) -> jax.Array:
    """``x_MK @ w_NK.T`` in float32 [M, N] by the CPU kernel (call only when :func:`available`)."""
    if x_MK.dtype != jnp.float32 or w_NK.dtype != jnp.float32:
        raise TypeError(f"small_matmul takes float32 operands, got {x_MK.dtype} and {w_NK.dtype}")
    if x_MK.ndim != 2 or w_NK.ndim != 2 or x_MK.shape[1] != w_NK.shape[1]:
        raise ValueError(f"small_matmul: expected x [M, K] and w [N, K], got {x_MK.shape} and {w_NK.shape}")
    if not _load():
        raise RuntimeError(
            "jaxrlvr CPU kernels are unavailable (JAXRLVR_CPU_KERNELS=0, no C++ compiler, or the build failed: "
            "see the logged warning); use XLA's matmul (Sampler(cpu_kernels=False))"
        )
    out = jax.ShapeDtypeStruct((x_MK.shape[0], w_NK.shape[0]), jnp.float32)
    return jax.ffi.ffi_call(_TARGET, out)(x_MK, w_NK)
