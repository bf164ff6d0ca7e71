"""Meshes and placements: mesh from config, logical-axis rules -> shardings, sharded train / score / sample.

Everything distributed goes through JAX's SPMD partitioner: this package only *names* where arrays live
(``NamedSharding`` on a 3-axis mesh) and jits the caller's pure functions with those shardings; XLA inserts
every collective. See docs/mesh.md. One concern per module:

- :mod:`~jaxrlvr.sharding.mesh`: mesh construction, the logical-axis rule table, PartitionSpecs;
- :mod:`~jaxrlvr.sharding.transfer`: host values onto the mesh and back (``put``, ``conform``, ``to_host``);
- :mod:`~jaxrlvr.sharding.placement`: :class:`Placement`: shardings of params / state / batches and the
  jitted, sharded train step, scoring and advantage shaping (the step functions are passed in);
- :mod:`~jaxrlvr.sharding.sampler`: the sampler's weight / KV-cache shardings and ``generate`` on a mesh;
- :mod:`~jaxrlvr.sharding.process`: ``jax.distributed`` start-up and host all-gathers across processes;
- :mod:`~jaxrlvr.sharding.memory`: the sampler's memory plan (the train step's is in ``jaxrlvr.train.memory``).

It depends on ``models``, ``sampling`` and ``algos``, never on the trainer.
"""

from jaxrlvr.sharding.memory import GIB, paged_sampler_memory, sampler_cache_memory
from jaxrlvr.sharding.mesh import (
    ACTIVATION_AXES,
    BATCH_AXES,
    DEFAULT_RULES,
    MESH_AXES,
    MeshError,
    activation_rules,
    batch_divisor,
    batch_sharding,
    check_mesh_shape,
    logical_to_spec,
    make_mesh,
    mesh_from_config,
    param_specs,
    replicated,
    resolve_mesh_shape,
    rollout_mesh_from_config,
    rules_from_config,
    single_device_mesh,
    split_rollout_devices,
    validate_rules,
)
from jaxrlvr.sharding.placement import Placement, describe, placement
from jaxrlvr.sharding.process import (
    initialize_distributed,
    is_main_process,
    process_allgather_json,
    process_allgather_rows,
    process_slice,
)
from jaxrlvr.sharding.sampler import cache_shardings, generate, sampler_param_shardings
from jaxrlvr.sharding.transfer import conform, put, put_batch, put_process_batch, to_host

__all__ = [
    "ACTIVATION_AXES",
    "BATCH_AXES",
    "DEFAULT_RULES",
    "GIB",
    "MESH_AXES",
    "MeshError",
    "Placement",
    "activation_rules",
    "batch_divisor",
    "batch_sharding",
    "cache_shardings",
    "check_mesh_shape",
    "conform",
    "describe",
    "generate",
    "initialize_distributed",
    "is_main_process",
    "logical_to_spec",
    "make_mesh",
    "mesh_from_config",
    "rollout_mesh_from_config",
    "split_rollout_devices",
    "param_specs",
    "placement",
    "process_allgather_json",
    "process_allgather_rows",
    "process_slice",
    "put",
    "put_batch",
    "put_process_batch",
    "replicated",
    "resolve_mesh_shape",
    "rules_from_config",
    "paged_sampler_memory",
    "sampler_cache_memory",
    "sampler_param_shardings",
    "single_device_mesh",
    "to_host",
    "validate_rules",
]
