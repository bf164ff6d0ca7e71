"""Host values <-> arrays on the mesh: place (``put``, ``conform``, ``put_batch``) and bring back (``to_host``).
Multi-process safe: each process copies only its own shards."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from jaxrlvr.sharding.mesh import MeshError, _path_str, batch_divisor, batch_sharding


def put(tree, shardings):
    """Places host values (numpy or single-device arrays, identical on every process) with ``shardings``
    (a tree, or one sharding for every leaf). Multi-process safe: each process copies only its shards."""
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def one(x, s):
        if isinstance(x, jax.Array) and x.sharding == s:
            return x
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.jit(lambda a: a, out_shardings=s)(x)
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(x), s), impl=jax.random.key_impl(x))
        arr = np.asarray(x)
        return jax.make_array_from_callback(arr.shape, s, lambda idx: arr[idx])

    return jax.tree.map(one, tree, shardings)


def conform(tree, shardings):
    """``tree`` with every leaf on its target sharding: device arrays elsewhere are resharded on device
    (``device_put``), host values placed with :func:`put`; leaves already there are returned as they are.
    jit does not move committed arguments itself (it raises on a mismatch)."""
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)

    def one(x, s):
        if isinstance(x, jax.Array):
            if x.sharding == s or x.sharding.is_equivalent_to(s, x.ndim):
                return x
            if x.is_fully_addressable and not s.is_fully_addressable:
                return put(x, s)  # a process-local value (the same on every process) onto the global mesh
            if not x.is_fully_addressable:
                return jax.jit(lambda a: a, out_shardings=s)(x)
            return jax.device_put(x, s)
        return put(x, s)

    return jax.tree.map(one, tree, shardings)


def put_batch(mesh: Mesh, batch):
    """A host batch (every leaf [B, ...], the same on every process) with rows over ``('data', 'fsdp')``."""
    n = batch_divisor(mesh)
    for path, x in jax.tree_util.tree_flatten_with_path(batch)[0]:
        if np.ndim(x) == 0 or np.shape(x)[0] % n:
            raise MeshError(
                f"batch entry {_path_str(path)} with shape {np.shape(x)}: rows must be a multiple of "
                f"data x fsdp = {n} (mesh {dict(mesh.shape)})"
            )
    return put(batch, batch_sharding(mesh))


def put_process_batch(mesh: Mesh, local_batch):
    """The global batch from each process's own rows (every leaf [B_local, ...]): process ``i`` of ``n``
    supplies the rows its devices hold. Global rows = the processes' rows in device order."""
    s = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(s, np.asarray(x)), local_batch)


def to_host(tree):
    """numpy copies of (replicated or fully addressable) arrays; in a multi-process run a sharded array is
    gathered to every process first."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = jax.tree.map(
            lambda x: (
                x
                if not isinstance(x, jax.Array) or x.is_fully_replicated or x.is_fully_addressable
                else multihost_utils.process_allgather(x, tiled=True)
            ),
            tree,
        )
    return jax.tree.map(np.asarray, tree)
