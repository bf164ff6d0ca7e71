"""Several processes: ``jax.distributed`` start-up and the small all-gathers the trainer uses on the host
(prompt rows, verifier verdicts). One process: every helper is the identity."""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from jaxrlvr.sharding.mesh import MeshError


def is_main_process() -> bool:
    """Process 0 writes the run's files (metrics, config, summary, plots, dumps); every process computes."""
    return jax.process_index() == 0


def process_allgather_json(obj) -> list:
    """``[obj of process 0, obj of process 1, ...]`` on every process (a small JSON-serialisable value per
    process: prompt rows, counts). One process: ``[obj]``. Uses JAX's collectives, no extra channel."""
    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(obj).encode("utf-8"), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int32(data.size))).reshape(-1)
    buf = np.zeros((int(sizes.max()),), np.int32)
    buf[: data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
    return [json.loads(gathered[i, : sizes[i]].astype(np.uint8).tobytes()) for i in range(len(sizes))]


def process_slice(n: int) -> slice:
    """This process's contiguous share of ``n`` items (host-side work such as verification): process ``i``
    of ``p`` gets items ``[i * ceil(n/p), (i+1) * ceil(n/p))`` (the last ones may get fewer or none)."""
    p, i = jax.process_count(), jax.process_index()
    per = -(-n // p)
    return slice(min(n, i * per), min(n, (i + 1) * per))


def process_allgather_rows(local: np.ndarray, n: int) -> np.ndarray:
    """The inverse of :func:`process_slice`: every process's share of ``n`` rows -> all ``n`` rows."""
    if jax.process_count() == 1:
        return np.asarray(local)
    from jax.experimental import multihost_utils

    local = np.asarray(local)
    per = -(-n // jax.process_count())
    buf = np.zeros((per,) + local.shape[1:], local.dtype)
    buf[: local.shape[0]] = local
    return np.asarray(multihost_utils.process_allgather(buf, tiled=True))[:n]


def initialize_distributed(c=None, *, log=print) -> bool:
    """``jax.distributed.initialize`` from ``c.mesh.distributed`` or the environment; returns whether a
    multi-process runtime is (now) active.

    Settings, first found wins: the config fields ``coordinator_address``, ``num_processes``,
    ``process_id``; the variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``;
    JAX's own cluster detection (SLURM, Open MPI, Kubernetes, Cloud TPU) when ``c.mesh.distributed.auto``.
    Nothing is done when none is set (a single-process run). CPU processes use gloo collectives.
    """
    d = c.mesh.distributed if c is not None else None
    get = (lambda k, default: d.get(k, default)) if d is not None else (lambda k, default: default)
    addr = get("coordinator_address", "") or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num = int(get("num_processes", 0) or os.environ.get("JAX_NUM_PROCESSES", 0) or 0)
    pid_cfg = get("process_id", -1)
    pid = int(pid_cfg if pid_cfg is not None and pid_cfg >= 0 else os.environ.get("JAX_PROCESS_ID", -1))
    auto = bool(get("auto", False))
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    if not addr and not auto:
        if num > 1 or pid >= 0:
            raise MeshError("mesh.distributed: num_processes / process_id are set but no coordinator_address")
        return False
    kwargs = {}
    if addr:
        if num < 1 or pid < 0:
            raise MeshError(
                f"mesh.distributed: coordinator_address={addr!r} needs num_processes >= 1 and process_id >= 0 "
                f"(got {num}, {pid}); set them in the config or JAX_NUM_PROCESSES / JAX_PROCESS_ID"
            )
        if not 0 <= pid < num:
            raise MeshError(f"mesh.distributed: process_id={pid} is not in [0, num_processes={num})")
        kwargs = dict(coordinator_address=addr, num_processes=num, process_id=pid)
    timeout = int(get("timeout_s", 300))
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs, initialization_timeout=timeout)
    log(
        f"jax.distributed: process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} local / {jax.device_count()} global devices"
    )
    return jax.process_count() > 1
